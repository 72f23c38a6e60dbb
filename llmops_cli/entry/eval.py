"""Evaluation entry points shared by the CLI (``llmops eval ...``) and the Airflow ``llmops_eval`` DAG: a workspace
(or settings) in, the retriever, LLM stacks and embedder taken from it, the core steps (``core.eval.pipeline``,
``core.eval.sweep``, ``core.eval.generate``) run with them, the run recorded and written; and how a finished run ends
(``outcome``: the error, if any, that sets the exit code), so the CLI and the DAG judge a run the same way.

Every LLM call (answers, judge verdicts, generated questions) goes through the workspace's one stack: base client
(its own retries) -> recording in the answer log as kind ``eval`` -> the LLM cache. The cache layer (``CachedLLM``)
is also eval's call counter: it totals the calls, cache hits, failures, tokens and cost of the stacks that share one
``Usage``, so only calls that reached the LLM are recorded and counted as calls.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmops_cli import wiring
from llmops_cli.core import tracing
from llmops_cli.core.eval.baselines import blessed_comparison
from llmops_cli.core.eval.compare import compare_reports, load_report_ref
from llmops_cli.core.eval.datasets import FORMATS, load_dataset, write_dataset
from llmops_cli.core.eval.gates import metric_names, parse_gates
from llmops_cli.core.eval.generate import GenerateResult, run_generate, sample_chunks
from llmops_cli.core.eval.llm_calls import STOP_ERRORS
from llmops_cli.core.eval.matrix import (
    Combo,
    MatrixEntry,
    MatrixReport,
    MemoRetriever,
    SharedContexts,
    leaderboard,
    plan_matrix,
    prompt_answerer,
)
from llmops_cli.core.eval.matrix_report import matrix_output_format, write_matrix
from llmops_cli.core.eval.pipeline import EVAL_VERSION, plan_eval, run_evaluation
from llmops_cli.core.eval.results_files import check_output_path, output_format, write_results
from llmops_cli.core.eval.robustness import PERTURBATIONS
from llmops_cli.core.eval.runner import EvalOptions, resolve_metrics
from llmops_cli.core.eval.sweep import SweepEntry, SweepReport, plan_configs, rank_entries
from llmops_cli.core.prompts import ANSWER, REWORD, PromptTemplate, load_prompt, load_prompts
from llmops_cli.core.usage import Usage
from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import ingest as ingest_entry
from llmops_cli.entry import store as store_entry
from llmops_cli.errors import ExitCode, InputError, LlmopsError, NotFoundError, UsageError, closest
from llmops_cli.settings import ChunkingSettings, Settings
from llmops_cli.wiring import Workspace

if TYPE_CHECKING:
    from llmops_cli.core.eval.report import EvalReport

# every LLM call of an evaluation (answers, judge verdicts, generated questions) is an answer-log row of this kind
LOG_KIND = "eval"


@contextmanager
def _opened(target: Workspace | Settings) -> Iterator[Workspace]:
    """The caller's workspace as it is (the caller closes it), or a workspace of these settings, closed on the way
    out: every entry point here takes either."""
    if isinstance(target, Workspace):
        yield target
        return
    with Workspace(target) as ws:
        yield ws


@dataclass
class _Prepared:
    """What every answer configuration of one invocation shares: the checked inputs and the parts built once."""

    dataset: Any
    plan: Any
    options: EvalOptions
    gates: list[Any]
    base: EvalReport | None
    retriever: Any
    embedder: Any
    judge: str | None
    config: dict[str, Any]
    judge_client: str
    use_cache: bool
    tolerance: float


def _prepare(
    ws: Workspace,
    dataset_path: str | Path,
    *,
    collection: str | None,
    metrics: Sequence[str] | None,
    k: int | None,
    mode: str | None,
    where: dict[str, Any] | None,
    concurrency: int | None,
    judge_model: str | None,
    judge_client: str,
    perturbations: Sequence[str] | None,
    limit: int | None,
    use_cache: bool,
    baseline: str | None,
    regression_tolerance: float | None,
    fail_under: Sequence[str] | None,
    outputs: Sequence[str | Path],
    llm_model: str | None,
    output_formats: Callable[[str | Path], Any] = output_format,
) -> _Prepared:
    """Every check that can fail before any work, then the parts shared by the answer configurations."""
    settings = ws.settings
    es = settings.eval  # the config's defaults for what was not passed
    metrics = metrics or [m for m in es.metrics.split(",") if m.strip()]
    concurrency = concurrency or es.concurrency
    judge_model = judge_model or es.judge_model
    tolerance = es.regression_tolerance if regression_tolerance is None else regression_tolerance
    if perturbations is None:
        perturbations = [p.strip() for p in es.perturbations.split(",") if p.strip()]
    gates = parse_gates(list(fail_under or []))
    for out in outputs:
        output_formats(out)  # fail on a bad extension before any work
    for p in perturbations or []:
        if p not in PERTURBATIONS:
            raise UsageError(f"unknown perturbation {p!r}", hint=f"choose from: {', '.join(PERTURBATIONS)}")
    if judge_client not in ("auto", "http", "litellm"):
        raise UsageError(f"unknown judge client {judge_client!r}", hint="use auto, http or litellm")
    dataset = load_dataset(dataset_path, limit=limit)
    # resolved before the run: a wrong reference must not cost a whole evaluation
    base = load_report_ref(baseline, ws.eval_history()) if baseline else None
    k = k or settings.retrieval.k
    mode = mode or settings.retrieval.mode
    judge = judge_model or settings.llm.model or llm_model
    coll = collection or settings.store.collection
    plan = plan_eval(
        dataset, metrics, gates, k=k, llm_model=llm_model, judge_model=judge, perturbations=list(perturbations or [])
    )
    chosen = plan.metrics
    ask_entry.check_where(where)
    retriever = ask_entry.retriever(ws, coll) if plan.needs_retriever else None
    if retriever is not None:
        # a --where no chunk matches would score every question 0 and pass as a run: refuse it, as `query` does
        ask_entry.check_where_matches(retriever, where)
    embedder = ws.embedder() if ("semantic_similarity" in chosen or retriever is not None) else None
    config = {
        "eval_version": EVAL_VERSION,
        "collection": coll if retriever is not None else None,
        "metrics": chosen,
        "k": k,
        "mode": mode,
        "where": where,
        "llm_model": None,
        "judge_model": judge if plan.needs_judge else None,
        "embedder": getattr(embedder, "identity", None),
        "retrieval": settings.retrieval.model_dump(),
        "perturbations": list(perturbations) if "robustness" in chosen else [],
        "rewordings": settings.llm.rewordings if plan.generate else None,
        "limit": limit,  # the dataset hash covers the whole file; a limited run is a different config
    }
    options = EvalOptions(
        metrics=chosen, k=k, mode=mode, where=where, concurrency=concurrency, perturbations=list(perturbations)
    )
    return _Prepared(
        dataset=dataset,
        plan=plan,
        options=options,
        gates=gates,
        base=base,
        retriever=retriever,
        embedder=embedder,
        judge=judge,
        config=config,
        judge_client=judge_client,
        use_cache=use_cache,
        tolerance=tolerance,
    )


def _sum_usage(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": 0, "cached": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
    for u in parts:
        for key in ("calls", "cached", "failed", "input_tokens", "output_tokens"):
            out[key] += int(u.get(key, 0))
        out["cost"] = None if out["cost"] is None or u.get("cost") is None else out["cost"] + u["cost"]
    if out["cost"] is not None:
        out["cost"] = round(out["cost"], 6)
    return out


def _run_combo(
    ws: Workspace,
    prep: _Prepared,
    combo: Combo,
    *,
    contexts: SharedContexts | None,
    reword_prompt: PromptTemplate,
    answer_usage: Usage,
    extra_config: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> MatrixEntry:
    """One answer configuration (model, prompt) over the prepared question set: answers, scores, gates."""
    plan = prep.plan
    judge_usage = Usage()
    judge_llm = None
    if plan.needs_judge:
        # judge calls are many small async calls, like a batch: the same lean client for OpenAI-compatible
        # endpoints (litellm's per-call CPU caps a process near 100 calls/s), litellm for the rest; every client
        # retries by itself (llm.max_retries): no second retry loop here
        judge_llm = ws.llm(
            LOG_KIND, model=prep.judge, client=prep.judge_client, cache=prep.use_cache, usage=judge_usage
        )
        judge_llm.prepare()  # resolve prices outside the event loop
    answerer = None
    if plan.generate:
        answer_llm = ws.llm(LOG_KIND, model=combo.model, cache=prep.use_cache, usage=answer_usage)
        if contexts is None:  # one configuration: the answer model words the searches, as `llmops ask` does
            o = prep.options
            contexts = SharedContexts(
                prep.retriever,
                answer_llm,
                k=o.k,
                rewordings=ws.settings.llm.rewordings,
                mode=o.mode,
                where=o.where,
                reword_prompt=reword_prompt,
            )
        answerer = prompt_answerer(answer_llm, combo.prompt, contexts)
    config = dict(prep.config)
    if plan.generate:
        config["llm_model"] = combo.model
        config["prompt"] = combo.prompt.ref()
        config["reword_prompt"] = reword_prompt.ref()
    config.update(extra_config or {})
    report = run_evaluation(
        prep.dataset,
        plan,
        prep.options,
        retriever=prep.retriever,
        answerer=answerer,
        judge_llm=judge_llm,
        embedder=prep.embedder,
        config=config,
        # the total as before, and its two parts: the answers' (what shipping costs) and the judge's
        usage=lambda: {
            **_sum_usage(answer_usage.to_dict(), judge_usage.to_dict()),
            "answers": _answers_usage(answer_usage),
            "judge": judge_usage.to_dict(),
        },
        base=prep.base,
        tolerance=prep.tolerance,
        progress=progress,
    )
    _evaluation_events(report, combo.label if "matrix" in config else None)
    return MatrixEntry(combo, report, _answers_usage(answer_usage), judge_usage.to_dict())


def _answers_usage(usage: Usage) -> dict[str, Any]:
    """The answers' usage, with ``served``: the tokens and cost of every answer, cached ones included (what they
    cost when they were made), which the leaderboard compares: answers from an earlier run cost nothing now, but
    the model that wrote them is not free."""
    return {**usage.to_dict(), "served": usage.served()}


def _evaluation_events(report: EvalReport, combination: str | None) -> None:
    """The judge's verdicts as ``gen_ai.evaluation.result`` events on the run's span (OpenTelemetry GenAI), one per
    question and judged metric; the reasons stay out (they may quote the answer)."""
    from llmops_cli.core.eval.judge import JUDGE_METRICS

    model = report.config.get("llm_model")
    for row in report.rows:
        for name in JUDGE_METRICS:
            value = row.metrics.get(name)
            if value is None:
                continue
            tracing.event(
                "gen_ai.evaluation.result",
                **{
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.value": float(value),
                    "gen_ai.request.model": model,
                    "llmops.eval.item_id": row.id,
                    "llmops.eval.combination": combination,
                },
            )


@tracing.traced("llmops eval run")
def evaluate(
    target: Workspace | Settings,
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
    model: str | None = None,
    prompt: str | Path | None = None,
    reword_prompt: str | Path | None = None,
    against_baseline: bool = False,
    matrix: dict[str, Any] | None = None,
) -> EvalReport:
    """Evaluate a question set. Gates are checked (``report.gates``) but not raised: ``outcome`` says how the run
    ends. ``baseline`` (a run id, ``latest`` or a report file) fills ``report.comparison``; ``against_baseline``
    compares with the question set's blessed run instead (``report.comparison`` with per-question regressions).
    ``model`` answers (default llm.model) with the answer ``prompt`` (a file; default the built-in one), searching
    with the ``reword_prompt``'s rewordings; the run records both prompts' names and hashes. ``matrix`` (``{"id":
    ...}``, from ``matrix_combinations``) makes the run one combination of a matrix evaluated call by call
    (``matrix_leaderboard`` ranks them afterwards). The run is one span, ``llmops eval run``: its LLM calls nest
    under it and the judge's verdicts are ``gen_ai.evaluation.result`` events on it."""
    answer_prompt = load_prompt(prompt, ANSWER)
    reword = load_prompt(reword_prompt, REWORD)
    with _opened(target) as ws:
        model = model or ws.settings.llm.model
        if against_baseline and baseline:
            raise UsageError("--baseline and --against-baseline both name a baseline", hint="pass one of them")
        prep = _prepare(
            ws,
            dataset_path,
            collection=collection,
            metrics=metrics,
            k=k,
            mode=mode,
            where=where,
            concurrency=concurrency,
            judge_model=judge_model,
            judge_client=judge_client,
            perturbations=perturbations,
            limit=limit,
            use_cache=use_cache,
            baseline=baseline,
            regression_tolerance=regression_tolerance,
            fail_under=fail_under,
            outputs=outputs,
            llm_model=model,
        )
        blessed = _blessed_base(ws, prep) if against_baseline else None
        entry = _run_combo(
            ws,
            prep,
            Combo(model or "", answer_prompt),
            contexts=None,
            reword_prompt=reword,
            answer_usage=Usage(),
            extra_config={"matrix": matrix} if matrix else None,
            progress=progress,
        )
        report = entry.report
        if blessed is not None:
            report.comparison = blessed_comparison(blessed, report, tolerance=prep.tolerance)
        if record:
            ws.eval_history().record(report, label=label)
            tracing.annotate(**{"llmops.eval.run_id": report.run_id})
        trend = _trend(ws, report, outputs)
    for out in outputs:
        write_results(report, out, trend=trend)
    return report


