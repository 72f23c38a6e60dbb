"""An in-process read replica of small collections, for ``llmops serve``.

A query on an embedded Chroma costs about 4 ms of CPU in its vector search and 2.3 ms more reading the lexical
hits' texts: most of it is the call itself (JSON-encoded filters, result lists built in Rust and copied into Python),
not the arithmetic. For a collection of a few thousand chunks an exact search with numpy over a snapshot of its
vectors is a fraction of that, and returns what the store's index returns (on collections this small Chroma's index
search finds the true nearest neighbours).

The snapshot is taken once per collection on first use and never refreshed: the replica wraps a store that itself
sees the store as it was when it was opened (an embedded Chroma's reader), and the serve process replaces the whole
workspace (store and replica with it) when another process wrote the store. Anything else (writes, manifests,
collections past the size cap, filters other than key=value equality) goes to the wrapped store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmops_cli.core.documents import Hit

MAX_CHUNKS = 20_000  # past this a snapshot costs seconds and tens of MB per worker: the store searches instead


@dataclass
class _Snapshot:
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    unit: np.ndarray  # rows normalised to length 1 (float32): cosine similarity is one matrix-vector product
    row: dict[str, int]


class ReplicaStore:
    """Wraps a read-only store; ``query`` and ``get`` of a collection under ``max_chunks`` come from a snapshot."""

    def __init__(self, inner: Any, *, max_chunks: int = MAX_CHUNKS):
        self.inner = inner
        self.max_chunks = max_chunks
        self._snaps: dict[str, _Snapshot | None] = {}
        self._lock = threading.Lock()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    # --- the snapshot ---
    def warm(self, name: str) -> None:
        """Take the collection's snapshot now (serve's warm-up), not in the first request that searches it."""
        self._snapshot(name)

    def _snapshot(self, name: str) -> _Snapshot | None:
        try:
            return self._snaps[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._snaps:
                self._snaps[name] = self._take(name)
            return self._snaps[name]

    def _take(self, name: str) -> _Snapshot | None:
        read = getattr(self.inner, "read_embeddings", None)
        if read is None or self.inner.collection_metadata(name) is None:
            return None
        if self.inner.count(name) > self.max_chunks:
            return None
        hits = self.inner.get(name, include_documents=True)
        if not hits:
            return None
        vecs = read(name, [h.id for h in hits])
        if any(vecs.get(h.id) is None for h in hits):  # an index that lost vectors: let the store answer as it does
            return None
        m = np.stack([vecs[h.id] for h in hits]).astype(np.float32)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return _Snapshot(
            ids=[h.id for h in hits],
            texts=[h.text for h in hits],
            metadatas=[h.metadata for h in hits],
            unit=m / norms,
            row={h.id: i for i, h in enumerate(hits)},
        )

    @staticmethod
    def _plain(where: dict[str, Any] | None) -> bool:
        """Whether the filter is key=value equality only (what the replica can evaluate as Chroma does)."""
        return not where or all(
            not k.startswith("$") and isinstance(v, (str, int, float, bool)) for k, v in where.items()
        )

    @staticmethod
    def _matches(md: dict[str, Any], where: dict[str, Any]) -> bool:
        for k, v in where.items():
            got = md.get(k)
            # Chroma compares a string with strings only, a bool with bools only, numbers with numbers
            if isinstance(v, bool) or isinstance(got, bool):
                if not (isinstance(v, bool) and isinstance(got, bool) and v == got):
                    return False
            elif isinstance(v, str) or isinstance(got, str):
                if not (isinstance(v, str) and isinstance(got, str) and v == got):
                    return False
            elif got is None or got != v:
                return False
        return True

    def _hit(self, s: _Snapshot, i: int, score: float, with_docs: bool = True) -> Hit:
        return Hit(id=s.ids[i], text=s.texts[i] if with_docs else "", score=score, metadata=dict(s.metadatas[i]))

    # --- the reads it answers ---
    def query(self, name: str, embedding: Any, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        s = self._snapshot(name) if self._plain(where) else None
        if s is None:
            return self.inner.query(name, embedding, k, where)
        q = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if q.shape[0] != s.unit.shape[1]:  # the store's own error for a wrong dimension
            return self.inner.query(name, embedding, k, where)
        q = q / (np.linalg.norm(q) or 1.0)
        sims = s.unit @ q
        if where:
            rows = np.array([i for i, md in enumerate(s.metadatas) if self._matches(md, where)], dtype=np.int64)
        else:
            rows = np.arange(len(s.ids))
        if k <= 0 or not len(rows):
            return []
        sub = sims[rows]
        if len(rows) > k:
            top = np.argpartition(-sub, k - 1)[:k]
        else:
            top = np.arange(len(rows))
        top = top[np.argsort(-sub[top], kind="stable")]
        return [self._hit(s, int(rows[j]), float(sub[j])) for j in top.tolist()]

    def get(
        self,
        name: str,
        *,
        ids: Any = None,
        where: dict[str, Any] | None = None,
        include_documents: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Hit]:
        s = self._snapshot(name) if self._plain(where) else None
        if s is None:
            return self.inner.get(
                name, ids=ids, where=where, include_documents=include_documents, limit=limit, offset=offset
            )
        if ids is not None:
            out = []
            seen = set()
            for cid in ids:
                i = s.row.get(cid)
                if i is None or cid in seen or (where and not self._matches(s.metadatas[i], where)):
                    continue
                seen.add(cid)
                out.append(self._hit(s, i, 0.0, include_documents))
            return out
        rows = [i for i in range(len(s.ids)) if not where or self._matches(s.metadatas[i], where)]
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
        return [self._hit(s, i, 0.0, include_documents) for i in rows]

    def count(self, name: str) -> int:
        s = self._snaps.get(name)
        return len(s.ids) if s is not None else self.inner.count(name)

    def ids(self, name: str) -> list[str]:
        s = self._snaps.get(name)
        return list(s.ids) if s is not None else self.inner.ids(name)
