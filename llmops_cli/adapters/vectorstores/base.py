"""The vector store interface: collections of chunks with our own vectors, plus a per-source manifest.

The manifest records, per source, the content hash and chunk ids of the last COMPLETE write; ingest writes
it only after the chunks are in, so a killed run re-does exactly the unfinished sources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmops_cli.core.documents import Hit


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
