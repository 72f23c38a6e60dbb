"""The evaluation entry point shared by the CLI (``llmops eval``) and the Airflow ``llmops_eval`` DAG
(through ``llmops_cli.pipelines.evaluate``): settings in, parts wired, one run evaluated, recorded, written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.eval.report import EvalReport
    from llmops_cli.settings import Settings

# bump when a prompt or a metric definition changes: the config hash then differs from older runs
EVAL_VERSION = "1"


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluate(
    settings: "Settings",
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
) -> "EvalReport":
    """Evaluate a question set. Gates are checked (``report.gates``) but not raised: the caller decides the
    exit code. ``baseline`` (a run id, ``latest`` or a report file) fills ``report.comparison``."""
    from llmops_cli import wiring
    from llmops_cli.core.eval.compare import compare_reports, load_report_ref
    from llmops_cli.core.eval.datasets import load_dataset
    from llmops_cli.core.eval.gates import check_gates, parse_gates, validate_gates
    from llmops_cli.core.eval.history import RunHistory, default_history_path
    from llmops_cli.core.eval.llm_calls import CachedLLM, Usage
    from llmops_cli.core.eval.results_files import output_format, write_results
    from llmops_cli.core.eval.robustness import PERTURBATIONS
    from llmops_cli.core.eval.runner import ANSWER_METRICS, Answered, EvalOptions, resolve_metrics, run_eval
    from llmops_cli.core.llm_cache import LLMCache, default_cache_path

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
    chosen = resolve_metrics(list(metrics) if metrics else None, dataset, llm_available=bool(judge),
                             answers_possible=bool(llm_model))
    gates = validate_gates(gates, chosen, k)  # a typo or an impossible threshold must not cost a whole evaluation

    needs_answers = any(m in chosen for m in (*ANSWER_METRICS, "faithfulness", "answer_relevance", "correctness", "helpfulness", "toxicity"))
    generate = needs_answers and any(i.answer is None for i in dataset.items)
    needs_retriever = any(m in chosen for m in ("retrieval", "chunk", "robustness", "faithfulness")) or generate
    if generate and not llm_model:
        raise UsageError("answer metrics need answers: the question set has no 'answer' column and no LLM is configured",
                         hint="set llm.model (LLMOPS_LLM_MODEL), add an 'answer' column, or use --metrics retrieval")

    from llmops_cli import pipelines

    retriever = pipelines.retriever(settings, coll) if needs_retriever else None
    embedder = wiring.build_embedder(settings.embedder) if ("semantic_similarity" in chosen or retriever is not None) else None

    usage = Usage()
    cache = LLMCache(default_cache_path(settings.data_path)) if use_cache and (judge or generate) else None
    judge_llm = None
    if judge and (any(m in chosen for m in ("faithfulness", "answer_relevance", "correctness", "helpfulness", "toxicity"))
                  or ("robustness" in chosen and "paraphrase" in (perturbations or []))):
        # judge calls are many small async calls, like a batch: the same lean client for OpenAI-compatible
        # endpoints (litellm's per-call CPU caps a process near 100 calls/s), litellm for the rest
        inner = wiring.build_batch_llm(settings.llm, judge, judge_client)
        if hasattr(inner, "prepare"):
            inner.prepare()  # resolve prices outside the event loop
        # every LLM client retries by itself (llm.max_retries): no second retry loop here
        # recorded below the cache: only calls that reached the LLM go into the answer log (kind "eval")
        judge_llm = CachedLLM(pipelines.recording_llm(settings, inner, "eval"), cache, usage)
    answerer = None
    if generate:
        from llmops_cli.core import ask

        answer_llm = CachedLLM(pipelines.recording_llm(settings, wiring.build_llm(settings.llm), "eval"), cache, usage)

        def answerer(question: str) -> Answered:
            # the same step as `llmops ask`: rewordings, retrieval, grounded answer (LLM calls through the cache)
            res = ask.ask(question, retriever, answer_llm, k=k, rewordings=settings.llm.rewordings, mode=mode, where=where)
            return Answered(answer=res.answer, hits=list(res.hits))

    config = {
        "eval_version": EVAL_VERSION,
        "collection": coll if retriever is not None else None,
        "metrics": chosen,
        "k": k,
        "mode": mode,
        "where": where,
        "llm_model": llm_model if generate else None,
        "judge_model": judge if judge_llm is not None else None,
        "embedder": getattr(embedder, "identity", None),
        "retrieval": settings.retrieval.model_dump(),
        "perturbations": list(perturbations) if "robustness" in chosen else [],
        "rewordings": settings.llm.rewordings if generate else None,
        "limit": limit,  # the dataset hash covers the whole file; a limited run is a different config
    }
    options = EvalOptions(metrics=chosen, k=k, mode=mode, where=where, concurrency=concurrency,
                          perturbations=list(perturbations))
    try:
        report = asyncio.run(run_eval(dataset, options, retriever=retriever, answerer=answerer, judge_llm=judge_llm,
                                      embedder=embedder, progress=progress, config=config, config_hash=config_hash(config),
                                      usage=usage.to_dict))
    finally:
        if cache is not None:
            cache.close()
        for llm in (judge_llm, answerer and answer_llm):
            if llm is not None and hasattr(getattr(llm, "inner", None), "log"):
                llm.inner.log.close()

    check_gates(report, gates)
    if base is not None:
        report.comparison = compare_reports(base, report, tolerance=regression_tolerance)
    if record:
        history = RunHistory(default_history_path(settings.data_path))
        try:
            history.record(report, label=label)
        finally:
            history.close()
    for out in outputs:
        write_results(report, out)
    return report
