"""The store's collections: names, listing, deletion, and the one not-found error (with the closest name).

Shared by every step that opens a collection (ingest, ask, verify, feedback promotion, eval) and by
``llmops collections``.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.collection_meta import check_collection_name
from llmops_cli.core.redaction import mask_url_password
from llmops_cli.errors import NotFoundError

if TYPE_CHECKING:
    from llmops_cli.core.ports import VectorStore
    from llmops_cli.settings import Settings
    from llmops_cli.wiring import Workspace


def collection_name(settings: Settings, collection: str | None) -> str:
    """``collection`` checked against the one name rule (so the user gets one line instead of a library error),
    or the configured default."""
    return check_collection_name(collection) if collection else settings.store.collection


def source_root(settings: Settings) -> Path:
    """The folder source ids are relative to (ingest.source_root, else the project folder of the config in effect,
    --config and $LLMOPS_PROJECT_DIR included): one rule for ingest, its Airflow shards and verify."""
    configured = settings.ingest.source_root
    return settings.resolve_path(configured) if configured else settings.project_dir


def store_location(settings: Settings) -> str:
    """Where the store is, as shown to the user: its URL (password masked), host:port, or the embedded folder."""
    st = settings.store
    if st.url:
        return mask_url_password(st.url)
    return f"{st.host}:{st.port}" if st.host else str(Path(settings.store_path))


def collection_not_found(store: VectorStore, name: str) -> NotFoundError:
    """A not-found error that lists the collections there are, with the closest one first."""
    names = store.list_collections()
    where = getattr(store, "where", "?")
    if not names:
        return NotFoundError(
            f"collection {name!r} does not exist: the store at {where} has no collections yet",
            hint=f"ingest documents first: llmops ingest PATH --collection {name}",
        )
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    listed = ", ".join(names[:10]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")
    hint = (
        f"did you mean --collection {close[0]}?"
        if close
        else (f"pass --collection {names[0]}" if len(names) == 1 else "pass --collection NAME")
    )
    return NotFoundError(
        f"collection {name!r} does not exist in the store at {where} (collections: {listed})",
        hint=f"{hint} (store.collection sets the default), or ingest into {name!r} first",
    )


def collection_meta(store: VectorStore, name: str) -> dict[str, Any]:
    """The collection's metadata (what it records about itself); not found is an error naming the ones there are."""
    meta = store.collection_metadata(name)
    if meta is None:
        raise collection_not_found(store, name)
    return meta


def collections(ws: Workspace) -> list[dict[str, Any]]:
    store = ws.store(read_only=True)
    out = []
    for name in store.list_collections():
        md = store.collection_metadata(name) or {}
        out.append(
            {
                "name": name,
                "chunks": store.count(name),
                "embedder": md.get("llmops_embedder"),
                "sources": len(store.read_manifest(name)),
            }
        )
    return out


def delete_collection(ws: Workspace, name: str) -> None:
    """Delete a collection, its source ledger and its lexical index, under the store's write lock."""
    with ws.write_lock():
        store = ws.store()
        collection_meta(store, name)
        store.delete_collection(name)
        shutil.rmtree(ws.lexical_index(name).folder, ignore_errors=True)
