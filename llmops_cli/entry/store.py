"""The store's collections: names, listing, a look inside (description, sources, chunks, export), deletion, and the
one not-found error (with the closest name).

Shared by every step that opens a collection (ingest, ask, verify, feedback promotion, eval) and by
``llmops collections`` / ``llmops chunks``. Everything here but deletion only reads: it opens the store read-only
and creates nothing where there is no store.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.collection_meta import check_collection_name, collection_name_problem, describe_metadata
from llmops_cli.core.locations import check_output_file
from llmops_cli.core.redaction import mask_url_password
from llmops_cli.errors import InputError, NotFoundError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from llmops_cli.core.documents import Hit
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


def embedded_store_stamp(settings: Settings) -> tuple | None:
    """For a long-running reader of the embedded store (``llmops serve``): a value that changes when another process
    wrote the store, so the reader opens it afresh. None for a server store (read fresh by every query)."""
    if settings.store.backend != "chroma":
        return None
    from llmops_cli.adapters.vectorstores.chroma import content_stamp

    return content_stamp(Path(settings.store_path))


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
    # worded for every caller: a --collection option, a NAME argument, a DAG param and the API's field alike
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else (f"the only collection is {names[0]!r}" if len(names) == 1 else "name one of those")
    )
    return NotFoundError(
        f"collection {name!r} does not exist in the store at {where} (collections: {listed})",
        hint=f"{hint} (store.collection sets the default one), or ingest into {name!r} first",
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
    """Delete a collection, its source ledger and its lexical index, under the store's write lock. A name the
    collections cannot have (``docs__sources``: the ledger of ``docs``) is refused, not deleted."""
    problem = collection_name_problem(name)
    if problem is not None:  # no "did you mean": the likely guess, docs for docs__sources, is not to be deleted
        raise UsageError(
            f"collection name {name!r} is invalid: {problem}",
            hint="llmops collections list shows the collections; a collection's source records go with it",
        )
    with ws.write_lock():
        store = ws.store()
        collection_meta(store, name)
        store.delete_collection(name)
        shutil.rmtree(ws.lexical_index(name).folder, ignore_errors=True)


PAGE = 1000  # chunks read per store call when a command walks a whole collection
EXPORT_FORMATS = ("jsonl", "parquet")


def _chunks(store: VectorStore, name: str, *, include_documents: bool = True) -> Iterator[Hit]:
    """Every chunk of a collection, a page at a time (a large collection is never held whole)."""
    offset = 0
    while True:
        page = store.get(name, include_documents=include_documents, limit=PAGE, offset=offset)
        yield from page
        if len(page) < PAGE:
            return
        offset += len(page)


def describe_collection(ws: Workspace, name: str) -> dict[str, Any]:
    """What ``llmops collections show`` prints: chunk and source counts, the embedder and chunking it was made with,
    its last ingest, its size (stored text and vectors) and the spread of its chunk lengths (characters)."""
    store = ws.store(read_only=True)
    meta = collection_meta(store, check_collection_name(name))
    manifest = store.read_manifest(name)
    lengths, text_bytes = [], 0
    for h in _chunks(store, name):
        lengths.append(len(h.text))
        text_bytes += len(h.text.encode("utf-8"))
    recorded = describe_metadata(meta)
    dimension = recorded["dimension"] or 0
    lengths.sort()
    return {
        "name": name,
        "store": store_location(ws.settings),
        "chunks": len(lengths),
        "sources": len(manifest),
        **recorded,
        "size": {"text_bytes": text_bytes, "vector_bytes": len(lengths) * dimension * 4},
        "chunk_chars": {
            "min": lengths[0] if lengths else 0,
            "median": lengths[len(lengths) // 2] if lengths else 0,
            "max": lengths[-1] if lengths else 0,
        },
        "chunk_lengths": lengths,
    }


def collection_sources(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """The sources a collection was ingested from (its ledger), by source id: chunk count and content hash."""
    store = ws.store(read_only=True)
    collection_meta(store, check_collection_name(name))
    out = []
    for sid, rec in sorted(store.read_manifest(name).items()):
        out.append(
            {
                "source": sid,
                "chunks": len(rec.chunk_ids),
                "content_hash": rec.content_hash.split(":", 1)[0],
                **({"path": rec.extra["path"]} if isinstance(rec.extra.get("path"), str) else {}),
            }
        )
    return out


def get_chunk(ws: Workspace, chunk_id: str, collection: str | None = None) -> tuple[str, Hit]:
    """(collection, chunk) of ``chunk_id``, which may be a unique prefix of the id (as ``query`` shows it); searched in
    ``collection``, or in every collection of the store. Not found, or a prefix of several, is a one-line error."""
    chunk_id = chunk_id.strip()
    if len(chunk_id) < 4:
        raise UsageError(
            f"chunk id {chunk_id!r} is too short", hint="pass at least 4 characters of the id (llmops query shows it)"
        )
    store = ws.store(read_only=True)
    names = [check_collection_name(collection)] if collection else store.list_collections()
    if collection:
        collection_meta(store, collection)
    found: list[tuple[str, str]] = []
    for name in names:
        exact = store.get(name, ids=[chunk_id], include_documents=False)
        if exact:
            found = [(name, chunk_id)]
            break
        found += [(name, cid) for cid in store.ids(name) if cid.startswith(chunk_id)]
    if not found:
        where = (
            f"collection {collection!r}"
            if collection
            else f"any collection of the store at {store_location(ws.settings)}"
        )
        raise NotFoundError(
            f"no chunk with id {chunk_id!r} in {where}",
            hint="copy an id from llmops query (text output) or from its --json hits",
        )
    if len(found) > 1:
        listed = ", ".join(f"{n}:{c}" for n, c in found[:5]) + (" ..." if len(found) > 5 else "")
        raise UsageError(
            f"chunk id {chunk_id!r} is the start of {len(found)} ids ({listed})",
            hint="pass more of the id, or --collection NAME",
        )
    name, cid = found[0]
    return name, store.get(name, ids=[cid])[0]


def export_format(path: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` when given, else the file's extension."""
    chosen = fmt or path.suffix.lstrip(".").lower()
    if chosen not in EXPORT_FORMATS:
        raise UsageError(
            f"cannot tell the export format of {path.name!r}" if not fmt else f"unknown export format {fmt!r}",
            hint="pass --format jsonl or --format parquet (or a path ending in .jsonl / .parquet)",
        )
    return chosen


