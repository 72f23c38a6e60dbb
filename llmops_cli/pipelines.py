"""Entry points shared by the CLI and the Airflow DAGs: settings in, adapters wired here, core steps run.

A local run and an Airflow run of the same config go through the same functions, so they cannot drift.
Ingest, query/ask, collections, batch and feedback live here; eval's entry points are in ``llmops_cli/entry/eval.py``
(the entry layer is moving into ``llmops_cli/entry/``, one module per step: see docs/architecture.md).
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


def _collection(settings: Settings, collection: str | None) -> str:
    if collection:
        from llmops_cli.core.collection_meta import check_collection_name

        # Chroma's rule, checked here so the user gets one line instead of a library error
        check_collection_name(collection)
    return collection or settings.store.collection


def lexical_index(settings: Settings, store, collection: str) -> LexicalIndex:
    from llmops_cli.core.retrieval import LexicalIndex

    where = getattr(store, "where", "store")
    key = hashlib.sha256(str(where).encode()).hexdigest()[:12]
    return LexicalIndex(settings.data_path / "lexical" / key / collection, store, collection)


def store_write_lock(settings: Settings, wait_s: float | None = None):
    """The embedded store's write lock (core/store_lock.py), held around every command that writes the store, from
    before it reads what it plans on to its last write (lexical index included). A Chroma server orders its
    own writes: no file lock there."""
    import contextlib

    if settings.store.host:
        return contextlib.nullcontext()
    from llmops_cli.core.store_lock import write_lock

    return write_lock(settings.store_path, wait_s)


def source_root(settings: Settings):
    """The folder source ids are relative to (ingest.source_root, else the project folder): one rule for ingest,
    its Airflow shards and verify."""
    # the settings' project folder: the config file in effect, --config included, and $LLMOPS_PROJECT_DIR
    configured = settings.ingest.source_root
    return settings.resolve_path(configured) if configured else settings.project_dir


def ingest_options(settings: Settings, collection: str | None = None, **overrides: Any):
    from llmops_cli.core.ingest import IngestOptions

    opts = IngestOptions(
        collection=_collection(settings, collection),
        strategy=settings.chunking.strategy,
        chunk_size=settings.chunking.size,
        chunk_overlap=settings.chunking.overlap,
        exclude=list(settings.ingest.exclude),
        max_bytes=int(settings.ingest.max_file_mb * 1024 * 1024),
        source_root=str(source_root(settings)),
    )
    for k, v in overrides.items():
        if v is not None:
            setattr(opts, k, v)
    return opts


def ingest(
    settings: Settings,
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
    """Ingest ``paths`` into the collection; rebuilds the lexical index when the collection changed.
    ``explicit_embedder``: the embedder settings were asked for (flags), so an existing collection made with
    another embedder is an error rather than a reason to use that one. ``wait_lock``: seconds to wait for another
    writer of the same store (None: store_lock.default_wait()); a dry run only reads and takes no lock."""
    import contextlib

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
    with contextlib.nullcontext() if dry_run else store_write_lock(settings, wait_lock):
        return _ingest_locked(settings, paths, opts, progress, explicit_embedder)


def _ingest_locked(settings: Settings, paths: Sequence[str], opts, progress, explicit_embedder: bool) -> IngestReport:
    from llmops_cli.core import ingest as core
    from llmops_cli.core.collection_meta import embedder_config, embedder_settings_for

    dry_run = opts.dry_run
    store = wiring.build_store(settings)
    # an existing collection keeps the embedder it was made with, unless one was asked for explicitly (a mismatch
    # is then refused by core.ingest: mixing two embedders' vectors breaks search)
    es = (
        settings.embedder
        if explicit_embedder
        else embedder_settings_for(store.collection_metadata(opts.collection), settings.embedder)
    )
    embedder = wiring.build_embedder(es)
    opts.embedder_config = embedder_config(es)
    report = core.ingest([str(p) for p in paths], embedder=embedder, store=store, opts=opts, progress=progress)
    if not dry_run and report.changed_anything:
        lexical_index(settings, store, opts.collection).update()  # applies only what changed
    return report


def plan_ingest_shards(
    settings: Settings, paths: Sequence[str], *, globs: list[str] | None = None, shards: int = 4
) -> list[list[str]]:
    """Source ids split into at most ``shards`` groups of similar total size (for Airflow task mapping)."""
    return plan_ingest(settings, paths, globs=globs, shards=shards)[0]


def plan_ingest(
    settings: Settings, paths: Sequence[str], *, globs: list[str] | None = None, shards: int = 4
) -> tuple[list[list[str]], list[str]]:
    """The shards (see plan_ingest_shards) and the absolute paths of inputs that could not be read (missing or
    unreadable folders): a full cleanup must keep whatever lies behind those."""
    import os

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
    settings: Settings, collection: str | None, keep_source_ids: Sequence[str], skipped_paths: Sequence[str] = ()
) -> int:
    """cleanup=full for sharded runs: remove the sources not in ``keep_source_ids``, except those that may lie
    behind ``skipped_paths`` (an unmounted or unreadable folder is not a deleted one)."""
    from llmops_cli.core.ingest import remove_sources

    name = _collection(settings, collection)
    with store_write_lock(settings):
        store = wiring.build_store(settings)
        gone = remove_sources(store, name, set(keep_source_ids), skipped_paths=skipped_paths)
        if gone:
            lexical_index(settings, store, name).update()
    return len(gone)


def ingest_ledger(
    settings: Settings, collection: str | None, source_ids: Sequence[str]
) -> tuple[dict[str, list[str]], int | None]:
    """The store's own record for these sources (source id -> chunk ids; complete writes only) and the collection's
    chunk count (None when it does not exist yet). Counts built from it stay true across retried or killed tasks."""
    from llmops_cli.core.ingest import INCOMPLETE
    from llmops_cli.errors import NotFoundError

    name = _collection(settings, collection)
    store = wiring.build_store(settings)
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


def retriever(settings: Settings, collection: str | None = None) -> Retriever:
    from llmops_cli.core.retrieval import Retriever

    name = _collection(settings, collection)
    # the configured embedder first: the onnx backend loads its model on a thread (no GIL) while the store opens
    embedder = wiring.build_embedder(settings.embedder)
    store = wiring.build_store(settings, read_only=True)
    meta = store.collection_metadata(name)
    if meta is None:
        raise collection_not_found(store, name)
    from llmops_cli.core.collection_meta import check_embedder

    embedder = collection_embedder(settings, meta, embedder)
    check_embedder(meta, embedder, name, searching=True)
    r = settings.retrieval
    return Retriever(
        store, embedder, name, lexical=lexical_index(settings, store, name), candidates=r.candidates, rrf_k=r.rrf_k
    )


def collection_embedder(settings: Settings, meta: dict[str, Any] | None, configured: Any | None = None):
    """The embedder a collection was ingested with (its metadata records it), so that a collection made with
    ``--embed-precision int8`` is searched with int8 vectors without the user repeating the flag. ``configured``:
    the already built embedder of settings.embedder, reused when it is that one."""
    from llmops_cli.core.collection_meta import embedder_settings_for

    es = embedder_settings_for(meta, settings.embedder)
    if configured is not None and es == settings.embedder:
        return configured
    return wiring.build_embedder(es)


def collection_not_found(store, name: str):
    """A not-found error that lists the collections there are, with the closest one first."""
    import difflib

    from llmops_cli.errors import NotFoundError

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


def check_search(text: str, where: dict[str, Any] | None) -> None:
    """Refuse a search that cannot mean anything, before any work: an empty question, or a --where that is not
    plain key=value pairs (check_where_matches then asks the store)."""
    from llmops_cli.errors import UsageError

    if not text or not text.strip():
        raise UsageError(
            "the question is empty",
            hint='pass the text to search for, e.g. llmops query "exit code of a failed DAG run"',
        )
    if not where:
        return
    for key in where:
        if not key or key.startswith("$"):
            raise UsageError(
                f"--where {key}=...: --where takes metadata key=value pairs that must all match, not Chroma operators",
                hint="e.g. --where format=markdown --where source=docs/ingest.md",
            )


def check_where_matches(r: Retriever, where: dict[str, Any] | None) -> None:
    """A --where that no chunk of the collection matches is a usage error naming the keys and values there are."""
    from llmops_cli.errors import UsageError

    if not where or r.store.get(r.collection, where=where, limit=1, include_documents=False):
        return
    sample = r.store.get(r.collection, limit=2000, include_documents=False)
    values: dict[str, set[str]] = {}
    for h in sample:
        for mk, mv in h.metadata.items():
            values.setdefault(mk, set()).add(str(mv))
    for key, value in where.items():
        if key not in values:
            import difflib

            close = difflib.get_close_matches(key, list(values), n=1)
            raise UsageError(
                f"--where {key}={value}: no chunk of collection {r.collection!r} has the metadata key {key!r} "
                f"(keys: {', '.join(sorted(values))})",
                hint=f"did you mean --where {close[0]}=...?" if close else "use one of those keys",
            )
        if str(value) not in values[key]:
            seen = sorted(values[key])
            listed = ", ".join(seen[:12]) + (f" (+{len(seen) - 12} more)" if len(seen) > 12 else "")
            raise UsageError(
                f"--where {key}={value}: no chunk of collection {r.collection!r} has that value (values seen: {listed})",
                hint=f"pick one of the values, e.g. --where {key}={seen[0]}" if seen else "pick another value",
            )
    raise UsageError(
        f"no chunk of collection {r.collection!r} matches all of --where {' '.join(f'{k}={v}' for k, v in where.items())}",
        hint="each --where must match; drop one",
    )


def query(
    settings: Settings,
    text: str,
    *,
    collection: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
) -> list[Hit]:
    check_search(text, where)
    r = retriever(settings, collection)
    check_where_matches(r, where)
    return r.search(text, k or settings.retrieval.k, mode=mode or settings.retrieval.mode, where=where)


def collections(settings: Settings) -> list[dict[str, Any]]:
    store = wiring.build_store(settings, read_only=True)
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


def delete_collection(settings: Settings, name: str) -> None:
    import shutil

    with store_write_lock(settings):
        store = wiring.build_store(settings)
        if store.collection_metadata(name) is None:
            raise collection_not_found(store, name)
        store.delete_collection(name)
        shutil.rmtree(lexical_index(settings, store, name).folder, ignore_errors=True)


def store_location(settings: Settings) -> str:
    return f"{settings.store.host}:{settings.store.port}" if settings.store.host else str(Path(settings.store_path))


def verify_collection(
    settings: Settings,
    name: str,
    *,
    paths: Sequence[str] | None = None,
    globs: list[str] | None = None,
    repair: bool = False,
) -> dict[str, Any]:
    """`collections verify`: compare ledger, chunks, vector index and lexical index (core/verify.py); with ``repair``,
    fix exactly what is inconsistent and verify again. ``paths``: the folders/files the collection is ingested from,
    to compare each file with its record and to re-ingest the sources only their files can repair.
    Returns {"report": VerifyReport (after any repair), "before": VerifyReport | None, "repair": RepairReport | None}.
    Both hold the store's write lock (from the first check to the last write): a writer halfway through (an
    ingest's interrupted-write records, chunks not yet in its ledger) is not damage, so verify waits for it to finish."""
    import contextlib

    exists = bool(settings.store.host) or (settings.store_path / "chroma.sqlite3").is_file()
    with store_write_lock(settings) if exists else contextlib.nullcontext():  # no lock (and no folder) for no store
        return _verify_collection(settings, name, paths, globs, repair=repair)


