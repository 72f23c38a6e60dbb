"""Evaluation entry points shared by the CLI (``llmops eval``, ``llmops eval sweep``) and the Airflow ``llmops_eval``
DAG: settings in, the retriever, LLMs, embedder and cache built here, the core steps (``core.eval.pipeline``,
``core.eval.sweep``) run with them, the run recorded and written.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmops_cli import pipelines, wiring
from llmops_cli.core.eval.compare import load_report_ref
from llmops_cli.core.eval.datasets import load_dataset
from llmops_cli.core.eval.gates import parse_gates
from llmops_cli.core.eval.history import RunHistory, default_history_path
from llmops_cli.core.eval.llm_calls import CachedLLM, Usage
from llmops_cli.core.eval.pipeline import EVAL_VERSION, plan_eval, run_evaluation
from llmops_cli.core.eval.results_files import output_format, write_results
from llmops_cli.core.eval.robustness import PERTURBATIONS
from llmops_cli.core.eval.runner import EvalOptions
from llmops_cli.core.eval.sweep import SweepEntry, SweepReport, plan_configs, rank_entries
from llmops_cli.core.llm_cache import LLMCache, default_cache_path
from llmops_cli.errors import UsageError
from llmops_cli.settings import ChunkingSettings

if TYPE_CHECKING:
    from llmops_cli.core.eval.report import EvalReport
    from llmops_cli.settings import Settings


def evaluate(
    settings: Settings,
    dataset_path: str | Path,
    *,
    collection: str | None = None,
    metrics: Sequence[str] | None = None,
    k: int | None = None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
    concurrency: int | None = None,
    judge_model: str | None = None,
    judge_client: str = "auto",
    perturbations: Sequence[str] | None = None,
    limit: int | None = None,
    use_cache: bool = True,
    record: bool = True,
    label: str | None = None,
    baseline: str | None = None,
    regression_tolerance: float | None = None,
    fail_under: Sequence[str] | None = None,
    outputs: Sequence[str | Path] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Evaluate a question set. Gates are checked (``report.gates``) but not raised: the caller decides the
    exit code. ``baseline`` (a run id, ``latest`` or a report file) fills ``report.comparison``."""
    es = settings.eval  # the config's defaults for what was not passed
    metrics = metrics or [m for m in es.metrics.split(",") if m.strip()]
    concurrency = concurrency or es.concurrency
    judge_model = judge_model or es.judge_model
    regression_tolerance = es.regression_tolerance if regression_tolerance is None else regression_tolerance
    if perturbations is None:
        perturbations = [p.strip() for p in es.perturbations.split(",") if p.strip()]
    gates = parse_gates(list(fail_under or []))
    for out in outputs:
        output_format(out)  # fail on a bad extension before any work
    for p in perturbations or []:
        if p not in PERTURBATIONS:
            raise UsageError(f"unknown perturbation {p!r}", hint=f"choose from: {', '.join(PERTURBATIONS)}")
    if judge_client not in ("auto", "http", "litellm"):
        raise UsageError(f"unknown judge client {judge_client!r}", hint="use auto, http or litellm")
    dataset = load_dataset(dataset_path, limit=limit)
    base = None
    if baseline:  # resolved before the run: a wrong reference must not cost a whole evaluation
        h = RunHistory(default_history_path(settings.data_path))
        try:
            base = load_report_ref(baseline, h)
        finally:
            h.close()
    k = k or settings.retrieval.k
    mode = mode or settings.retrieval.mode
    llm_model = settings.llm.model
    judge = judge_model or llm_model
    coll = collection or settings.store.collection
    plan = plan_eval(
        dataset, metrics, gates, k=k, llm_model=llm_model, judge_model=judge, perturbations=list(perturbations or [])
    )
    chosen = plan.metrics

    retriever = pipelines.retriever(settings, coll) if plan.needs_retriever else None
    embedder = (
        wiring.build_embedder(settings.embedder) if ("semantic_similarity" in chosen or retriever is not None) else None
    )

    usage = Usage()
    cache = LLMCache(default_cache_path(settings.data_path)) if use_cache and (judge or plan.generate) else None
    judge_llm = None
    if plan.needs_judge:
        # judge calls are many small async calls, like a batch: the same lean client for OpenAI-compatible
        # endpoints (litellm's per-call CPU caps a process near 100 calls/s), litellm for the rest
        inner = wiring.build_batch_llm(settings.llm, judge, judge_client)
        if hasattr(inner, "prepare"):
            inner.prepare()  # resolve prices outside the event loop
        # every LLM client retries by itself (llm.max_retries): no second retry loop here
        # recorded below the cache: only calls that reached the LLM go into the answer log (kind "eval")
        judge_llm = CachedLLM(pipelines.recording_llm(settings, inner, "eval"), cache, usage)
    answer_llm = None
    if plan.generate:
        answer_llm = CachedLLM(pipelines.recording_llm(settings, wiring.build_llm(settings.llm), "eval"), cache, usage)

    config = {
        "eval_version": EVAL_VERSION,
        "collection": coll if retriever is not None else None,
        "metrics": chosen,
        "k": k,
        "mode": mode,
        "where": where,
        "llm_model": llm_model if plan.generate else None,
        "judge_model": judge if judge_llm is not None else None,
        "embedder": getattr(embedder, "identity", None),
        "retrieval": settings.retrieval.model_dump(),
        "perturbations": list(perturbations) if "robustness" in chosen else [],
        "rewordings": settings.llm.rewordings if plan.generate else None,
        "limit": limit,  # the dataset hash covers the whole file; a limited run is a different config
    }
    options = EvalOptions(
        metrics=chosen, k=k, mode=mode, where=where, concurrency=concurrency, perturbations=list(perturbations)
    )
    try:
        report = run_evaluation(
            dataset,
            plan,
            options,
            retriever=retriever,
            answer_llm=answer_llm,
            judge_llm=judge_llm,
            embedder=embedder,
            rewordings=settings.llm.rewordings,
            config=config,
            usage=usage.to_dict,
            base=base,
            tolerance=regression_tolerance,
            progress=progress,
        )
    finally:
        if cache is not None:
            cache.close()
        for llm in (judge_llm, answer_llm):
            if llm is not None and hasattr(getattr(llm, "inner", None), "log"):
                llm.inner.log.close()

    if record:
        history = RunHistory(default_history_path(settings.data_path))
        try:
            history.record(report, label=label)
        finally:
            history.close()
    for out in outputs:
        write_results(report, out)
    return report


