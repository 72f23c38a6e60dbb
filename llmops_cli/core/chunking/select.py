"""Picking a chunker for a document, and the guard that no chunk exceeds the model's maximum."""

from __future__ import annotations

from llmops_cli.core.chunking.base import Chunker, Piece
from llmops_cli.core.chunking.headings import HeadingChunker
from llmops_cli.core.chunking.recursive import RecursiveChunker
from llmops_cli.core.chunking.token_window import TokenWindowChunker
from llmops_cli.core.documents import Document, indexed_text
from llmops_cli.core.ports import TokenCounter
from llmops_cli.errors import ConfigError

HEADING_FORMATS = {"markdown", "rst", "html"}
COUNT_BATCH = 256
_CLASSES: dict[str, type[Chunker]] = {
    "recursive": RecursiveChunker,
    "headings": HeadingChunker,
    "tokens": TokenWindowChunker,
}


def make_chunker(strategy: str, tokens: TokenCounter, size: int, overlap: int) -> Chunker:
    if strategy not in _CLASSES:
        raise ConfigError(
            f"unknown chunker {strategy!r}; allowed: auto, {', '.join(_CLASSES)}",
            hint="pass --chunker auto|recursive|headings|tokens",
        )
    return _CLASSES[strategy](tokens, size, overlap)


class ChunkerSet:
    """The chunkers one ingest run uses (``auto`` picks headings for Markdown/reST/HTML, recursive otherwise)."""

    def __init__(self, strategy: str, tokens: TokenCounter, size: int, overlap: int):
        self.strategy = strategy
        self.tokens = tokens
        if strategy == "auto":
            self._by_kind = {
                "headings": HeadingChunker(tokens, size, overlap),
                "other": RecursiveChunker(tokens, size, overlap),
            }
        else:
            c = make_chunker(strategy, tokens, size, overlap)
            self._by_kind = {"headings": c, "other": c}
        self._guard = TokenWindowChunker(tokens, tokens.max_tokens, min(overlap, tokens.max_tokens - 1))

    def chunker_for(self, doc: Document) -> Chunker:
        return self._by_kind["headings" if doc.format in HEADING_FORMATS else "other"]

    def split(self, doc: Document) -> list[Piece]:
        pieces = self.chunker_for(doc).split(doc)
        if not pieces and doc.text.strip():
            # a document of headings only has no section bodies, but its headings are text worth finding
            chunker = self.chunker_for(doc)
            pieces = RecursiveChunker(self.tokens, chunker.size, chunker.overlap).split(doc)
        return self._enforce_max(pieces)

    def _enforce_max(self, pieces: list[Piece]) -> list[Piece]:
        """Re-split anything the tokenizer counts over the model's maximum (never truncate silently)."""
        # counted a batch at a time: a tokenizer holds every encoding of a batch at once (a 20 MB file is ~100k pieces)
        counts: list[int] = []
        for i in range(0, len(pieces), COUNT_BATCH):
            counts += self.tokens.count([embed_text(p) for p in pieces[i : i + COUNT_BATCH]])
        out: list[Piece] = []
        for p, n in zip(pieces, counts, strict=False):
            if n <= self.tokens.max_tokens:
                out.append(p)
                continue
            htoks = self.tokens.count([p.heading])[0] + 1 if p.heading else 0
            for t in self._guard.split_text(p.text, self.tokens.max_tokens - htoks - 2):
                out.append(Piece(t, p.heading))
        return out


def embed_text(p: Piece) -> str:
    return indexed_text(p.heading, p.text)


def chunk_document(doc: Document, strategy: str, tokens: TokenCounter, size: int, overlap: int) -> list[Piece]:
    return ChunkerSet(strategy, tokens, size, overlap).split(doc)