def _verify_collection(
    settings: Settings, name: str, paths: Sequence[str] | None, globs: list[str] | None, repair: bool
) -> dict[str, Any]:
    from llmops_cli.core import verify as core
    from llmops_cli.errors import StoreError

    name = _collection(settings, name)
    try:
        store = wiring.build_store(settings)
        meta = store.collection_metadata(name)
    except StoreError as e:  # e.g. "database disk image is malformed": a finding, not a failure of verify
        rep = core.VerifyReport(collection=name, errors=[f"opening the collection: {e.message}"])
        if not settings.store.host:
            from llmops_cli.adapters.vectorstores.chroma import sqlite_problems

            rep.storage = sqlite_problems(settings.store_path)
        return {"report": rep, "before": None, "repair": None}
    if meta is None:
        raise collection_not_found(store, name)
    lexical = lexical_index(settings, store, name)
    # the embedder only when it is needed (file signatures, or something to embed): a lexical-only or orphan-only
    # repair loads no model
    embedder = collection_embedder(settings, meta) if paths else None
    files = _verify_files(settings, store, name, embedder, paths, globs) if paths else None
    report = core.verify(store, name, lexical=lexical, files=files)
    if not repair or report.clean:
        return {"report": report, "before": None, "repair": None}

    def reingest(sources: list[str]) -> int:
        from llmops_cli.core import ingest as ingest_core
        from llmops_cli.core.collection_meta import embedder_config, embedder_settings_for

        opts = ingest_options(settings, name, globs=globs, only=set(sources))
        opts.embedder_config = embedder_config(embedder_settings_for(meta, settings.embedder))
        return ingest_core.ingest([str(p) for p in paths or []], embedder=embedder, store=store, opts=opts).chunks_added

    def embed(texts: list[str]):
        return (embedder or collection_embedder(settings, meta)).embed(texts)

    fixed = core.repair(
        store,
        name,
        report,
        embed=embed,
        lexical=lexical,
        reingest=reingest if paths else None,
        available=set(files or {}) if paths else None,
    )
    files = _verify_files(settings, store, name, embedder, paths, globs) if paths else None
    return {"report": core.verify(store, name, lexical=lexical, files=files), "before": report, "repair": fixed}


