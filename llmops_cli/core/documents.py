"""The data that flows through the pipeline: loaded documents, chunks, and retrieval hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Metadata = dict[str, str | int | float | bool]


def indexed_text(heading: str | None, text: str) -> str:
    """What is embedded and BM25-indexed for a chunk: its heading path, then its text."""
    return f"{heading}\n{text}" if heading else text


@dataclass
class Document:
    """One loaded unit of text. ``source_id`` is stable across runs (relative path, path#row-id, thread id...)."""

    source_id: str
    text: str
    metadata: Metadata = field(default_factory=dict)
    # Markdown/reST documents carry their format so the heading-aware chunker can be picked automatically.
    format: str = "text"


@dataclass
class Chunk:
    id: str
    text: str
    source_id: str
    index: int
    metadata: Metadata = field(default_factory=dict)
    n_tokens: int = 0


@dataclass
class Hit:
    """A retrieved chunk. ``score`` is higher-is-better (cosine similarity, BM25 score or fused RRF score)."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)  # rank per list that found it (vector, lexical, wording #)

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", self.metadata.get("source_id", "")))

    @property
    def heading(self) -> str:
        return str(self.metadata.get("heading", ""))
