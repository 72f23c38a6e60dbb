"""Ingest entry points, shared by ``llmops ingest`` and the ``llmops_ingest`` DAG (plan -> shards -> finalize):
settings in, the store and embedder from the workspace, ``core.ingest`` run with them, the lexical index kept in step.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core import tracing
from llmops_cli.core.collection_meta import embedder_config, embedder_settings_for
from llmops_cli.core.locations import is_remote
from llmops_cli.core.ports import INCOMPLETE
from llmops_cli.entry.store import collection_name, source_root
from llmops_cli.errors import NotFoundError

if TYPE_CHECKING:
    from llmops_cli.core.ingest import IngestOptions, IngestReport, ProgressFn
    from llmops_cli.core.loaders import TableOptions
    from llmops_cli.settings import Settings
    from llmops_cli.wiring import Workspace

# core.ingest and core.loaders load the chunkers (numpy): imported in the functions that run them, so that
# `llmops --help` stays cheap.


def ingest_options(settings: Settings, collection: str | None = None, **overrides: Any) -> IngestOptions:
    """Ingest options from settings (chunking, excludes, size limit, source root); ``overrides`` that are not None
    replace them."""
    from llmops_cli.core.ingest import IngestOptions

    fields: dict[str, Any] = {
        "collection": collection_name(settings, collection),
        "strategy": settings.chunking.strategy,
        "chunk_size": settings.chunking.size,
        "chunk_overlap": settings.chunking.overlap,
        "exclude": list(settings.ingest.exclude),
        "max_bytes": int(settings.ingest.max_file_mb * 1024 * 1024),
        "source_root": str(source_root(settings)),
        "privacy": settings.ingest.privacy,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return IngestOptions(**fields)


def local_sources(sources: list[str], dest: Path, only: Collection[str] | None = None) -> list[str]:
    """The sources as local paths ingest can read: local ones as they are, a URL copied under ``dest`` (only the files
    whose source ids are in ``only``, when given); the copies' source ids are their URLs (adapters.storage)."""
    if not any(is_remote(s) for s in sources):
        return list(sources)
    from llmops_cli.adapters.storage import fetch_tree

    return [s if not is_remote(s) else str(fetch_tree(s, dest / str(i), only=only)) for i, s in enumerate(sources)]


@tracing.traced("llmops ingest")
def ingest(
    ws: Workspace,
    paths: Sequence[str],
    *,
    collection: str | None = None,
    globs: list[str] | None = None,
    cleanup: str = "incremental",
    dry_run: bool = False,
    strict: bool = False,
    table: TableOptions | None = None,
    only: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    explicit_embedder: bool = False,
    wait_lock: float | None = None,
) -> IngestReport:
    """Ingest ``paths`` into the collection; updates the lexical index when the collection changed.
    ``explicit_embedder``: the embedder settings were asked for (flags), so an existing collection made with
    another embedder is an error rather than a reason to use that one. ``wait_lock``: seconds to wait for another
    writer of the same store (None: store_lock.default_wait()); a dry run only reads and takes no lock. A source that
    is a URL (s3://bucket/docs, gs://..., any fsspec protocol) is copied to a temporary folder first and its files
    keep their URLs as source ids."""
    from llmops_cli.core import ingest as core

    if any(is_remote(str(p)) for p in paths):
        with tempfile.TemporaryDirectory(prefix="llmops-sources-") as tmp:
            return ingest(
                ws,
                local_sources([str(p) for p in paths], Path(tmp), only=only),
                collection=collection,
                globs=globs,
                cleanup=cleanup,
                dry_run=dry_run,
                strict=strict,
                table=table,
                only=only,
                progress=progress,
                explicit_embedder=explicit_embedder,
                wait_lock=wait_lock,
            )
    settings = ws.settings
    opts = ingest_options(
        settings,
        collection,
        globs=globs,
        cleanup=cleanup,
        dry_run=dry_run,
        strict=strict,
        table=table,
        only=set(only) if only is not None else None,
    )
    with contextlib.nullcontext() if dry_run else ws.write_lock(wait_lock, flag="--wait-lock"):
        store = ws.store()
        # an existing collection keeps the embedder it was made with, unless one was asked for explicitly (a
        # mismatch is then refused by core.ingest: mixing two embedders' vectors breaks search)
        es = (
            settings.embedder
            if explicit_embedder
            else embedder_settings_for(store.collection_metadata(opts.collection), settings.embedder)
        )
        opts.embedder_config = embedder_config(es)
        if progress:
            progress("load model", 0, 0)
        embedder = ws.embedder(es)
        report = core.ingest([str(p) for p in paths], embedder=embedder, store=store, opts=opts, progress=progress)
        if not dry_run and report.changed_anything:
            if progress:
                progress("index", 0, 0)
            ws.after_store_write(opts.collection)
    if not dry_run and (report.changed or report.removed):
        from llmops_cli.entry.feedback import retire_stale

        # after the ingest's lock is released: the promoter takes it again for its own writes
        report.stale_answers = retire_stale(ws, opts.collection)
    return report


def plan_ingest(
    settings: Settings, paths: Sequence[str], *, globs: list[str] | None = None, shards: int = 4
) -> tuple[list[list[str]], list[str]]:
    """Source ids split into at most ``shards`` groups of similar total size (for Airflow task mapping), and the
    absolute paths of inputs that could not be read (missing or unreadable folders): a full cleanup must keep
    whatever lies behind those."""
    from llmops_cli.core.loaders import discover

    files, missing = discover([str(p) for p in paths], globs, list(settings.ingest.exclude), root=source_root(settings))
    groups: list[list[str]] = [[] for _ in range(max(1, min(shards, len(files))))]
    sizes = [0] * len(groups)
    for sf in sorted(files, key=lambda f: -f.size):
        i = sizes.index(min(sizes))
        groups[i].append(sf.source_id)
        sizes[i] += sf.size
    return [sorted(g) for g in groups if g], [os.path.abspath(p) for p, _ in missing]


def remove_missing_sources(
    ws: Workspace, collection: str | None, keep_source_ids: Sequence[str], skipped_paths: Sequence[str] = ()
) -> int:
    """cleanup=full for sharded runs: remove the sources not in ``keep_source_ids``, except those that may lie
    behind ``skipped_paths`` (an unmounted or unreadable folder is not a deleted one)."""
    from llmops_cli.core.ingest import remove_sources

    name = collection_name(ws.settings, collection)
    with ws.write_lock():
        gone = remove_sources(ws.store(), name, set(keep_source_ids), skipped_paths=skipped_paths)
        if gone:
            ws.after_store_write(name)
    return len(gone)


def ingest_ledger(
    ws: Workspace, collection: str | None, source_ids: Sequence[str]
) -> tuple[dict[str, list[str]], int | None]:
    """The store's own record for these sources (source id -> chunk ids; complete writes only) and the collection's
    chunk count (None when it does not exist yet). Counts built from it stay true across retried or killed tasks."""
    name = collection_name(ws.settings, collection)
    store = ws.store()
    manifest = store.read_manifest(name)
    ledger = {
        sid: list(manifest[sid].chunk_ids)
        for sid in source_ids
        if sid in manifest and manifest[sid].content_hash != INCOMPLETE
    }
    try:
        total: int | None = store.count(name)
    except NotFoundError:
        total = None
    return ledger, total
