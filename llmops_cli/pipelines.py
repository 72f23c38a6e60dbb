"""Entry points shared by the CLI and the Airflow DAGs: settings in, adapters wired here, core steps run.

A local run and an Airflow run of the same config go through the same functions, so they cannot drift.
Later steps (eval, batch, feedback) add their entry points here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli import wiring

if TYPE_CHECKING:
    from llmops_cli.core.documents import Hit
    from llmops_cli.core.ingest import IngestReport, ProgressFn
    from llmops_cli.core.loaders import TableOptions
    from llmops_cli.core.retrieval import LexicalIndex, Retriever
    from llmops_cli.settings import Settings


def _collection(settings: "Settings", collection: str | None) -> str:
    if collection:
        import re

        from llmops_cli.errors import UsageError

        # Chroma's rules, checked here so the user gets one line instead of a library error
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]", collection) or collection.endswith("__sources"):
            raise UsageError(f"collection name {collection!r} is invalid: use 3-512 characters of a-z A-Z 0-9 . _ -, "
                             "starting and ending with a letter or digit", hint="pick another --collection name")
    return collection or settings.store.collection


def lexical_index(settings: "Settings", store, collection: str) -> "LexicalIndex":
    from llmops_cli.core.retrieval import LexicalIndex

    where = getattr(store, "where", "store")
    key = hashlib.sha256(str(where).encode()).hexdigest()[:12]
    return LexicalIndex(settings.data_path / "lexical" / key / collection, store, collection)


def ingest_options(settings: "Settings", collection: str | None = None, **overrides: Any):
    from llmops_cli.core.ingest import IngestOptions

    opts = IngestOptions(
        collection=_collection(settings, collection),
        strategy=settings.chunking.strategy,
        chunk_size=settings.chunking.size,
        chunk_overlap=settings.chunking.overlap,
        exclude=list(settings.ingest.exclude),
        max_bytes=int(settings.ingest.max_file_mb * 1024 * 1024),
    )
    for k, v in overrides.items():
        if v is not None:
            setattr(opts, k, v)
    return opts


def ingest(settings: "Settings", paths: Sequence[str], *, collection: str | None = None, globs: list[str] | None = None,
           cleanup: str = "incremental", dry_run: bool = False, strict: bool = False, table: "TableOptions | None" = None,
           only: Sequence[str] | None = None, progress: "ProgressFn | None" = None) -> "IngestReport":
    """Ingest ``paths`` into the collection; rebuilds the lexical index when the collection changed."""
    from llmops_cli.core import ingest as core

    opts = ingest_options(settings, collection, globs=globs, cleanup=cleanup, dry_run=dry_run, strict=strict, table=table,
                          only=set(only) if only is not None else None)
    embedder = wiring.build_embedder(settings.embedder)
    store = wiring.build_store(settings)
    report = core.ingest([str(p) for p in paths], embedder=embedder, store=store, opts=opts, progress=progress)
    if not dry_run and report.changed_anything:
        lexical_index(settings, store, opts.collection).build()
    return report


def plan_ingest_shards(settings: "Settings", paths: Sequence[str], *, globs: list[str] | None = None, shards: int = 4) -> list[list[str]]:
    """Source ids split into at most ``shards`` groups of similar total size (for Airflow task mapping)."""
    from llmops_cli.core.loaders import discover

    files, _missing = discover([str(p) for p in paths], globs, list(settings.ingest.exclude))
    groups: list[list[str]] = [[] for _ in range(max(1, min(shards, len(files))))]
    sizes = [0] * len(groups)
    for sf in sorted(files, key=lambda f: -f.size):
        i = sizes.index(min(sizes))
        groups[i].append(sf.source_id)
        sizes[i] += sf.size
    return [sorted(g) for g in groups if g]


def remove_missing_sources(settings: "Settings", collection: str | None, keep_source_ids: Sequence[str]) -> int:
    from llmops_cli.core.ingest import remove_sources

    name = _collection(settings, collection)
    store = wiring.build_store(settings)
    gone = remove_sources(store, name, set(keep_source_ids))
    if gone:
        lexical_index(settings, store, name).build()
    return len(gone)


def retriever(settings: "Settings", collection: str | None = None) -> "Retriever":
    from llmops_cli.core.retrieval import Retriever
    from llmops_cli.errors import NotFoundError

    name = _collection(settings, collection)
    store = wiring.build_store(settings)
    meta = store.collection_metadata(name)
    if meta is None:
        raise NotFoundError(f"collection {name!r} does not exist in the store at {getattr(store, 'where', '?')}",
                            hint=f"ingest documents first: llmops ingest PATH --collection {name}")
    embedder = wiring.build_embedder(settings.embedder)
    from llmops_cli.core.ingest import _check_embedder

    _check_embedder(meta, embedder, name)
    r = settings.retrieval
    return Retriever(store, embedder, name, lexical=lexical_index(settings, store, name), candidates=r.candidates, rrf_k=r.rrf_k)


def query(settings: "Settings", text: str, *, collection: str | None = None, k: int | None = None, mode: str | None = None,
          where: dict[str, Any] | None = None) -> "list[Hit]":
    r = retriever(settings, collection)
    return r.search(text, k or settings.retrieval.k, mode=mode or settings.retrieval.mode, where=where)


def collections(settings: "Settings") -> list[dict[str, Any]]:
    store = wiring.build_store(settings)
    out = []
    for name in store.list_collections():
        md = store.collection_metadata(name) or {}
        out.append({"name": name, "chunks": store.count(name), "embedder": md.get("llmops_embedder"),
                    "sources": len(store.read_manifest(name))})
    return out


def delete_collection(settings: "Settings", name: str) -> None:
    import shutil

    from llmops_cli.errors import NotFoundError

    store = wiring.build_store(settings)
    if store.collection_metadata(name) is None:
        raise NotFoundError(f"collection {name!r} does not exist", hint="list them with llmops collections list")
    store.delete_collection(name)
    shutil.rmtree(lexical_index(settings, store, name).folder, ignore_errors=True)


def store_location(settings: "Settings") -> str:
    return f"{settings.store.host}:{settings.store.port}" if settings.store.host else str(Path(settings.store_path))


def ask(settings: "Settings", question: str, *, collection: str | None = None, k: int | None = None, mode: str | None = None,
        where: dict[str, Any] | None = None, retrieval_only: bool = False, model: str | None = None, on_token=None):
    """The answer path (rewordings -> retrieval per wording -> RRF -> answer with sources)."""
    from llmops_cli.core.ask import ask as core_ask

    llm = None if retrieval_only else wiring.build_llm(settings.llm, model=model)
    r = retriever(settings, collection)
    return core_ask(question, r, llm, k=k or settings.retrieval.k, rewordings=settings.llm.rewordings,
                    mode=mode or settings.retrieval.mode, where=where, on_token=on_token)
