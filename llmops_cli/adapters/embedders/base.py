"""The embedder interface: one abstract method (``embed``) plus the model's own tokenizer for sizing chunks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class TokenCounter(Protocol):
    """Counts text in the embedding model's own tokens (special tokens excluded)."""

    max_tokens: int  # the longest input the model reads without truncating (special tokens excluded)

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, for cutting token windows."""
        ...


class Embedder(ABC):
    """Turns texts into L2-normalised vectors. Implementations import their libraries lazily."""

    #: identity stored with a collection; vectors from two embedders with the same identity are interchangeable
    identity: str
    dimension: int
    tokens: TokenCounter

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dimension), float32, rows L2-normalised."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