_evaluate = evaluate  # sweep's own ``evaluate`` parameter hides the name


def _embedder_token_limit(es) -> int:
    return int(wiring.build_embedder(es).tokens.max_tokens)


def sweep(
    settings: Settings,
    dataset_path: str | Path,
    sources: Sequence[str],
    *,
    strategies: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    overlaps: Sequence[int] | None = None,
    embedders: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    k: int | None = None,
    mode: str | None = None,
    rank_by: str | None = None,
    keep: bool = False,
    record: bool = True,
    progress: Callable[[str], None] | None = None,
    evaluate: Callable[..., Any] | None = None,
    ingest: Callable[..., Any] | None = None,
    delete_collection: Callable[..., Any] | None = None,
    token_limit: Callable[..., int] | None = None,
) -> SweepReport:
    """A chunking sweep (see ``core.eval.sweep``): each configuration ingested into a temporary collection, evaluated,
    ranked. ``token_limit(embedder_settings)``: the longest chunk the embedder reads (default: its tokenizer's
    maximum)."""
    evaluate = evaluate or _evaluate
    ingest = ingest or pipelines.ingest
    delete_collection = delete_collection or pipelines.delete_collection
    if not sources:
        raise UsageError("a sweep needs sources to ingest", hint="pass --sources PATH (repeatable)")
    load_dataset(dataset_path)  # fail early on a bad question set, before any ingest
    k = k or settings.retrieval.k
    strategies = list(strategies or [settings.chunking.strategy])
    sizes = list(sizes or [settings.chunking.size])
    overlaps = list(overlaps or [settings.chunking.overlap])
    embedders = list(embedders or [settings.embedder.model])
    for value, field_name, flag in [
        *[(x, "strategy", "--strategy") for x in strategies],
        *[(x, "size", "--size") for x in sizes],
    ]:
        try:  # a bad value on its own is a usage error; only combinations (overlap >= size) are skipped
            ChunkingSettings(**{field_name: value, "overlap": 0})
        except ValidationError as e:
            raise UsageError(
                f"{flag} {value!r}: {e.errors()[0]['msg']}", hint="see `llmops eval sweep --help`"
            ) from None
    if any(o < 0 for o in overlaps):
        raise UsageError("--overlap must be 0 or more")
    token_limit = token_limit or _embedder_token_limit
    for emb in embedders:  # the embedders are loaded here anyway (ingest reuses them): before, not at the nth ingest
        limit = token_limit(settings.embedder.model_copy(update={"model": emb}))
        over = [x for x in sizes if x > limit]
        if over:
            raise UsageError(
                f"--size {over[0]} is over the embedding model {emb}'s maximum of {limit} tokens "
                "(longer chunks would be truncated)",
                hint=f"use --size {limit} or less" + (f" (or drop --embedder {emb})" if len(embedders) > 1 else ""),
            )
    tag = hashlib.sha256(f"{dataset_path}|{sorted(map(str, sources))}|{time.time()}".encode()).hexdigest()[:8]
    report = SweepReport(dataset=str(dataset_path), rank_by=rank_by or f"ndcg@{k}", kept_collections=keep)
    planned: list[tuple[int, str, ChunkingSettings, str]] = []
    for n, (strategy, size, overlap, emb) in enumerate(plan_configs(strategies, sizes, overlaps, embedders), start=1):
        label = f"{strategy}/{size}/{overlap}/{emb}"
        try:
            planned.append((n, label, ChunkingSettings(strategy=strategy, size=size, overlap=overlap), emb))
        except ValidationError as e:
            report.skipped.append({"config": label, "reason": e.errors()[0]["msg"]})
    if not planned:
        raise UsageError(
            f"every combination is skipped: {'; '.join(s['config'] + ': ' + s['reason'] for s in report.skipped[:3])}",
            hint="pass an --overlap smaller than the --size values",
        )
    done: list[SweepEntry] = []
    for n, label, chunking, emb in planned:
        strategy, size, overlap = chunking.strategy, chunking.size, chunking.overlap
        variant = settings.model_copy(
            update={"chunking": chunking, "embedder": settings.embedder.model_copy(update={"model": emb})}
        )
        name = f"sweep-{tag}-{n}"
        if progress:
            progress(f"[{n}] ingesting {label} into {name}")
        try:
            t0 = time.perf_counter()
            ing = ingest(variant, list(sources), collection=name)
            t1 = time.perf_counter()
            if progress:
                progress(f"[{n}] evaluating {label}")
            rep = evaluate(
                variant,
                dataset_path,
                collection=name,
                metrics=list(metrics or ["retrieval"]),
                k=k,
                mode=mode,
                record=record,
                label=f"sweep {tag} {label}",
            )
            t2 = time.perf_counter()
            done.append(
                SweepEntry(
                    rank=0,
                    strategy=strategy,
                    size=size,
                    overlap=overlap,
                    embedder=emb,
                    collection=name,
                    chunks=int(getattr(ing, "chunks_total", 0) or 0),
                    ingest_seconds=round(t1 - t0, 2),
                    eval_seconds=round(t2 - t1, 2),
                    metrics=rep.metrics,
                    run_id=rep.run_id,
                )
            )
        finally:
            if not keep:
                try:
                    delete_collection(variant, name)
                except Exception:  # noqa: BLE001 - a collection that was never created has nothing to delete
                    pass
    return rank_entries(report, done)
