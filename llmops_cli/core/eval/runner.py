"""One evaluation run over a question set: retrieve, answer, score, judge, perturb.

The runner takes its parts as arguments (a retriever, an answer function, a judge LLM, an embedder), so unit
tests pass fakes and the pipeline passes the real ones. It prints nothing; progress goes to a callback.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from llmops_cli.core.eval import answer_metrics, robustness
from llmops_cli.core.eval import judge as judge_mod
from llmops_cli.core.eval.datasets import Dataset, EvalItem
from llmops_cli.core.eval.llm_calls import bounded_gather
from llmops_cli.core.eval.report import EvalReport, RowResult, mean_metrics, means_by_tag
from llmops_cli.core.eval.retrieval_metrics import retrieval_scores
from llmops_cli.errors import UsageError

ANSWER_METRICS = ("exact_match", "token_f1", "semantic_similarity")
OFFLINE_TOXICITY = "toxicity_wordlist"  # the word-list check (core/eval/wordlist_toxicity.py): no LLM, no reference
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "retrieval": ("retrieval",),
    "chunk": ("chunk",),
    "answer": ANSWER_METRICS,
    "judge": judge_mod.JUDGE_METRICS,
    "toxicity": ("toxicity", OFFLINE_TOXICITY),
    "all": ("retrieval", "chunk", *ANSWER_METRICS, *judge_mod.JUDGE_METRICS, OFFLINE_TOXICITY, "robustness"),
}
METRIC_NAMES = ("retrieval", "chunk", *ANSWER_METRICS, *judge_mod.JUDGE_METRICS, OFFLINE_TOXICITY, "robustness")
LLM_METRICS = set(judge_mod.JUDGE_METRICS)


class RetrieverLike(Protocol):
    def search(self, text: str, k: int, mode: str = "hybrid", where: dict | None = None) -> list: ...


@dataclass
class Answered:
    answer: str
    hits: list  # the hits the answer was grounded on
    latency_s: float | None = None  # the answer call's, when it reached the LLM (None: cached or not measured)


@dataclass
class EvalOptions:
    metrics: list[str]
    k: int = 5
    mode: str = "hybrid"
    where: dict[str, Any] | None = None
    concurrency: int = 8
    perturbations: list[str] = field(default_factory=lambda: ["typos", "casing"])


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


def resolve_metrics(
    requested: list[str] | None, dataset: Dataset, *, llm_available: bool, answers_possible: bool
) -> list[str]:
    """Expand groups and ``auto``; check names. ``auto`` = retrieval when the set names relevant sources,
    chunk when it names relevant chunks, exact_match/token_f1/semantic_similarity when it has reference
    answers and answers can be had (an ``answer`` column, or a collection plus an LLM)."""
    out: list[str] = []
    for raw in requested or ["auto"]:
        for name in [n.strip().lower().replace("-", "_") for n in raw.split(",") if n.strip()]:
            if name == "auto":
                picked = (["retrieval"] if dataset.has_sources else []) + (["chunk"] if dataset.has_chunks else [])
                if dataset.has_references and (dataset.has_answers or answers_possible):
                    picked += list(ANSWER_METRICS)
                if not picked:
                    raise UsageError(
                        "nothing to evaluate automatically: "
                        "the question set has no relevant_sources, relevant_chunks or reference_answer",
                        hint="add those columns, or choose metrics with --metrics (e.g. --metrics judge)",
                    )
                expanded: tuple[str, ...] = tuple(picked)
            elif name in METRIC_GROUPS:
                expanded = METRIC_GROUPS[name]
            elif name in METRIC_NAMES:
                expanded = (name,)
            else:
                raise UsageError(
                    f"unknown metric {name!r}",
                    hint=f"choose from: {', '.join(dict.fromkeys(('auto', *METRIC_GROUPS, *METRIC_NAMES)))}",
                )
            for m in expanded:
                why = _unsupported(m, dataset)
                if why and name in (m, "retrieval", "chunk"):  # named explicitly: say why it cannot run
                    hint = "add that column to the question set, or drop the metric"
                    if m == OFFLINE_TOXICITY:
                        from llmops_cli.core.eval import wordlist_toxicity

                        hint = wordlist_toxicity.PACKAGE_HINT
                    raise UsageError(f"metric {m} {why}", hint=hint)
                if not why and m not in out:
                    out.append(m)  # from a group: the ones the set cannot support are left out
    if not out:
        raise UsageError(
            "none of the chosen metrics can run on this question set",
            hint="add relevant_sources / reference_answer columns, or choose other --metrics",
        )
    needs_llm = [m for m in out if m in LLM_METRICS]
    if needs_llm and not llm_available:
        raise UsageError(
            f"metrics {', '.join(needs_llm)} need an LLM judge and none is configured",
            hint="set llm.model (or --judge-model), or drop them from --metrics",
        )
    return out


def _unsupported(metric: str, dataset: Dataset) -> str | None:
    if metric == OFFLINE_TOXICITY:
        from llmops_cli.core.eval import wordlist_toxicity

        return None if wordlist_toxicity.available() else "needs the better-profanity package"
    if metric == "retrieval" and not dataset.has_sources:
        return "needs relevant_sources in the question set"
    if metric == "robustness" and not (dataset.has_sources or dataset.has_chunks or dataset.has_references):
        return "needs relevant_sources or reference_answer in the question set"
    if metric == "chunk" and not dataset.has_chunks:
        return "needs relevant_chunks in the question set"
    if metric in (*ANSWER_METRICS, "correctness") and not dataset.has_references:
        return "needs reference_answer in the question set"
    return None


def _matches(hit_source: str, relevant: str) -> bool:
    """Sources match when equal, or when one is a path suffix of the other (``docs/a.md`` vs ``a.md``)."""
    return hit_source == relevant or hit_source.endswith("/" + relevant) or relevant.endswith("/" + hit_source)


def source_ranking(hits: list, relevant_sources: list[str]) -> list[str]:
    """The hits' sources, best first, each mapped onto the relevant id it matches (so suffix matches count)."""
    out = []
    for h in hits:
        src = h.source if hasattr(h, "source") else str(h.get("source", ""))
        out.append(next((r for r in relevant_sources if _matches(src, r)), src))
    return out


