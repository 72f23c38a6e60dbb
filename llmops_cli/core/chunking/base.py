"""The chunker interface and the token index that makes counting any span of a text cheap."""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass

from llmops_cli.adapters.embedders.base import TokenCounter
from llmops_cli.core.documents import Document
from llmops_cli.errors import ConfigError


@dataclass
class Piece:
    """A chunk before it gets an id: its text and the heading path it sits under ("A > B")."""

    text: str
    heading: str = ""


class TokenIndex:
    """Token spans of one text; counts the tokens inside any character range in O(log n)."""

    def __init__(self, text: str, tokens: TokenCounter):
        spans = tokens.token_spans(text) if text else []
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def count(self, start: int, end: int) -> int:
        """Tokens that start at or after ``start`` and end at or before ``end``."""
        lo = bisect.bisect_left(self.starts, start)
        hi = bisect.bisect_right(self.ends, end)
        return max(0, hi - lo)

    def char_at_token(self, i: int) -> int:
        return self.starts[i]

    def __len__(self) -> int:
        return len(self.starts)


class Chunker(ABC):
    """Splits a document into pieces of at most ``size`` tokens with ``overlap`` tokens carried over."""

    name: str = "base"

    def __init__(self, tokens: TokenCounter, size: int, overlap: int):
        if size > tokens.max_tokens:
            raise ConfigError(
                f"chunking.size {size} is over the embedding model's maximum of {tokens.max_tokens} tokens; longer chunks would be truncated",
                hint=f"use --chunk-size {tokens.max_tokens} or less",
            )
        if overlap >= size:
            raise ConfigError(f"chunking.overlap {overlap} must be smaller than chunking.size {size}", hint="lower --chunk-overlap")
        self.tokens = tokens
        self.size = size
        self.overlap = overlap

    @abstractmethod
    def split(self, doc: Document) -> list[Piece]:
        """The document's pieces, in order; every piece fits ``size`` tokens (heading included)."""