def _verify_files(
    settings: Settings, store, name: str, embedder, paths: Sequence[str], globs: list[str] | None
) -> dict[str, bool]:
    """Source id -> whether the file under ``paths`` matches its record, as ingest's own plan judges it."""
    from llmops_cli.core.ingest import plan_changes, signature
    from llmops_cli.core.loaders import discover

    opts = ingest_options(settings, name, globs=globs)
    found, _missing = discover([str(p) for p in paths], globs, opts.exclude, root=opts.source_root)
    plan = plan_changes(found, store.read_manifest(name), signature(opts, embedder), opts)
    differ = {sf.source_id for sf, _h, _new in plan.to_process}
    unreadable = {s["source"] for s in plan.skipped}
    return {sf.source_id: sf.source_id not in differ for sf in found if sf.source_id not in unreadable}


def ask(
    settings: Settings,
    question: str,
    *,
    collection: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
    retrieval_only: bool = False,
    model: str | None = None,
    on_token=None,
    use_cache: bool = True,
):
    """The answer path (rewordings -> retrieval per wording -> RRF -> answer with sources).

    Answers are recorded in the answer log (``result.answer_id``). With ``use_cache`` (and feedback.cache), a promoted
    answer to a near-identical question is served instead, without an LLM call (``result.cache_hit``)."""
    from llmops_cli.core.ask import ask as core_ask

    check_search(question, where)
    if use_cache and settings.feedback.cache and not retrieval_only and not where:
        cached = _feedback_cached_answer(settings, question, _collection(settings, collection), on_token)
        if cached is not None:
            return cached
    llm = None if retrieval_only else wiring.build_llm(settings.llm, model=model)
    r = retriever(settings, collection)
    check_where_matches(r, where)
    res = core_ask(
        question,
        r,
        llm,
        k=k or settings.retrieval.k,
        rewordings=settings.llm.rewordings,
        mode=mode or settings.retrieval.mode,
        where=where,
        on_token=on_token,
    )
    res.answer_id = None if retrieval_only else _feedback_record(settings, res, r.collection)
    return res


