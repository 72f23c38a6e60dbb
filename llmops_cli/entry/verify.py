"""``llmops collections verify``: compare a collection's ledger, chunks, vector index and lexical index
(``core.verify``), and with ``repair`` fix exactly what is inconsistent."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmops_cli.core.collection_meta import embedder_config, embedder_settings_for
from llmops_cli.entry.ingest import ingest_options
from llmops_cli.entry.store import collection_name, collection_not_found
from llmops_cli.errors import StoreError

if TYPE_CHECKING:
    from llmops_cli.wiring import Workspace

# core.verify, core.ingest and core.loaders load numpy: imported where they run, so that `llmops --help` stays cheap.


def verify_collection(
    ws: Workspace,
    name: str,
    *,
    paths: Sequence[str] | None = None,
    globs: list[str] | None = None,
    repair: bool = False,
    table: Any = None,
) -> dict[str, Any]:
    """Verify (and with ``repair``, fix then verify again) collection ``name``. ``paths``: the folders/files the
    collection is ingested from, to compare each file with its record and to re-ingest the sources only their files
    can repair. Returns {"report": VerifyReport (after any repair), "before": VerifyReport | None,
    "repair": RepairReport | None}. Holds the store's write lock from the first check to the last write: a writer
    halfway through (an ingest's interrupted-write records, chunks not yet in its ledger) is not damage, so verify
    waits for it to finish."""
    settings = ws.settings
    exists = settings.store.backend != "chroma" or (settings.store_path / "chroma.sqlite3").is_file()
    with ws.write_lock() if exists else contextlib.nullcontext():  # no lock (and no folder) for no store
        return _verify_collection(ws, collection_name(settings, name), paths, globs, repair=repair, table=table)


def _verify_collection(
    ws: Workspace, name: str, paths: Sequence[str] | None, globs: list[str] | None, repair: bool, table: Any = None
) -> dict[str, Any]:
    from llmops_cli.core import verify as core

    settings = ws.settings
    try:
        store = ws.store()
        meta = store.collection_metadata(name)
    except StoreError as e:  # e.g. "database disk image is malformed": a finding, not a failure of verify
        rep = core.VerifyReport(collection=name, errors=[f"opening the collection: {e.message}"])
        if settings.store.backend == "chroma":
            from llmops_cli.adapters.vectorstores.chroma import sqlite_problems

            rep.storage = sqlite_problems(settings.store_path)
        return {"report": rep, "before": None, "repair": None}
    if meta is None:
        raise collection_not_found(store, name)
    # With a Chroma server the BM25 index is not part of the collection but this machine's cache of it, refreshed
    # from the store by the next query: missing or behind another machine's writes is normal, so it is left unchecked.
    # PostgreSQL's text index is a column of the store itself and is checked like the embedded store's index.
    lexical = None if settings.store.backend == "chroma-server" else ws.lexical_index(name)
    # the embedder only when it is needed (file signatures, or something to embed): a lexical-only or orphan-only
    # repair loads no model
    embedder = ws.collection_embedder(meta) if paths else None
    files = _verify_files(ws, name, embedder, paths, globs, table, _privacy(settings, meta)) if paths else None
    report = core.verify(store, name, lexical=lexical, files=files)
    if not repair or report.clean:
        return {"report": report, "before": None, "repair": None}

    def reingest(sources: list[str]) -> int:
        from llmops_cli.core import ingest as ingest_core

        opts = ingest_options(
            settings, name, globs=globs, only=set(sources), table=table, privacy=_privacy(settings, meta)
        )
        opts.embedder_config = embedder_config(embedder_settings_for(meta, settings.embedder))
        return ingest_core.ingest([str(p) for p in paths or []], embedder=embedder, store=store, opts=opts).chunks_added

    def embed(texts: list[str]):
        return (embedder or ws.collection_embedder(meta)).embed(texts)

    fixed = core.repair(
        store,
        name,
        report,
        embed=embed,
        lexical=lexical,
        reingest=reingest if paths else None,
        available=set(files or {}) if paths else None,
    )
    files = _verify_files(ws, name, embedder, paths, globs, table, _privacy(settings, meta)) if paths else None
    return {"report": core.verify(store, name, lexical=lexical, files=files), "before": report, "repair": fixed}


def _privacy(settings: Any, meta: dict[str, Any]) -> str:
    """The privacy policy to judge and re-ingest files with: the configured one, or when that is off, the one the
    collection was last ingested with (`ingest --privacy redact`): a repair must never store what ingest redacted."""
    from llmops_cli.core.collection_meta import PRIVACY_KEY

    recorded = meta.get(PRIVACY_KEY)
    if settings.ingest.privacy == "off" and recorded in ("redact", "skip"):
        return str(recorded)
    return settings.ingest.privacy


def _verify_files(
    ws: Workspace,
    name: str,
    embedder: Any,
    paths: Sequence[str],
    globs: list[str] | None,
    table: Any = None,
    privacy: str | None = None,
) -> dict[str, bool]:
    """Source id -> whether the file under ``paths`` matches its record, as ingest's own plan judges it (``table``:
    the table options ingest was given, part of every source's signature)."""
    from llmops_cli.core.ingest import plan_changes, signature
    from llmops_cli.core.loaders import discover

    opts = ingest_options(ws.settings, name, globs=globs, table=table, privacy=privacy)
    found, _missing = discover([str(p) for p in paths], globs, opts.exclude, root=opts.source_root)
    plan = plan_changes(found, ws.store().read_manifest(name), signature(opts, embedder), opts)
    differ = {sf.source_id for sf, _h, _new in plan.to_process}
    unreadable = {s["source"] for s in plan.skipped}
    return {sf.source_id: sf.source_id not in differ for sf in found if sf.source_id not in unreadable}
