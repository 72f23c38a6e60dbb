"""Vector stores behind core.ports.VectorStore: Chroma (embedded or a server) and PostgreSQL with pgvector.
open_store picks one from settings (store.url)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmops_cli.core.ports import VectorStore
    from llmops_cli.settings import StoreSettings


def open_store(st: StoreSettings, embedded_path: Path, *, read_only: bool = False) -> VectorStore:
    """The store ``st`` points at (store.url / store.host, else the embedded Chroma at ``embedded_path``).

    The embedded store reads without importing chromadb and opens the full client at its first write;
    ``read_only`` (retrieval-only commands) makes a write an error instead."""
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore

    if st.backend == "chroma-server":
        host, port, ssl = st.chroma_server()
        return ChromaStore.server(host, port, ssl=ssl)
    if st.backend == "pgvector":
        from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore

        return PgVectorStore.open(st.url or "")
    return ChromaStore.embedded(embedded_path, read_only=read_only)