# --- batch (issue 5): the CLI and the llmops_batch_inference DAG call these; see llmops_cli/core/batch/__init__.py


def _batch_plan(settings: Settings, input_path: str | Path, options: dict[str, Any]):
    from llmops_cli.core.batch.run import BatchOptions, prepare

    client = options.pop("client", "auto")
    defaults = {
        "model": settings.llm.model,
        "timeout": settings.llm.timeout,
        "temperature": settings.llm.temperature,
        "max_tokens": settings.llm.max_tokens,
    }
    for k, v in defaults.items():
        if options.get(k) is None:
            options[k] = v
    try:
        opts = BatchOptions(**{k: v for k, v in options.items() if v is not None})
    except TypeError as e:
        from llmops_cli.errors import UsageError

        raise UsageError(f"batch: {e}") from None
    return prepare(input_path, opts, settings.data_path), client


def _batch_llm_for(settings: Settings, client: str, concurrency: int):
    """Batch LLMs per model, each recording its completed calls in the answer log (kind "batch"); cache hits
    are answered before the LLM and so are not recorded. ``llm_for.close_logs()`` closes the logs."""
    built: dict[str, Any] = {}

    def llm_for(model: str):
        if model not in built:
            built[model] = recording_llm(
                settings, wiring.build_batch_llm(settings.llm, model, client, concurrency), "batch"
            )
        return built[model]

    def close_logs() -> None:
        for llm in built.values():
            llm.log.close()

    llm_for.built = built  # type: ignore[attr-defined]  # the engine closes their sessions
    llm_for.close_logs = close_logs  # type: ignore[attr-defined]
    return llm_for


