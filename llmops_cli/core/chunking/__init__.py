"""Chunkers: recursive separators, heading-aware (Markdown/reST) and token windows.

Sizes are counted in the embedding model's own tokens and no chunk exceeds the model's maximum sequence
length: the model would silently truncate it (all-MiniLM-L6-v2 reads 256 word-pieces, 254 without [CLS]/[SEP]).
"""

from llmops_cli.core.chunking.base import Chunker, Piece, TokenIndex
from llmops_cli.core.chunking.headings import HeadingChunker
from llmops_cli.core.chunking.recursive import RecursiveChunker
from llmops_cli.core.chunking.select import chunk_document, make_chunker
from llmops_cli.core.chunking.token_window import TokenWindowChunker

__all__ = [
    "Chunker",
    "Piece",
    "TokenIndex",
    "HeadingChunker",
    "RecursiveChunker",
    "TokenWindowChunker",
    "chunk_document",
    "make_chunker",
]