def _retrieval_row_scores(item: EvalItem, hits: list, k: int, metrics: list[str]) -> dict[str, float]:
    scores: dict[str, float] = {}
    if "retrieval" in metrics and item.relevant_sources:
        scores.update(retrieval_scores(source_ranking(hits, item.relevant_sources), item.relevant_sources, k))
    if "chunk" in metrics and item.relevant_chunks:
        scores.update(retrieval_scores([h.id for h in hits], item.relevant_chunks, k, prefix="chunk_"))
    return scores


_POOLS: dict[int, ThreadPoolExecutor] = {}


async def _in_thread(fn: Callable[[str], Answered], arg: str, workers: int) -> Answered:
    """Run the (sync) answer step in a pool as wide as --concurrency: asyncio's default pool has cpu + 4 threads."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-answer")
    # the caller's context goes along (as asyncio.to_thread does), so the answer's LLM spans nest under the run's span
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(pool, ctx.run, fn, arg)


def _err(e: BaseException) -> str:
    return (getattr(e, "message", None) or str(e) or type(e).__name__).splitlines()[0][:300]


def _closes_judge_llm(run):
    """HTTP sessions belong to the event loop the run is awaited in: the judge's are closed before that loop ends."""

    @functools.wraps(run)
    async def wrapper(*args: Any, judge_llm=None, **kwargs: Any) -> EvalReport:
        try:
            return await run(*args, judge_llm=judge_llm, **kwargs)
        finally:
            close = getattr(judge_llm, "aclose", None)
            if close is not None:
                await close()

    return wrapper