def _batch_cache(settings: Settings):
    from llmops_cli.core.llm_cache import LLMCache, default_cache_path

    return LLMCache(default_cache_path(settings.data_path))


def batch(
    settings: Settings, input_path: str | Path, *, progress=None, shard: tuple[int, int] | None = None, **options: Any
):
    """Run a batch (or one shard of it) to the end; returns a BatchReport (exit_code 3 when rows ended as errors)."""
    from llmops_cli.core.batch.run import execute

    plan, client = _batch_plan(settings, input_path, dict(options))
    cache = _batch_cache(settings) if plan.options.use_cache else None
    llm_for = _batch_llm_for(settings, client, plan.options.concurrency)
    try:
        return execute(plan, llm_for, cache=cache, progress=progress, shard=shard)
    finally:
        llm_for.close_logs()
        if cache is not None:
            cache.close()


def batch_dry_run(settings: Settings, input_path: str | Path, **options: Any) -> dict[str, Any]:
    from llmops_cli.core.batch.run import estimate

    plan, _client = _batch_plan(settings, input_path, dict(options))
    prices: tuple[float | None, float | None] = (settings.llm.input_cost_per_token, settings.llm.output_cost_per_token)
    if prices == (None, None) and plan.requests:
        try:
            from llmops_cli.adapters.llm.litellm_llm import import_litellm

            litellm = import_litellm()
            m = plan.requests[0].model
            prices = (
                float(litellm.cost_per_token(model=m, prompt_tokens=1, completion_tokens=0)[0]),
                float(litellm.cost_per_token(model=m, prompt_tokens=0, completion_tokens=1)[1]),
            )
        except Exception:  # noqa: BLE001 - unknown price
            prices = (None, None)
    cache = _batch_cache(settings) if plan.options.use_cache else None
    try:
        return estimate(plan, cache=cache, prices=prices)
    finally:
        if cache is not None:
            cache.close()


def batch_plan_shards(
    settings: Settings, input_path: str | Path, num_shards: int, **options: Any
) -> list[dict[str, Any]]:
    from llmops_cli.core.batch.run import plan_shards

    plan, _client = _batch_plan(settings, input_path, dict(options))
    return plan_shards(plan, num_shards)


def batch_run_shard(
    settings: Settings, input_path: str | Path, shard_index: int, num_shards: int, **options: Any
) -> dict[str, Any]:
    return batch(settings, input_path, shard=(int(shard_index), int(num_shards)), **options).to_dict()


def batch_merge_shards(settings: Settings, input_path: str | Path, **options: Any) -> dict[str, Any]:
    from llmops_cli.core.batch.run import execute

    plan, client = _batch_plan(settings, input_path, dict(options))
    return execute(plan, _batch_llm_for(settings, client, plan.options.concurrency), call=False).to_dict()