def _trend(ws: Workspace, report: EvalReport, outputs: Sequence[str | Path]) -> list[dict[str, Any]] | None:
    """The recorded runs of the report's question set (oldest first), for an HTML report's trend chart."""
    if not any(output_format(o) == "html" for o in outputs):
        return None
    runs = ws.eval_history().list_runs(limit=20, dataset_sha256=report.dataset.get("sha256"))
    return list(reversed(runs))


def _blessed_base(ws: Workspace, prep: _Prepared) -> EvalReport:
    history = ws.eval_history()
    found = history.blessed_for(prep.dataset.sha256)
    if found is None:
        raise NotFoundError(
            f"no blessed baseline for question set {prep.dataset.path} (sha256 {prep.dataset.sha256[:12]})",
            hint="bless a run of this question set first: llmops eval bless RUN",
        )
    return history.load(found["run_id"])


@tracing.traced("llmops eval run")
def evaluate_matrix(
    target: Workspace | Settings,
    dataset_path: str | Path,
    *,
    models: Sequence[str] = (),
    prompts: Sequence[str | Path] = (),
    reword_prompt: str | Path | None = None,
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
    fail_under: Sequence[str] | None = None,
    rank_by: str | None = None,
    outputs: Sequence[str | Path] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> MatrixReport:
    """Every model with every answer prompt on the same questions and the same retrieved context: the context of
    each question (rewordings by llm.model with ``reword_prompt``, then the search) is made once and shared; each
    combination is scored (and recorded) as a run of its own, and a leaderboard compares them.

    The same three steps as the Airflow DAG, in one process: ``plan_matrix_run`` (the shared context),
    ``evaluate_matrix_combination`` per combination, ``matrix_from_runs`` (the leaderboard and the report files)."""
    for out in outputs:
        matrix_output_format(out)
    t0 = time.perf_counter()
    options = {
        "collection": collection,
        "metrics": list(metrics) if metrics else None,
        "k": k,
        "mode": mode,
        "where": where,
        "concurrency": concurrency,
        "judge_model": judge_model,
        "judge_client": judge_client,
        "perturbations": list(perturbations) if perturbations is not None else None,
        "limit": limit,
        "use_cache": use_cache,
        "fail_under": list(fail_under or []),
    }
    with _opened(target) as ws:
        setup = _matrix_setup(ws, str(dataset_path), list(models), [str(p) for p in prompts], reword_prompt, options)
        _check_rank_by(rank_by, setup.prep)  # a typo must not cost the whole matrix (every answer and verdict)
        tracing.annotate(**{"llmops.eval.matrix_id": setup.matrix["id"], "llmops.eval.combinations": len(setup.combos)})
        _share_context(setup, progress)
        entries = [
            _combo_entry(ws, setup, n, record=record, label=label, progress=progress) for n in range(len(setup.combos))
        ]
    rep = _matrix_report(setup.matrix["id"], entries, rank_by, setup.context_usage.to_dict(), time.perf_counter() - t0)
    for out in outputs:
        write_matrix(rep, out)
    return rep


def _check_rank_by(rank_by: str | None, prep: _Prepared) -> None:
    """``--rank-by`` must name a metric the runs compute, checked before any work (as the gates are)."""
    if rank_by is None:
        return
    valid = metric_names(prep.plan.metrics, prep.options.k)
    if rank_by not in valid:
        close = closest(rank_by, valid, cutoff=0.6)
        raise UsageError(
            f"--rank-by {rank_by}: not a metric of this run" + (f"; did you mean {close}?" if close else ""),
            hint=f"choose from: {', '.join(valid)}",
        )


@dataclass
class _MatrixSetup:
    """One matrix's parts: the prepared evaluation, its combinations, the shared context and what made it."""

    prep: _Prepared
    combos: list[Combo]
    matrix: dict[str, Any]  # what each run records: id, models, prompts, reword_model
    contexts: SharedContexts | None
    reword: PromptTemplate
    context_usage: Usage
    request: dict[str, Any]  # how it was asked for: dataset, models, prompts, reword_prompt, options


def _matrix_setup(
    ws: Workspace,
    dataset_path: str,
    models: list[str],
    prompts: list[str],
    reword_prompt: str | Path | None,
    options: dict[str, Any],
    matrix_id: str | None = None,
) -> _MatrixSetup:
    answer_prompts = load_prompts(prompts or None, ANSWER)
    reword = load_prompt(reword_prompt, REWORD)
    combos = plan_matrix(models or [ws.settings.llm.model or ""], answer_prompts)
    prep = _prepare(
        ws,
        dataset_path,
        **options,
        baseline=None,
        regression_tolerance=None,
        outputs=(),
        llm_model=combos[0].model,
    )
    matrix_id = (
        matrix_id
        or hashlib.sha256(f"{dataset_path}|{[c.label for c in combos]}|{time.time()}".encode()).hexdigest()[:10]
    )
    context_usage = Usage()
    contexts = None
    if prep.plan.generate:
        reword_llm = None
        if ws.settings.llm.rewordings > 0:
            # llm.model words the searches for every combination (the first model where none is configured)
            reword_model = ws.settings.llm.model or combos[0].model
            reword_llm = ws.llm(LOG_KIND, model=reword_model, cache=prep.use_cache, usage=context_usage)
        o = prep.options
        contexts = SharedContexts(
            prep.retriever,
            reword_llm,
            k=o.k,
            rewordings=ws.settings.llm.rewordings,
            mode=o.mode,
            where=o.where,
            reword_prompt=reword,
        )
    if prep.retriever is not None:
        prep.retriever = MemoRetriever(prep.retriever)  # the retrieval metrics' searches: once per question too
    matrix = {
        "id": matrix_id,
        "models": list(dict.fromkeys(c.model for c in combos)),
        "prompts": [p.ref() for p in answer_prompts],
        "reword_model": (ws.settings.llm.model or combos[0].model) if contexts is not None else None,
    }
    request = {
        "dataset": dataset_path,
        "models": models,
        "prompts": prompts,
        "reword_prompt": None if reword_prompt is None else str(reword_prompt),
        "options": options,
    }
    return _MatrixSetup(prep, combos, matrix, contexts, reword, context_usage, request)


def _share_context(setup: _MatrixSetup, progress: Callable[[str, int, int], None] | None) -> None:
    """Each question's context (and the retrieval metrics' search) made now, before any combination answers, as
    wide as ``concurrency``. A question whose context fails here is tried again by the combinations (and fails on
    their rows, as any answer error does)."""
    prep, o = setup.prep, setup.prep.options
    searches = prep.retriever is not None and any(m in o.metrics for m in ("retrieval", "chunk", "faithfulness"))
    items = prep.dataset.items

    def one(item) -> None:
        if setup.contexts is not None and item.answer is None:
            setup.contexts(item.question)
        if searches:
            prep.retriever.search(item.question, o.k, mode=o.mode, where=o.where)

    if setup.contexts is None and not searches:
        return
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, o.concurrency), thread_name_prefix="eval-context") as pool:
        # each thread carries the caller's context, so the rewording and embedding spans nest under the run's span
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in items]
        for f in as_completed(futures):
            try:
                f.result()
            except STOP_ERRORS:  # every later call would fail the same way: the run stops (exit 8 / 7 / 2)
                raise
            except Exception:  # noqa: BLE001 - that question's combinations meet the error on their rows
                pass
            done += 1
            if progress:
                progress("shared context", done, len(items))


