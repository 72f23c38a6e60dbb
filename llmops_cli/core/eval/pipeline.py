"""One evaluation as pure steps over parts it is handed: ``plan_eval`` decides what the run computes and needs
(before any part is built), ``run_evaluation`` runs it with the retriever, LLMs and embedder it is given.

Building those parts from settings is the entry layer's job (``llmops_cli.entry.eval.evaluate``, shared by the CLI
and the Airflow DAG): core never imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops_cli.core.eval import runner
from llmops_cli.core.eval.compare import compare_reports
from llmops_cli.core.eval.gates import check_gates, validate_gates
from llmops_cli.core.eval.runner import ANSWER_METRICS, OFFLINE_TOXICITY, Answered, EvalOptions, resolve_metrics
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.eval.datasets import Dataset
    from llmops_cli.core.eval.report import EvalReport

# bump when a prompt or a metric definition changes: the config hash then differs from older runs
EVAL_VERSION = "1"

JUDGE_METRICS = ("faithfulness", "answer_relevance", "correctness", "helpfulness", "toxicity")


def eval_config_hash(config: dict[str, Any]) -> str:
    """The hash of one evaluation's configuration (``EVAL_VERSION``, collection, metrics, k, mode, models, embedder,
    retrieval settings, perturbations, limit): two runs with the same hash measured the same thing. Not the answer
    log's ``config_hash``, which hashes the settings that shape an answer."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class EvalPlan:
    """What one run computes and which parts it needs, known before any part is built."""

    metrics: list[str]
    gates: list[Any]
    generate: bool  # answers are made by the LLM (some item has none)
    needs_retriever: bool
    needs_judge: bool


def plan_eval(
    dataset: Dataset,
    metrics: Sequence[str] | None,
    gates: list[Any],
    *,
    k: int,
    llm_model: str | None,
    judge_model: str | None,
    perturbations: Sequence[str],
) -> EvalPlan:
    """The metrics chosen, the gates checked against them (a typo or an impossible threshold must not cost a whole
    evaluation), and the parts the run needs."""
    chosen = resolve_metrics(
        list(metrics) if metrics else None, dataset, llm_available=bool(judge_model), answers_possible=bool(llm_model)
    )
    gates = validate_gates(gates, chosen, k)
    needs_answers = any(m in chosen for m in (*ANSWER_METRICS, *JUDGE_METRICS, OFFLINE_TOXICITY))
    generate = needs_answers and any(i.answer is None for i in dataset.items)
    needs_retriever = any(m in chosen for m in ("retrieval", "chunk", "robustness", "faithfulness")) or generate
    if generate and not llm_model:
        raise UsageError(
            "answer metrics need answers: the question set has no 'answer' column and no LLM is configured",
            hint="set llm.model (LLMOPS_LLM_MODEL), add an 'answer' column, or use --metrics retrieval",
        )
    if "robustness" in chosen and "paraphrase" in perturbations and not judge_model:
        # it was dropped without a word: the run had no paraphrase deltas and said nothing
        raise UsageError(
            "the paraphrase perturbation needs an LLM (it rewords each question) and none is configured",
            hint="set llm.model (or --judge-model), or choose --perturb typos,casing",
        )
    needs_judge = bool(judge_model) and (
        any(m in chosen for m in JUDGE_METRICS) or ("robustness" in chosen and "paraphrase" in perturbations)
    )
    return EvalPlan(
        metrics=chosen, gates=gates, generate=generate, needs_retriever=needs_retriever, needs_judge=needs_judge
    )


def run_evaluation(
    dataset: Dataset,
    plan: EvalPlan,
    options: EvalOptions,
    *,
    retriever=None,
    answer_llm=None,
    answerer: Callable[[str], Answered] | None = None,
    judge_llm=None,
    embedder=None,
    rewordings: int = 0,
    config: dict[str, Any],
    usage: Callable[[], dict[str, Any]] | None = None,
    base: EvalReport | None = None,
    tolerance: float = 0.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Run the evaluation with the parts given; gates are checked (``report.gates``) but not raised, and ``base``
    (an earlier report) fills ``report.comparison``. ``answerer`` (question -> Answered) makes the answers; without
    it, ``answer_llm`` answers through the `llmops ask` step."""
    if answerer is None and answer_llm is not None:
        # the ask step loads the retrieval stack (numpy): only when answers are made, so that `llmops eval runs`
        # and the other history commands stay light
        from llmops_cli.core import ask

        def ask_answerer(question: str) -> Answered:
            # the same step as `llmops ask`: rewordings, retrieval, grounded answer (LLM calls through the cache)
            res = ask.ask(
                question,
                retriever,
                answer_llm,
                k=options.k,
                rewordings=rewordings,
                mode=options.mode,
                where=options.where,
            )
            return Answered(answer=res.answer, hits=list(res.hits))

        answerer = ask_answerer

    # looked up on the module at call time: tests replace runner.run_eval to prove a check came first
    report = asyncio.run(
        runner.run_eval(
            dataset,
            options,
            retriever=retriever,
            answerer=answerer,
            judge_llm=judge_llm,
            embedder=embedder,
            progress=progress,
            config=config,
            config_hash=eval_config_hash(config),
            usage=usage,
        )
    )
    check_gates(report, plan.gates)
    if base is not None:
        report.comparison = compare_reports(base, report, tolerance=tolerance)
    return report