def export_collection(
    ws: Workspace, name: str, path: Path, *, fmt: str | None = None, vectors: bool = False, force: bool = False
) -> dict[str, Any]:
    """Write every chunk of a collection (id, text, metadata, and with ``vectors`` its stored vector) to ``path`` as
    JSON lines or parquet. An existing file is replaced only with ``force``; the file appears whole or not at all
    (written beside it, then renamed)."""
    import json
    import os
    import tempfile

    fmt = export_format(path, fmt)
    # a folder there (--force replaced nothing: an internal error after the whole export), or no folder to write in
    check_output_file(path, "--output", hint=f"name a file, e.g. --output {path / f'{name}.{fmt}'}")
    if path.exists() and not force:
        raise InputError(f"{path} already exists", hint="pass --force to replace it, or another --output")
    store = ws.store(read_only=True)
    collection_meta(store, check_collection_name(name))
    read_vectors = getattr(store, "read_embeddings", None) if vectors else None
    if vectors and read_vectors is None:
        raise UsageError(f"the store at {store_location(ws.settings)} cannot export vectors", hint="drop --vectors")

    def rows() -> Iterator[dict[str, Any]]:
        page: list[Hit] = []
        for h in _chunks(store, name):
            page.append(h)
            if len(page) == PAGE:
                yield from _rows(page)
                page = []
        yield from _rows(page)

    def _rows(page: list[Hit]) -> Iterator[dict[str, Any]]:
        vecs = read_vectors(name, [h.id for h in page]) if read_vectors and page else {}
        for h in page:
            row: dict[str, Any] = {"id": h.id, "text": h.text, "metadata": h.metadata}
            if read_vectors:
                v = vecs.get(h.id)
                row["vector"] = None if v is None else [float(x) for x in v]
            yield row

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    n = 0
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows():
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
        else:
            n = _write_parquet(Path(tmp), rows(), vectors=bool(read_vectors))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private (0600); an export is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"collection": name, "path": str(path), "format": fmt, "chunks": n, "vectors": bool(read_vectors)}


def _write_parquet(path: Path, rows: Iterator[dict[str, Any]], *, vectors: bool) -> int:
    """Parquet with columns id, text, metadata (a JSON string: chunk metadata keys differ between sources) and
    vector (list of float32), written a row group per page."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field("id", pa.string()), pa.field("text", pa.string()), pa.field("metadata", pa.string())]
    if vectors:
        fields.append(pa.field("vector", pa.list_(pa.float32())))
    schema = pa.schema(fields)
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            cols = {
                "id": [r["id"] for r in batch],
                "text": [r["text"] for r in batch],
                "metadata": [json.dumps(r["metadata"], ensure_ascii=False, sort_keys=True) for r in batch],
            }
            if vectors:
                cols["vector"] = [r.get("vector") for r in batch]
            writer.write_table(pa.table(cols, schema=schema))

        for row in rows:
            batch.append(row)
            n += 1
            if len(batch) == PAGE:
                flush()
                batch = []
        if batch or n == 0:
            flush()
    return n