# --- feedback (issue 6): the answer log, ratings, LLM review, promotion, semantic cache; the CLI (history,
# feedback) and the llmops_feedback DAG call these; see llmops_cli/core/feedback/__init__.py


def answer_log(settings: Settings, *, read_only: bool = False):
    """The answer log, ``<data_dir>/llmops.sqlite`` (close it, or use it as a context manager). ``read_only``:
    a command that only reads it creates no file where there is none yet."""
    from llmops_cli.core.feedback import AnswerLog

    return AnswerLog.for_data_dir(settings.data_path, create=not read_only)


def recording_llm(settings: Settings, llm, kind: str, *, collection: str | None = None):
    """``llm`` wrapped so that every call it completes is recorded in the answer log as ``kind`` ("eval", "batch"),
    the way ``ask`` records answers. Close ``.log`` when done."""
    from llmops_cli.core.feedback import RecordingLLM, config_hash

    return RecordingLLM(llm, answer_log(settings), kind=kind, collection=collection, config_hash=config_hash(settings))


def _feedback_record(settings: Settings, res, collection: str, cached_from: str | None = None, log=None) -> str | None:
    """Record an ask result (in ``log`` when the caller already has it open, so the answer log is opened once per ask);
    a log that cannot be written costs the answer its id, not the answer itself."""
    from contextlib import nullcontext

    from llmops_cli.core.feedback import config_hash, record_ask
    from llmops_cli.errors import LlmopsError

    try:
        with nullcontext(log) if log is not None else answer_log(settings) as target:
            return record_ask(
                target, res, collection=collection, config_hash=config_hash(settings), cached_from=cached_from
            )
    except LlmopsError as e:
        res.record_error = e.message
        return None


def _feedback_cached_answer(settings: Settings, question: str, collection: str, on_token=None):
    import time

    from llmops_cli.core.ask import AskResult
    from llmops_cli.core.feedback.cache import find_cached

    t0 = time.perf_counter()
    # read-only: where no log exists there is nothing promoted, and an ask that fails creates nothing
    with answer_log(settings, read_only=True) as log:
        # Runs on every ask and usually nothing is promoted: a one-row check first, so the common case opens no
        # store, loads no embedder and reads no promotion rows.
        if not log.has_active_promotions(collection):
            return None
        store = wiring.build_store(settings, read_only=True)
        meta = store.collection_metadata(collection)
        if meta is None:
            return None
        hit = find_cached(
            log, collection_embedder(settings, meta), collection, question, settings.feedback.cache_threshold
        )
        found = store.get(collection, ids=[hit.promotion.chunk_id]) if hit is not None else []
        if hit is None or not found:
            return None
        found[0].score = hit.similarity
        origin = log.get(hit.answer_id)
        res = AskResult(
            question=question,
            answer=hit.promotion.answer_text,
            rewordings=[],
            hits=found,
            model=origin.model,
            latency_s=time.perf_counter() - t0,
            cache_hit=hit.to_dict(),
        )
        if on_token is not None:
            on_token(res.answer)
        res.answer_id = _feedback_record(settings, res, collection, cached_from=hit.answer_id, log=log)
    return res


def feedback_thresholds(settings: Settings):
    from llmops_cli.core.feedback.promotion import Thresholds

    f = settings.feedback
    return Thresholds(
        min_helpfulness=f.min_helpfulness, min_relevance=f.min_relevance, require_rating_up=f.require_rating_up
    )


def _promoter(settings: Settings, log):
    from llmops_cli.core.feedback.promotion import Promoter

    store = wiring.build_store(settings)
    # each collection is written with the embedder it was made with (an int8 collection gets int8 vectors)
    return Promoter(
        log,
        store,
        lambda coll: collection_embedder(settings, store.collection_metadata(coll)),
        feedback_thresholds(settings),
        after_write=lambda coll: lexical_index(settings, store, coll).update(),
        write_lock=lambda: store_write_lock(settings),
    )


