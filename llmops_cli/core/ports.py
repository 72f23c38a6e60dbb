"""The ports: the small interfaces and value types the core works with and the adapters implement.

Dependency arrows point down: adapters import this module, never the other way round.

- Embedder: texts -> L2-normalised vectors, plus the model's own tokenizer for sizing chunks.
- LLM: one abstract method (``complete``); async and streaming have working defaults.
- VectorStore: collections of chunks with our own vectors, plus a per-source manifest. The manifest records, per
  source, the content hash and chunk ids of the last COMPLETE write; ingest writes it only after the chunks are in,
  so a killed run re-does exactly the unfinished sources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmops_cli.core.documents import Hit
from llmops_cli.errors import AuthError, ConfigError, ExitCode, LLMError, UnreachableError

if TYPE_CHECKING:
    import numpy as np


# --- embedders ---------------------------------------------------------------------------------------


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


# --- LLMs ------------------------------------------------------------------------------------------------

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # USD; None when the price is unknown
    latency_s: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)


class LLMCallError(LLMError):
    """One failed call. ``retryable`` is true only for what can succeed on retry (429, 5xx, timeouts, resets)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class LLMAuthError(LLMCallError, AuthError):
    """The endpoint rejected the credentials (401/403): an AuthError (exit 8), never retried."""

    exit_code = ExitCode.AUTH


class LLMConfigError(LLMCallError, ConfigError):
    """The call cannot work as configured (e.g. a model string naming no provider): bad config, exit 2; `llmops serve`
    answers 503, the server's configuration and nothing its caller can change."""

    exit_code = ExitCode.USAGE


class LLMUnreachableError(LLMCallError, UnreachableError):
    """No connection to the endpoint (refused, unknown host, reset before a response): an UnreachableError (exit 7).
    Retryable: a restarting server comes back."""

    exit_code = ExitCode.UNREACHABLE


class LLMTimeoutError(LLMCallError):
    """The endpoint did not answer (or connect) within the timeout: exit 7 like an unreachable one (the README's
    table), but not an UnreachableError, so batch, eval and review record it for that row and go on."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, **kw: Any):
        kw.setdefault("status", 408)
        kw.setdefault("retryable", True)
        kw.setdefault("hint", "is the LLM server overloaded? raise llm.timeout (LLMOPS_LLM_TIMEOUT) or llm.max_retries")
        super().__init__(message, **kw)


class LLM(ABC):
    model: str

    @abstractmethod
    def complete(self, messages: list[Message], **params: Any) -> Completion:
        """One chat completion. Raises LLMCallError."""

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        import asyncio  # only async callers pay for it (40 ms at import on the command line)

        return await asyncio.to_thread(self.complete, messages, **params)

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        """Yield the answer in pieces; the default yields it whole. ``self.last`` holds the Completion after."""
        c = self.complete(messages, **params)
        self.last = c
        yield c.text


# --- vector stores ---------------------------------------------------------------------------------------


INCOMPLETE = "incomplete"  # a SourceRecord's content_hash while its source's write has begun but not finished


@dataclass
class SourceRecord:
    source_id: str
    content_hash: str
    chunk_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class VectorStore(ABC):
    @abstractmethod
    def ensure_collection(self, name: str, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create the collection if needed; return its metadata (embedder identity, dimension...)."""

    @abstractmethod
    def collection_metadata(self, name: str) -> dict[str, Any] | None:
        """The collection's metadata, or None when it does not exist."""

    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None: ...

    @abstractmethod
    def update_metadata(self, name: str, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None: ...

    @abstractmethod
    def set_collection_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into the collection's metadata."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def query(self, name: str, embedding: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        """Nearest chunks, score = cosine similarity (higher is better)."""

    @abstractmethod
    def get(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
        include_documents: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Hit]: ...

    @abstractmethod
    def count(self, name: str) -> int: ...

    def ids(self, name: str) -> list[str]:
        """Every chunk id of the collection (what the lexical index compares itself with after a change)."""
        return [h.id for h in self.get(name, include_documents=False)]

    # --- per-source manifest ---
    @abstractmethod
    def read_manifest(self, name: str) -> dict[str, SourceRecord]: ...

    @abstractmethod
    def write_manifest(self, name: str, records: Sequence[SourceRecord]) -> None: ...

    @abstractmethod
    def delete_manifest(self, name: str, source_ids: Sequence[str]) -> None: ...

    def ledger_generation(self, name: str) -> str | None:
        """A token that changes in the same write as every change of the manifest (None: not kept by this store)."""
        return None