def _combo_entry(
    ws: Workspace,
    setup: _MatrixSetup,
    n: int,
    *,
    record: bool,
    label: str | None,
    progress: Callable[[str, int, int], None] | None,
) -> MatrixEntry:
    combo = setup.combos[n]
    total = len(setup.combos)

    def stage(name: str, done: int, count: int) -> None:
        if progress:
            progress(f"[{n + 1}/{total}] {combo.label}: {name}", done, count)

    entry = _run_combo(
        ws,
        setup.prep,
        combo,
        contexts=setup.contexts,
        reword_prompt=setup.reword,
        answer_usage=Usage(),
        extra_config={"matrix": setup.matrix},
        progress=stage,
    )
    if record:
        ws.eval_history().record(entry.report, label=label or f"matrix {setup.matrix['id']}: {combo.label}")
    return entry


def _matrix_report(
    matrix_id: str, entries: list[MatrixEntry], rank_by: str | None, context_usage: dict[str, Any], duration: float
) -> MatrixReport:
    dataset = dict(entries[0].report.dataset) if entries else {}
    return MatrixReport(
        matrix_id=matrix_id,
        dataset=dataset,
        entries=entries,
        board=leaderboard(entries, rank_by),
        context_usage=context_usage,
        duration_s=round(duration, 3),
    )