@_closes_judge_llm
async def run_eval(
    dataset: Dataset,
    options: EvalOptions,
    *,
    retriever: RetrieverLike | None = None,
    answerer: Callable[[str], Answered] | None = None,
    judge_llm=None,
    embedder=None,
    progress: ProgressFn | None = None,
    config: dict[str, Any] | None = None,
    config_hash: str = "",
    usage: Callable[[], dict[str, Any]] | None = None,
) -> EvalReport:
    t0 = time.perf_counter()
    metrics = options.metrics
    k = options.k
    items = dataset.items
    rows = [
        RowResult(
            id=i.id,
            question=i.question,
            reference_answer=i.reference_answer,
            relevant_sources=i.relevant_sources,
            relevant_chunks=i.relevant_chunks,
            tags=i.tags,
            answer=i.answer,
        )
        for i in items
    ]
    report_progress = progress or (lambda stage, done, total: None)

    wants_retrieval = any(m in metrics for m in ("retrieval", "chunk"))
    wants_answers = any(m in metrics for m in (*ANSWER_METRICS, *judge_mod.JUDGE_METRICS, OFFLINE_TOXICITY))
    needs_context = "faithfulness" in metrics
    if wants_retrieval and retriever is None:
        raise UsageError("retrieval metrics need a collection to search", hint="pass --collection NAME (ingest first)")

    # 1. retrieval (sync and CPU-bound: one worker thread, in order)
    hits_per_row: list[list] = [[] for _ in items]
    # faithfulness of generated answers uses the answer's own context: search here only for given answers
    context_from_search = needs_context and (answerer is None or any(i.answer is not None for i in items))
    if retriever is not None and (wants_retrieval or context_from_search):

        def retrieve_all() -> None:
            for n, item in enumerate(items):
                try:
                    hits_per_row[n] = retriever.search(item.question, k, mode=options.mode, where=options.where)
                except Exception as e:  # noqa: BLE001 - one failed search is that row's error
                    rows[n].errors["retrieval"] = _err(e)
                report_progress("retrieval", n + 1, len(items))

        await asyncio.to_thread(retrieve_all)
        for n, item in enumerate(items):
            hits = hits_per_row[n]
            rows[n].retrieved = [{"id": h.id, "source": h.source, "score": round(float(h.score), 6)} for h in hits]
            if "retrieval" not in rows[n].errors:
                rows[n].metrics.update(_retrieval_row_scores(item, hits, k, metrics))

    # 2. answers (generated when the set has none), grounded hits kept for faithfulness
    contexts: list[list[str]] = [[h.text for h in hs] for hs in hits_per_row]
    if wants_answers:
        todo = [n for n, i in enumerate(items) if i.answer is None]  # an empty given answer is still given
        if todo and answerer is None:
            raise UsageError(
                "answer metrics need answers: the question set has no 'answer' column and no LLM/collection is set",
                hint="pass --collection and configure llm.model, or add an 'answer' column",
            )
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            report_progress("answers", done, len(todo))

        results = await bounded_gather(
            [(lambda q=items[n].question: _in_thread(answerer, q, options.concurrency)) for n in todo],
            options.concurrency,
            tick,
        )
        for n, res in zip(todo, results, strict=False):
            if isinstance(res, BaseException):
                rows[n].errors["answer"] = _err(res)
                continue
            rows[n].answer = res.answer
            rows[n].latency_s = res.latency_s
            contexts[n] = [h.text for h in res.hits] or contexts[n]

        # 3. metrics without an LLM
        if OFFLINE_TOXICITY in metrics:
            from llmops_cli.core.eval import wordlist_toxicity

            answered = [n for n, r in enumerate(rows) if r.answer is not None]
            flags = wordlist_toxicity.scores([rows[n].answer or "" for n in answered])
            for n, flag in zip(answered, flags, strict=True):
                rows[n].metrics[OFFLINE_TOXICITY] = flag
        pairs = [n for n, r in enumerate(rows) if r.answer is not None and r.reference_answer]
        for n in pairs:
            r = rows[n]
            if "exact_match" in metrics:
                r.metrics["exact_match"] = answer_metrics.exact_match(r.answer, r.reference_answer)
            if "token_f1" in metrics:
                r.metrics["token_f1"] = answer_metrics.token_f1(r.answer, r.reference_answer)
        if "semantic_similarity" in metrics and pairs:
            if embedder is None:
                raise UsageError("semantic_similarity needs the embedder")
            sims = await asyncio.to_thread(
                answer_metrics.semantic_similarities,
                embedder,
                [rows[n].answer for n in pairs],
                [rows[n].reference_answer for n in pairs],
            )
            for n, s in zip(pairs, sims, strict=False):
                rows[n].metrics["semantic_similarity"] = s

        # 4. the LLM judge: one call per (row, metric), bounded concurrency
        judged = [m for m in metrics if m in judge_mod.JUDGE_METRICS]
        jobs: list[tuple[int, str]] = []
        for n, r in enumerate(rows):
            if r.answer is None:
                continue
            for m in judged:
                ji = judge_mod.JudgeInput(r.question, r.answer, contexts[n], r.reference_answer)
                why = judge_mod.needs(m, ji)
                if why is None:
                    jobs.append((n, m))
                elif (
                    m == "faithfulness"
                ):  # asked for but impossible: say so on the row (a missing reference is not an error)
                    r.errors[m] = why
        if jobs:
            if judge_llm is None:
                raise UsageError("judge metrics need an LLM", hint="set llm.model or --judge-model")
            done_j = 0

            def tick_j() -> None:
                nonlocal done_j
                done_j += 1
                report_progress("judge", done_j, len(jobs))

            def make(n: int, m: str):
                ji = judge_mod.JudgeInput(rows[n].question, rows[n].answer or "", contexts[n], rows[n].reference_answer)
                return lambda: judge_mod.judge(judge_llm, m, ji)

            verdicts = await bounded_gather([make(n, m) for n, m in jobs], options.concurrency, tick_j)
            for (n, m), v in zip(jobs, verdicts, strict=False):
                if isinstance(v, BaseException):
                    rows[n].errors[m] = _err(v)
                else:
                    rows[n].metrics[m], rows[n].reasons[m] = v

    # 5. robustness: perturbed questions through retrieval (and the answer step) again; deltas over the same rows
    robust: dict[str, dict[str, Any]] = {}
    if "robustness" in metrics:
        by_retrieval = retriever is not None and any(m in metrics for m in ("retrieval", "chunk"))
        by_answers = answerer is not None and any(
            m in metrics for m in ("exact_match", "token_f1", "semantic_similarity")
        )
        if not (by_retrieval or by_answers):
            raise UsageError(
                "robustness compares retrieval or answer scores: select retrieval (or exact_match/token_f1/"
                "semantic_similarity with generated answers) and a collection",
                hint="e.g. --metrics retrieval,robustness --collection NAME",
            )
        robust = await _robustness(
            items,
            rows,
            options,
            retriever if by_retrieval else None,
            answerer if by_answers else None,
            embedder,
            judge_llm,
            report_progress,
        )

    means, counts = mean_metrics(rows)
    return EvalReport(
        by_tag=means_by_tag(rows),
        dataset={"path": dataset.path, "sha256": dataset.sha256, "rows": len(items)},
        config=config or {"metrics": metrics, "k": k, "mode": options.mode},
        config_hash=config_hash,
        metrics=means,
        counts=counts,
        rows=rows,
        usage=usage() if usage else {},
        robustness=robust,
        duration_s=round(time.perf_counter() - t0, 3),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


async def _robustness(
    items: list[EvalItem],
    rows: list[RowResult],
    options: EvalOptions,
    retriever,
    answerer,
    embedder,
    llm,
    report_progress: ProgressFn,
) -> dict[str, dict[str, Any]]:
    kinds = [p for p in options.perturbations if p not in robustness.LLM_PERTURBATIONS or llm is not None]
    retrieval_prefixes = ("hit@", "recall@", "precision@", "mrr", "ndcg@", "chunk_")
    keys = [
        key
        for key in dict.fromkeys(k for r in rows for k in r.metrics)
        if (retriever is not None and key.startswith(retrieval_prefixes))
        or (answerer is not None and key in ANSWER_METRICS)
    ]
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        if kind in robustness.LLM_PERTURBATIONS:
            res = await bounded_gather(
                [(lambda q=i.question: robustness.paraphrase(llm, q)) for i in items], options.concurrency
            )
            perturbed: list[str | None] = [r if isinstance(r, str) else None for r in res]
        else:
            perturbed = [robustness.perturb(kind, i.question) for i in items]
        scored: dict[int, dict[str, float]] = {n: {} for n, q in enumerate(perturbed) if q is not None}

        if retriever is not None:

            def search_all(kind=kind, scored=scored, perturbed=perturbed) -> None:
                for n, item in enumerate(items):
                    report_progress(f"robustness ({kind})", n + 1, len(items))
                    if n not in scored or "retrieval" in rows[n].errors:
                        continue
                    try:
                        hits = retriever.search(perturbed[n], options.k, mode=options.mode, where=options.where)
                    except Exception:  # noqa: BLE001 - a failed perturbed search leaves the row out of the delta
                        continue
                    scored[n].update(_retrieval_row_scores(item, hits, options.k, options.metrics))

            await asyncio.to_thread(search_all)

        if answerer is not None:
            todo = [
                n for n in scored if rows[n].reference_answer and rows[n].answer is not None and items[n].answer is None
            ]
            answers = await bounded_gather(
                [(lambda q=perturbed[n]: _in_thread(answerer, q, options.concurrency)) for n in todo],
                options.concurrency,
            )
            got = [(n, a.answer) for n, a in zip(todo, answers, strict=False) if not isinstance(a, BaseException)]
            for n, text in got:
                ref = rows[n].reference_answer or ""
                if "exact_match" in options.metrics:
                    scored[n]["exact_match"] = answer_metrics.exact_match(text, ref)
                if "token_f1" in options.metrics:
                    scored[n]["token_f1"] = answer_metrics.token_f1(text, ref)
            if "semantic_similarity" in options.metrics and got and embedder is not None:
                sims = await asyncio.to_thread(
                    answer_metrics.semantic_similarities,
                    embedder,
                    [t for _, t in got],
                    [rows[n].reference_answer or "" for n, _ in got],
                )
                for (n, _), sim in zip(got, sims, strict=False):
                    scored[n]["semantic_similarity"] = sim

        per_metric: dict[str, dict[str, float]] = {}
        for key in keys:
            pairs = [(rows[n].metrics[key], s[key]) for n, s in scored.items() if key in s and key in rows[n].metrics]
            if not pairs:
                continue
            orig = sum(a for a, _ in pairs) / len(pairs)
            pert = sum(b for _, b in pairs) / len(pairs)
            per_metric[key] = {"original": orig, "perturbed": pert, "delta": pert - orig, "rows": len(pairs)}
        example = next(({"original": items[n].question, "perturbed": q} for n, q in enumerate(perturbed) if q), None)
        out[kind] = {"metrics": per_metric, "example": example}
    return out