def feedback_rate(
    settings: Settings, answer_id: str, rating: str, comment: str | None = None, *, rater: str | None = None
) -> dict[str, Any]:
    """Rate an answer up or down as ``rater`` (one vote per rater: this replaces their earlier one), then bring the
    store in line: a down vote removes its promoted answer at once (for an answer served from the cache: the promoted
    answer it was served from)."""
    with answer_log(settings) as log:
        a = log.get(answer_id)
        log.rate(a.id, 1 if rating == "up" else -1, comment, rater=rater)
        target = a.cached_from or a.id
        report = _promoter(settings, log).reconcile([target])
    return {
        "id": a.id,
        "rating": rating,
        "rater": rater,
        "comment": comment,
        "promoted_answer": target,
        "promotion": report.to_dict(),
    }


def feedback_promote(
    settings: Settings, *, answer_ids: Sequence[str] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Reconcile the store with the promotion rule for these answers (default: every reviewed or promoted one)."""
    with answer_log(settings) as log:
        ids = [log.resolve(i) for i in answer_ids] if answer_ids else log.reviewed_ids()
        report = _promoter(settings, log).reconcile(ids, dry_run=dry_run)
    return {**report.to_dict(), "dry_run": dry_run, "checked": len(ids)}


def feedback_plan_review(
    settings: Settings,
    *,
    limit: int = 100,
    batch_size: int | None = None,
    collection: str | None = None,
    retry_errors: bool = False,
) -> list[list[str]]:
    """Ids of answers waiting for review, in batches (for Airflow task mapping)."""
    size = batch_size or settings.feedback.review_batch_size
    with answer_log(settings) as log:
        ids = [a.id for a in log.to_review(limit=limit, collection=collection, retry_errors=retry_errors)]
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def feedback_review(
    settings: Settings,
    *,
    limit: int = 50,
    collection: str | None = None,
    retry_errors: bool = False,
    answer_ids: Sequence[str] | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Review answers with the LLM judge (the next ``limit`` unreviewed ones, or ``answer_ids`` still unreviewed), store
    the verdicts, then promote or remove those answers."""
    from llmops_cli.core.feedback.review import review_answers

    f = settings.feedback
    judge = settings.llm.model_copy(
        update={k: v for k, v in {"api_base": f.judge_api_base, "api_key": f.judge_api_key}.items() if v}
    )
    llm = wiring.build_llm(
        judge,
        model=f.judge_model,
        setting="feedback.judge_model",
        also="or pass --model MODEL to llmops feedback review",
    )
    with answer_log(settings) as log:
        if answer_ids is not None:
            todo = [
                a
                for a in log.get_many(answer_ids)
                if (rv := log.review_of(a.id)) is None or (retry_errors and rv.status == "error")
            ]
        else:
            todo = log.to_review(limit=limit, collection=collection, retry_errors=retry_errors)
        store = wiring.build_store(settings)

        def context(a) -> list[str]:
            try:
                return [h.text for h in store.get(a.collection, ids=[c["id"] for c in a.chunks])]
            except Exception:  # noqa: BLE001 - the context helps the judge but is optional (store may have changed)
                return []

        report = review_answers(log, llm, todo, context=context, concurrency=settings.feedback.review_concurrency)
        out = report.to_dict()
        out["judge_model"] = llm.model
        if promote:
            ids = report.reviewed + [e["id"] for e in report.errors]
            out["promotion"] = _promoter(settings, log).reconcile(ids).to_dict()
    return out


def feedback_export(
    settings: Settings, *, fmt: str = "openai-chat", system: str | None = None, collection: str | None = None
):
    """Good answers as fine-tuning rows (a list of dicts, one JSONL line each)."""
    from llmops_cli.core.feedback.export import DEFAULT_SYSTEM, FORMATS, openai_chat_rows
    from llmops_cli.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}", hint="use --format openai-chat"
        )
    with answer_log(settings) as log:
        return list(
            openai_chat_rows(
                log,
                feedback_thresholds(settings),
                system=system if system is not None else DEFAULT_SYSTEM,
                collection=collection,
            )
        )