def _hit_dict(hit: Any) -> dict[str, Any]:
    return {"id": hit.id, "text": hit.text, "score": hit.score, "metadata": hit.metadata, "ranks": hit.ranks}


def _hits(rows: list[dict[str, Any]]) -> list[Any]:
    from llmops_cli.core.documents import Hit

    return [Hit(**r) for r in rows]


@tracing.traced("llmops eval matrix plan")
def plan_matrix_run(
    target: Workspace | Settings,
    dataset_path: str | Path,
    *,
    models: Sequence[str] = (),
    prompts: Sequence[str | Path] = (),
    reword_prompt: str | Path | None = None,
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
    fail_under: Sequence[str] | None = None,
    matrix_id: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """The first step of a matrix run task by task (the Airflow DAG): every check, then each question's context
    made once, as ``evaluate_matrix`` makes it. Returns the plan, a JSON document (the request, the matrix, the
    combinations' labels and the shared context) that the caller keeps where every task can read it and hands to
    ``evaluate_matrix_combination`` (one task per combination) and ``matrix_from_runs`` (the leaderboard)."""
    options = {
        "collection": collection,
        "metrics": list(metrics) if metrics else None,
        "k": k,
        "mode": mode,
        "where": where,
        "concurrency": concurrency,
        "judge_model": judge_model,
        "judge_client": judge_client,
        "perturbations": list(perturbations) if perturbations is not None else None,
        "limit": limit,
        "use_cache": use_cache,
        "fail_under": list(fail_under or []),
    }
    with _opened(target) as ws:
        setup = _matrix_setup(
            ws, str(dataset_path), list(models), [str(p) for p in prompts], reword_prompt, options, matrix_id
        )
        tracing.annotate(**{"llmops.eval.matrix_id": setup.matrix["id"], "llmops.eval.combinations": len(setup.combos)})
        _share_context(setup, progress)
        contexts = setup.contexts.made() if setup.contexts is not None else {}
        searches = setup.prep.retriever.made() if isinstance(setup.prep.retriever, MemoRetriever) else {}
    return {
        **setup.request,
        "matrix": setup.matrix,
        "combinations": [c.label for c in setup.combos],
        "contexts": {q: [_hit_dict(h) for h in hits] for q, hits in contexts.items()},
        "searches": {key: [_hit_dict(h) for h in hits] for key, hits in searches.items()},
        "context_usage": setup.context_usage.to_dict(),
        "planned_at": time.time(),
    }


def _setup_from_plan(ws: Workspace, plan: dict[str, Any]) -> _MatrixSetup:
    setup = _matrix_setup(
        ws,
        plan["dataset"],
        list(plan["models"]),
        list(plan["prompts"]),
        plan.get("reword_prompt"),
        dict(plan["options"]),
        plan["matrix"]["id"],
    )
    if [c.label for c in setup.combos] != list(plan["combinations"]):
        raise InputError(
            f"matrix {plan['matrix']['id']}: its prompts or models changed since it was planned",
            hint="keep the prompt files unchanged while the matrix runs, or plan it again",
        )
    setup.matrix = dict(plan["matrix"])
    if setup.contexts is not None:
        setup.contexts.seed({q: _hits(rows) for q, rows in plan["contexts"].items()})
    if isinstance(setup.prep.retriever, MemoRetriever):
        setup.prep.retriever.seed({key: _hits(rows) for key, rows in plan["searches"].items()})
    return setup


@tracing.traced("llmops eval run")
def evaluate_matrix_combination(
    target: Workspace | Settings,
    plan: dict[str, Any],
    index: int,
    *,
    record: bool = True,
    label: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Combination ``index`` of a planned matrix (``plan_matrix_run``), answered and scored on the plan's shared
    context and recorded, as ``evaluate_matrix`` runs each combination."""
    with _opened(target) as ws:
        setup = _setup_from_plan(ws, plan)
        if not 0 <= index < len(setup.combos):
            raise UsageError(f"matrix {setup.matrix['id']} has no combination {index}")
        tracing.annotate(**{"llmops.eval.matrix_id": setup.matrix["id"]})
        return _combo_entry(ws, setup, index, record=record, label=label, progress=progress).report


def matrix_from_runs(
    target: Workspace | Settings,
    plan: dict[str, Any],
    run_ids: Sequence[int],
    *,
    rank_by: str | None = None,
    outputs: Sequence[str | Path] = (),
) -> MatrixReport:
    """The last step of a matrix run task by task: the recorded runs of its combinations (in the plan's order) ranked
    on the leaderboard ``evaluate_matrix`` makes, and its report files written."""
    for out in outputs:
        matrix_output_format(out)
    with _opened(target) as ws:
        history = ws.eval_history()
        reports = [history.load(str(i)) for i in run_ids]
    entries = []
    for rep in reports:
        # a recorded run keeps its prompt's name and hash, not its text: the combination is named by them
        combo = _RecordedCombo(rep.config.get("llm_model") or "", _RecordedPrompt(dict(rep.config.get("prompt") or {})))
        u = rep.usage or {}
        entries.append(MatrixEntry(combo, rep, u.get("answers", u), u.get("judge", {})))  # type: ignore[arg-type]
    order = {label: n for n, label in enumerate(plan["combinations"])}
    entries.sort(key=lambda e: order.get(e.combo.label, len(order)))
    duration = time.time() - float(plan.get("planned_at") or time.time())
    rep = _matrix_report(plan["matrix"]["id"], entries, rank_by, dict(plan.get("context_usage") or {}), duration)
    for out in outputs:
        write_matrix(rep, out)
    return rep


def matrix_outcome(rep: MatrixReport) -> Outcome:
    """A matrix ends like a run: a gate failed by some combination (4), some rows with errors (3), else 0; every
    question of every combination failing is an error (exit 1)."""
    reports = [e.report for e in rep.entries]
    if reports and all(r.rows and r.error_rows == len(r.rows) and not r.metrics for r in reports):
        first = next(iter(reports[0].rows[0].errors.values()))
        raise LlmopsError(f"every question failed; the first error: {first}", hint="fix that and rerun")
    failed = [f"{e.combo.label}: {g}" for e in rep.entries if (g := failed_gates(e.report))]
    if failed:
        return Outcome(ExitCode.GATE_FAILED, "quality gate failed: " + "; ".join(failed))
    if rep.error_rows:
        return Outcome(
            ExitCode.PARTIAL,
            f"{rep.error_rows} answers had errors across the combinations; their metrics are left out of the means",
        )
    return Outcome()


def failed_gates(report: EvalReport) -> str:
    """The gates ``report`` failed, ``metric check; ...`` (empty when none failed)."""
    return "; ".join(f"{g['metric']} {g['check']}" for g in report.gates if not g["passed"])


@dataclass
class Outcome:
    """How a command that did its job ends: ``exit_code`` (``cli.output.Output.finish`` turns it into the exit
    status: 0, 3 partial, 4 a failed gate) and the one line that says why (None when it passed)."""

    exit_code: ExitCode = ExitCode.OK
    message: str | None = None


def _regressed(comparison: dict[str, Any] | None, against: str) -> Outcome:
    if comparison and comparison["regressions"]:
        return Outcome(
            ExitCode.GATE_FAILED,
            f"regressed{against}: {', '.join(comparison['regressions'])} (see the per-metric deltas)",
        )
    return Outcome()


def outcome(report: EvalReport, *, fail_on_regression: bool = False, baseline: str | None = None) -> Outcome:
    """How a finished evaluation ends: a failed gate (4), a regression against ``baseline`` with
    ``fail_on_regression`` (4), some rows with errors (3, partial), else 0. Every question failing is no result at
    all: an error (exit 1), raised."""
    if report.rows and report.error_rows == len(report.rows) and not report.metrics:
        first = next(iter(report.rows[0].errors.values()))
        raise LlmopsError(
            f"every question failed; the first error: {first}",
            hint="fix that and rerun (answers already made are cached)",
        )
    # a gate or a regression is the exit code's reason; rows with errors are said in the same (one) line
    errors = f"; {report.error_rows} of {len(report.rows)} questions had errors" if report.error_rows else ""
    if failed := failed_gates(report):
        return Outcome(
            ExitCode.GATE_FAILED,
            f"quality gate failed: {failed} (the run itself succeeded; improve the metric or adjust --fail-under)"
            + errors,
        )
    if fail_on_regression and (regressed := _regressed(report.comparison, f" against baseline {baseline}")).message:
        return Outcome(regressed.exit_code, regressed.message + errors) if errors else regressed
    if report.error_rows:
        return Outcome(
            ExitCode.PARTIAL,
            f"{report.error_rows} of {len(report.rows)} questions had errors; their metrics are left out of the means "
            "(see 'errors' in the per-question results: --output results.jsonl or --json)",
        )
    return Outcome()


def comparison_outcome(comparison: dict[str, Any], *, fail_on_regression: bool = False) -> Outcome:
    """A comparison ends with 4 when a metric regressed and ``fail_on_regression``, else 0."""
    return _regressed(comparison, "") if fail_on_regression else Outcome()


def list_runs(target: Workspace | Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The recorded runs, newest first. Where nothing was ever recorded, none, and no history file is made (it made
    a ``.llmops`` folder, which turns the folder `eval runs` ran in into a project of its own)."""
    with _opened(target) as ws:
        if not ws.state().shared:
            from llmops_cli.core.eval.history import default_history_path

            if not default_history_path(ws.settings.data_path).is_file():
                return []
        return ws.eval_history().list_runs(limit=limit)


def compare(target: Workspace | Settings, base: str, new: str, *, tolerance: float | None = None) -> dict[str, Any]:
    """Per-metric deltas between two runs (run ids, ``latest``, ``latest~1`` or report files); ``tolerance``
    defaults to eval.regression_tolerance."""
    with _opened(target) as ws:
        history = ws.eval_history()
        a, b = load_report_ref(base, history), load_report_ref(new, history)
        default = ws.settings.eval.regression_tolerance
    return compare_reports(a, b, tolerance=default if tolerance is None else tolerance)


def export(target: Workspace | Settings, run: str, outputs: Sequence[str | Path]) -> EvalReport:
    """Write a recorded run's results again (the formats are checked before the history is read)."""
    for out in outputs:
        output_format(out)
    with _opened(target) as ws:
        history = ws.eval_history()
        report = history.load(run)
        report.human_ratings = history.ratings([report.run_id])
        trend = _trend(ws, report, outputs)
    for out in outputs:
        write_results(report, out, trend=trend)
    return report


@dataclass
class Generated:
    """What ``generate`` wrote: the questions (``result.items``) and the chunks that gave none."""

    collection: str
    output: str
    chunks: int
    result: GenerateResult
    usage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output if self.result.items else None,
            "questions": len(self.result.items),
            "failed": self.result.failed,
            "usage": self.usage,
        }

    def outcome(self) -> Outcome:
        """Some chunks without a question is partial (3); no question at all is an error (exit 1), raised."""
        if not self.result.items:
            raise LlmopsError(
                "no question could be written", hint="check the LLM with `llmops ask`; see the failures above"
            )
        if self.result.failed:
            return Outcome(
                ExitCode.PARTIAL,
                f"{len(self.result.failed)} of {self.chunks} chunks gave no question "
                "(the others were written; rerun to retry: successful replies are cached)",
            )
        return Outcome()


def generate(
    target: Workspace | Settings,
    output: str,
    *,
    collection: str | None = None,
    count: int = 20,
    seed: int = 0,
    model: str | None = None,
    concurrency: int | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Generated:
    """Write a question set (question, reference answer, source) from ``count`` chunks of a collection sampled with
    ``seed``; the LLM calls go through the workspace's stack like an evaluation's (recorded as kind eval, cached)."""
    if Path(output).suffix.lower() not in FORMATS:
        raise InputError(f"--output {output}: unknown format", hint="use .jsonl, .csv or .parquet")
    check_output_path(output)  # a folder there: before any LLM call, not after the last
    with _opened(target) as ws:
        name = collection or ws.settings.store.collection
        usage = Usage()
        # built before the store opens: no LLM configured fails fast
        llm = ws.llm(LOG_KIND, model=model, cache=use_cache, usage=usage, also="or pass --model MODEL")
        chunks = sample_chunks(ws.store(read_only=True), name, count, seed)
        # a rejected key or no endpoint stops the run (exit 8 / 7); the workspace closes the cache and log either way
        res = run_generate(chunks, llm, concurrency=concurrency or ws.settings.eval.concurrency, progress=progress)
    if res.items:
        write_dataset(res.items, output)
    return Generated(collection=name, output=output, chunks=len(chunks), result=res, usage=usage.to_dict())


def retrieval_check(
    target: Workspace | Settings, questions: Sequence[str], *, k: int | None = None, mode: str | None = None
) -> dict[str, Any]:
    """A quick look at a collection without a question set: hits found and the top hit per question, and the share of
    questions that found anything (``hit_rate``)."""
    rows = []
    with _opened(target) as ws:
        coll = ws.settings.store.collection
        for q in questions:
            hits = ask_entry.query(ws, q, collection=coll, k=k, mode=mode)
            rows.append(
                {
                    "question": q,
                    "hits": len(hits),
                    "top_score": round(float(hits[0].score), 4) if hits else None,
                    "top_source": hits[0].source if hits else None,
                }
            )
    found = sum(1 for r in rows if r["hits"])
    return {
        "collection": coll,
        "kind": "retrieval_check",
        "questions": len(rows),
        "answered": found,
        "hit_rate": round(found / len(rows), 4) if rows else 0.0,
        "rows": rows,
    }


_evaluate = evaluate  # sweep's own ``evaluate`` parameter hides the name


def _embedder_token_limit(es) -> int:
    return int(wiring.build_embedder(es).tokens.max_tokens)


def _ingest(settings: Settings, paths: Sequence[str], collection: str):
    with Workspace(settings) as ws:
        return ingest_entry.ingest(ws, list(paths), collection=collection)


def _delete_collection(settings: Settings, name: str) -> None:
    with Workspace(settings) as ws:
        store_entry.delete_collection(ws, name)


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
    ranked. Each configuration is its own settings (chunking, embedder), so the steps take settings: ``ingest(settings,
    paths, collection)``, ``evaluate(settings, dataset, **options)``, ``delete_collection(settings, name)`` and
    ``token_limit(embedder_settings)`` (the longest chunk the embedder reads; default: its tokenizer's maximum)."""
    evaluate = evaluate or _evaluate
    ingest = ingest or _ingest
    delete_collection = delete_collection or _delete_collection
    if not sources:
        raise UsageError("a sweep needs sources to ingest", hint="pass --sources PATH (repeatable)")
    dataset = load_dataset(dataset_path)  # fail early on a bad question set, before any ingest
    k = k or settings.retrieval.k
    # --rank-by too: a typo must not cost an ingest and an evaluation per configuration
    names = metric_names(
        resolve_metrics(list(metrics or ["retrieval"]), dataset, llm_available=True, answers_possible=True), k
    )
    if (rank_by or f"ndcg@{k}") not in names:
        close = closest(rank_by or f"ndcg@{k}", names, cutoff=0.6)
        raise UsageError(
            f"--rank-by {rank_by or f'ndcg@{k}'!r} is not a metric of the sweep"
            + (f"; did you mean {close}?" if close else f" (has: {', '.join(names)})"),
            hint="pick one of " + ", ".join(names) if rank_by else f"pass --rank-by, one of {', '.join(names)}",
        )
    strategies = list(strategies or [settings.chunking.strategy])
    sizes = list(sizes or [settings.chunking.size])
    overlaps = list(overlaps or [settings.chunking.overlap])
    embedders = list(embedders or [settings.embedder.model])
    for value, field_name, flag in [
        *[(x, "strategy", "--chunker") for x in strategies],
        *[(x, "size", "--chunk-size") for x in sizes],
    ]:
        try:  # a bad value on its own is a usage error; only combinations (overlap >= size) are skipped
            ChunkingSettings(**{field_name: value, "overlap": 0})
        except ValidationError as e:
            raise UsageError(
                f"{flag} {value!r}: {e.errors()[0]['msg']}", hint="see `llmops eval sweep --help`"
            ) from None
    if any(o < 0 for o in overlaps):
        raise UsageError("--chunk-overlap must be 0 or more")
    token_limit = token_limit or _embedder_token_limit
    for emb in embedders:  # the embedders are loaded here anyway (ingest reuses them): before, not at the nth ingest
        limit = token_limit(settings.embedder.model_copy(update={"model": emb}))
        over = [x for x in sizes if x > limit]
        if over:
            raise UsageError(
                f"--chunk-size {over[0]} is over the embedding model {emb}'s maximum of {limit} tokens "
                "(longer chunks would be truncated)",
                hint=f"use --chunk-size {limit} or less"
                + (f" (or drop --embed-model {emb})" if len(embedders) > 1 else ""),
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
            hint="pass a --chunk-overlap smaller than the --chunk-size values",
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


def bless(target: Workspace | Settings, run: str, note: str | None = None) -> dict[str, Any]:
    """Mark a recorded run as the baseline of its question set (``eval run --against-baseline`` gates on it)."""
    with _opened(target) as ws:
        return ws.eval_history().bless(run, note)


def blessed(target: Workspace | Settings) -> list[dict[str, Any]]:
    """The blessed baselines, one per question set."""
    with _opened(target) as ws:
        return ws.eval_history().list_blessed()


def _runs_to_rate(history, run: str) -> list[EvalReport]:
    """The run, or every run of its matrix (side by side)."""
    first = history.load(run)
    matrix_id = (first.config.get("matrix") or {}).get("id")
    if not matrix_id:
        return [first]
    return [history.load(rid) for rid in history.matrix_runs(matrix_id)]


def rating_tasks(target: Workspace | Settings, run: str, *, seed: int = 0) -> tuple[list[EvalReport], list[dict]]:
    """The runs a rating session covers (the run, or its whole matrix) and the blind tasks, one per question."""
    from llmops_cli.core.eval import human

    with _opened(target) as ws:
        reports = _runs_to_rate(ws.eval_history(), run)
    tasks = human.rating_tasks(reports, seed=seed)
    if not tasks:
        raise UsageError(
            f"run {reports[0].run_id} has no answers to rate",
            hint="rate a run that made answers (metrics such as token_f1 or judge)",
        )
    return reports, tasks


def add_ratings(
    target: Workspace | Settings,
    ratings: Sequence[dict[str, Any]],
    *,
    source: str | None = None,
    run: str | None = None,
) -> int:
    """Store checked ratings (a rating of the same answer, rater and criterion again replaces the earlier one).
    Every rating must name a recorded run and a question of it (``source``, a ratings file, names the bad row);
    with ``run`` (what `eval rate RUN --from FILE` rates), that run or a run of its matrix."""
    from llmops_cli.core.eval import human

    where = (lambda n: f"{source} row {n}") if source else (lambda n: f"#{n}")
    checked = [human.check_rating(r, where=where(n)) for n, r in enumerate(ratings, start=1)]
    with _opened(target) as ws:
        history = ws.eval_history()
        if run is not None:
            rated = {rep.run_id for rep in _runs_to_rate(history, run)}
            for n, r in enumerate(checked, start=1):
                if r["run_id"] not in rated:  # it was stored for that other run without a word
                    raise InputError(
                        f"rating {where(n)}: run_id {r['run_id']} is not the run being rated "
                        f"({', '.join(map(str, sorted(rated)))})",
                        hint=f"fix the file's run_id column, or rate run {r['run_id']}: "
                        f"llmops eval rate {r['run_id']} --from {source or 'FILE'}",
                    )
        questions: dict[int, set[str]] = {}
        for run_id in sorted({r["run_id"] for r in checked}):
            history.resolve_id(run_id)
            # NotFound (exit 9) for a run that is not recorded
            questions[run_id] = {row.id for row in history.load(run_id).rows}
        for n, r in enumerate(checked, start=1):
            if r["item_id"] not in questions[r["run_id"]]:
                # a typo'd id was stored, never matched an answer and still counted in `eval agreement`'s ratings
                ids = sorted(questions[r["run_id"]])
                raise InputError(
                    f"rating {where(n)}: run {r['run_id']} has no question {r['item_id']!r}",
                    hint=f"item_id is the question's id in the run: {', '.join(ids[:8])}"
                    + (f" (+{len(ids) - 8} more)" if len(ids) > 8 else ""),
                )
        return history.add_ratings(checked)


def agreement(
    target: Workspace | Settings,
    runs: Sequence[str],
    *,
    mapping: dict[str, str] | None = None,
    min_kappa: float | None = None,
) -> dict[str, Any]:
    """Judge vs people on the runs' answers (each run with its matrix siblings), per criterion."""
    from llmops_cli.core.eval import human

    with _opened(target) as ws:
        history = ws.eval_history()
        reports: dict[int, EvalReport] = {}
        for ref in runs:
            for rep in _runs_to_rate(history, ref):
                reports[rep.run_id] = rep
        ratings = history.ratings(sorted(reports))
    if not ratings:
        raise UsageError(
            f"no human ratings for run {', '.join(map(str, sorted(reports)))}",
            hint="rate its answers first: llmops eval rate RUN --rater NAME",
        )
    doc = human.agreement(
        list(reports.values()),
        ratings,
        mapping=mapping,
        min_kappa=human.DEFAULT_MIN_KAPPA if min_kappa is None else min_kappa,
    )
    doc["runs"] = sorted(reports)
    return doc


def feedback_agreement(
    target: Workspace | Settings, *, limit: int = 1000, min_kappa: float | None = None
) -> dict[str, Any]:
    """Judge vs people from the feedback loop: the review judge's helpfulness and relevance of each reviewed answer
    against its up/down votes (``llmops feedback ID up|down``), over the latest ``limit`` reviewed answers."""
    from llmops_cli.core.eval import human
    from llmops_cli.core.feedback.log import vote_counts

    with _opened(target) as ws:
        log = ws.answer_log(read_only=True)
        items = []
        if log is not None:
            ids = log.reviewed_ids()[-limit:]
            reviews = log.reviews_of(ids)
            for answer_id in ids:
                review = reviews.get(answer_id)
                if review is None or review.status != "ok":
                    continue
                votes = vote_counts(log.ratings(answer_id, with_cached_copies=True))
                if votes["up"] or votes["down"]:
                    items.append(
                        {
                            "answer_id": answer_id,
                            "helpfulness": review.helpfulness,
                            "relevance": review.relevance,
                            **votes,
                        }
                    )
    if not items:
        raise UsageError(
            "no reviewed answer has up/down votes",
            hint="rate answers (llmops feedback ANSWER_ID up|down) and review them (llmops feedback review) first",
        )
    return human.feedback_agreement(items, min_kappa=human.DEFAULT_MIN_KAPPA if min_kappa is None else min_kappa)


def matrix_combinations(
    models: Sequence[str], prompts: Sequence[str | Path] = (), *, matrix_id: str | None = None
) -> list[dict[str, Any]]:
    """The combinations of a matrix as keyword arguments of ``evaluate`` (``model``, ``prompt``, ``matrix``), for a
    caller that runs them as separate ``evaluate`` calls: the prompts are read and checked here, before any call.
    Each call searches for itself, so the combinations see the same context only as far as the search is
    deterministic; ``plan_matrix_run`` (what the Airflow DAG uses) makes the context once for all of them."""
    answer_prompts = load_prompts([str(p) for p in prompts] or None, ANSWER)
    combos = plan_matrix(list(models), answer_prompts)
    mid = matrix_id or hashlib.sha256(f"{[c.label for c in combos]}|{time.time()}".encode()).hexdigest()[:10]
    info = {
        "id": mid,
        "models": list(dict.fromkeys(c.model for c in combos)),
        "prompts": [p.ref() for p in answer_prompts],
    }
    sources = {p.sha256: (None if p.source == "built-in" else p.source) for p in answer_prompts}
    return [{"model": c.model, "prompt": sources[c.prompt.sha256], "matrix": info} for c in combos]


def matrix_leaderboard(target: Workspace | Settings, run_or_matrix: str, *, rank_by: str | None = None) -> MatrixReport:
    """The leaderboard of a recorded matrix, from its runs (a run id of one combination, or the matrix id)."""
    with _opened(target) as ws:
        history = ws.eval_history()
        ids = history.matrix_runs(run_or_matrix)
        if not ids:
            first = history.load(run_or_matrix)
            mid = (first.config.get("matrix") or {}).get("id")
            if not mid:
                raise UsageError(f"run {first.run_id} is not part of a matrix", hint="see llmops eval runs (labels)")
            ids = history.matrix_runs(mid)
        reports = [history.load(i) for i in ids]
    entries = []
    for rep in reports:
        # a recorded run keeps its prompt's name and hash, not its text: the combination is named by them
        combo = _RecordedCombo(rep.config.get("llm_model") or "", _RecordedPrompt(dict(rep.config.get("prompt") or {})))
        u = rep.usage or {}
        entries.append(MatrixEntry(combo, rep, u.get("answers", u), u.get("judge", {})))  # type: ignore[arg-type]
    first = reports[0]
    return MatrixReport(
        matrix_id=(first.config.get("matrix") or {}).get("id", ""),
        dataset=dict(first.dataset),
        entries=entries,
        board=leaderboard(entries, rank_by),
    )


@dataclass
class _RecordedPrompt:
    recorded: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.recorded.get("name", "?"))

    def ref(self) -> dict[str, Any]:
        return self.recorded


@dataclass
class _RecordedCombo:
    """A combination as a recorded run names it: its model, its prompt's name and hash."""

    model: str
    prompt: _RecordedPrompt

    @property
    def label(self) -> str:
        return f"{self.model} x {self.prompt.name}@{str(self.prompt.recorded.get('sha256', ''))[:12]}"
