"""A read-only view of an embedded Chroma store through Chroma's own Rust bindings, without ``import chromadb``.

Why: ``import chromadb`` costs 0.5-0.8 s (telemetry, auth, HTTP and embedding-function modules a reader never
uses) and ``PersistentClient`` another 0.1 s, while ``chromadb_rust_bindings`` (the engine PersistentClient
itself runs on) imports in 0.02 s. A retrieval-only command (query, ask, eval) reads through this; everything
that writes uses the full client.

The bindings are the layer under chromadb's public API (``chromadb/api/rust.py``), so this is pinned to the
chromadb version in pyproject.toml. ``open_reader`` returns None on any surprise (missing module, a changed
signature, a store that needs a migration); the caller then uses the full client, so a chromadb upgrade
costs speed, never correctness. tests/integration/test_chroma_reader.py compares both paths on a real store
and fails loudly if this one stopped being used.

The objects mimic the few chromadb Client / Collection methods ChromaStore calls, so ChromaStore's own code
(paging, hit conversion, errors) serves both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llmops_cli.errors import StoreError

TENANT = "default_tenant"
DATABASE = "default_database"
log = logging.getLogger(__name__)


def open_reader(path: Path) -> RustReadClient | None:
    """A reader over the store at ``path``, or None when the fast path cannot be used (the caller falls back)."""
    sqlite = Path(path) / "chroma.sqlite3"
    if not sqlite.is_file():
        return None  # no store yet: the full client gives the usual "does not exist" path
    try:
        import chromadb_rust_bindings as rb

        config = rb.SqliteDBConfig(
            hash_type=rb.MigrationHash.MD5, migration_mode=rb.MigrationMode.Validate, url=str(sqlite)
        )
        bindings = rb.Bindings(
            allow_reset=False, sqlite_db_config=config, persist_path=str(path), hnsw_cache_size=_hnsw_cache_size()
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - any surprise means: use the full client (Rust panics on a damaged
        # database arrive as pyo3's PanicException, a BaseException)
        log.debug("Chroma fast read path unavailable (%s: %s); using the full client", type(e).__name__, e)
        return None
    return RustReadClient(bindings)


def _hnsw_cache_size() -> int:
    import resource

    # as chromadb computes it: each HNSW index holds 4 data files and 1 metadata file open
    return max(1, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 5)


class RustReadClient:
    def __init__(self, bindings: Any):
        self._b = bindings

    def get_collection(self, name: str, embedding_function: Any = None) -> RustReadCollection:
        return RustReadCollection(self._b, self._b.get_collection(name, TENANT, DATABASE))

    def list_collections(self) -> list[str]:
        return [c.name for c in self._b.list_collections(None, 0, TENANT, DATABASE)]

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise StoreError(f"the Chroma store was opened read-only; {attr} needs the full client")


class RustReadCollection:
    def __init__(self, bindings: Any, model: Any):
        self._b = bindings
        self._id = str(model.id)
        self.name = model.name
        self.metadata = model.metadata

    def count(self) -> int:
        return self._b.count(self._id, TENANT, DATABASE)

    def query(self, *, query_embeddings, n_results: int, where=None, include) -> dict[str, Any]:
        r = self._b.query(
            self._id,
            None,
            [list(map(float, e)) for e in query_embeddings],
            n_results,
            json.dumps(where) if where else None,
            None,
            list(include),
            TENANT,
            DATABASE,
        )
        return {"ids": r.ids, "documents": r.documents, "metadatas": r.metadatas, "distances": r.distances}

    def get(self, *, ids=None, where=None, include, limit=None, offset=0) -> dict[str, Any]:
        r = self._b.get(
            self._id,
            ids,
            json.dumps(where) if where else None,
            limit,
            offset or 0,
            None,
            list(include),
            TENANT,
            DATABASE,
        )
        return {
            "ids": r.ids,
            "documents": r.documents,
            "metadatas": r.metadatas,
            "embeddings": r.embeddings if "embeddings" in include else None,
        }

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise StoreError(f"collection {self.name!r} was opened read-only; {attr} needs the full client")
