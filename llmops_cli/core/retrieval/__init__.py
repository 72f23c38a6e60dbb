"""Retrieval: vector + lexical (our BM25, or the store's own text search), fused by reciprocal rank fusion."""

from llmops_cli.core.retrieval.fusion import reciprocal_rank_fusion
from llmops_cli.core.retrieval.hybrid import HybridSearch, searches_text_itself
from llmops_cli.core.retrieval.lexical import LexicalIndex
from llmops_cli.core.retrieval.retriever import MODES, Retriever

__all__ = ["Retriever", "LexicalIndex", "reciprocal_rank_fusion", "MODES", "HybridSearch", "searches_text_itself"]
