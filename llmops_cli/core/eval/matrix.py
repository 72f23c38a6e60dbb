"""The model x prompt matrix: every combination answers the same questions from the same retrieved context, each is
scored like a single run, and a leaderboard ranks them.

- ``plan_matrix``: the combinations (models x answer prompts), checked before any work;
- ``SharedContexts``: each question's context (rewordings + hybrid search) made once and handed to every
  combination, so a difference between two combinations is the model's or the prompt's, never the retrieval's;
- ``prompt_answerer``: the answer step of `llmops ask` with a given prompt template (the built-in prompt sends the
  very messages `ask` sends, so cached answers stay valid);
- ``leaderboard``: per combination each metric's mean with its 95% interval, the answers' cost and tokens, latency
  p50/p95, errors; the winner per metric and the Pareto front of quality against cost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.eval import stats
from llmops_cli.core.eval.report import lower_is_better
from llmops_cli.core.eval.runner import Answered
from llmops_cli.core.prompts import PromptTemplate, default_prompt
from llmops_cli.errors import InputError, UsageError

if TYPE_CHECKING:
    from llmops_cli.core.eval.report import EvalReport

MAX_COMBINATIONS = 64
# what the leaderboard ranks by unless told: the first answer-quality metric the runs have (retrieval is shared by
# every combination, so it cannot tell them apart)
RANK_ORDER = (
    "correctness",
    "faithfulness",
    "answer_relevance",
    "helpfulness",
    "token_f1",
    "semantic_similarity",
    "exact_match",
)


@dataclass(frozen=True)
class Combo:
    model: str
    prompt: PromptTemplate

    @property
    def label(self) -> str:
        return f"{self.model} x {self.prompt.label}"


def read_models_file(path: str | Path) -> list[str]:
    """Model names, one a line; blank lines and ``#`` comments ignored."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"models file {p} cannot be read: {e}", hint="one model name a line") from None
    models = [line.split("#", 1)[0].strip() for line in lines]
    models = [m for m in models if m]
    if not models:
        raise InputError(f"models file {p} names no model", hint="write one model name a line (e.g. openai/gpt-4o)")
    return models


def plan_matrix(models: Sequence[str], prompts: Sequence[PromptTemplate]) -> list[Combo]:
    """Every model with every prompt (models in the order given, duplicates dropped)."""
    models = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if not models:
        raise UsageError("the matrix needs a model", hint="pass --model MODEL (repeatable) or set llm.model")
    if not prompts:
        prompts = [default_prompt()]
    combos = [Combo(m, p) for m in models for p in prompts]
    if len(combos) > MAX_COMBINATIONS:
        raise UsageError(
            f"{len(models)} models x {len(prompts)} prompts is {len(combos)} combinations, over {MAX_COMBINATIONS}",
            hint="evaluate fewer at once (e.g. shortlist prompts on one model first)",
        )
    return combos


class SharedContexts:
    """Each question's retrieved context, made once (rewordings by ``reword_llm`` with ``reword_prompt``, then the
    search over every wording, as `llmops ask` does) and shared by every combination. Thread-safe: the answer
    steps of a run call it concurrently."""

    def __init__(
        self,
        retriever,
        reword_llm,
        *,
        k: int,
        rewordings: int,
        mode: str,
        where: dict[str, Any] | None,
        reword_prompt: PromptTemplate | None = None,
    ):
        self.retriever, self.reword_llm = retriever, reword_llm
        self.k, self.rewordings, self.mode, self.where = k, rewordings, mode, where
        self.reword_prompt = reword_prompt or default_prompt("reword")
        self._done: dict[str, list] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def seed(self, done: dict[str, list]) -> None:
        """Contexts made before (by the task that searched, in a matrix run task by task): used as made here."""
        self._done.update(done)

    def made(self) -> dict[str, list]:
        """The contexts made so far, per question."""
        return dict(self._done)

    def __call__(self, question: str) -> list:
        with self._guard:
            lock = self._locks.setdefault(question, threading.Lock())
        with lock:
            if question not in self._done:
                self._done[question] = self._search(question)
            return self._done[question]

    def _search(self, question: str) -> list:
        from llmops_cli.core import ask  # loads the retrieval stack (numpy): only when answers are made

        words: list[str] = []
        if self.reword_llm is not None and self.rewordings > 0:
            c = self.reword_llm.complete(self.reword_prompt.messages(n=self.rewordings, question=question))
            words = ask.parse_rewordings(c.text, question, self.rewordings)
        return self.retriever.search_many([question, *words], self.k, mode=self.mode, where=self.where)


class MemoRetriever:
    """A retriever whose searches are made once per (text, k, mode, where): every combination's retrieval metrics
    come from the same search."""

    def __init__(self, retriever):
        self._retriever = retriever
        self._done: dict[str, list] = {}
        self._lock = threading.Lock()

    def seed(self, done: dict[str, list]) -> None:
        """Searches made before (``made()`` of another MemoRetriever): answered from here."""
        self._done.update(done)

    def made(self) -> dict[str, list]:
        return dict(self._done)

    def search(self, text: str, k: int, mode: str = "hybrid", where: dict | None = None) -> list:
        key = repr((text, k, mode, sorted((where or {}).items())))
        with self._lock:
            if key not in self._done:
                self._done[key] = self._retriever.search(text, k, mode=mode, where=where)
            return self._done[key]

    def search_many(self, texts: list[str], k: int, mode: str = "hybrid", where: dict | None = None) -> list:
        return self._retriever.search_many(texts, k, mode=mode, where=where)


def prompt_answerer(llm, prompt: PromptTemplate, contexts: Callable[[str], list]) -> Callable[[str], Answered]:
    """The grounded answer of `llmops ask` with ``prompt``: the question's shared context, one LLM call."""

    def answer(question: str) -> Answered:
        from llmops_cli.core import ask

        hits = contexts(question)
        t0 = time.perf_counter()
        c = llm.complete(prompt.messages(question=question, context=ask.context_block(hits)))
        cached = bool((c.raw or {}).get("cached"))
        # a cached answer made no call: its latency is not the model's
        latency = None if cached else (c.latency_s or time.perf_counter() - t0)
        return Answered(answer=c.text.strip(), hits=list(hits), latency_s=latency)

    return answer


def metric_range(metric: str) -> tuple[float, float]:
    return (-1.0, 1.0) if metric == "semantic_similarity" else (0.0, 1.0)


@dataclass
class MatrixEntry:
    combo: Combo
    report: EvalReport
    answer_usage: dict[str, Any] = field(default_factory=dict)  # the answers' calls, tokens, cost (what shipping costs)
    judge_usage: dict[str, Any] = field(default_factory=dict)  # the judge's, for this combination's answers


def leaderboard(entries: Sequence[MatrixEntry], rank_by: str | None = None) -> dict[str, Any]:
    """The comparison of the combinations (see the module doc). ``rank_by`` (default: the first of ``RANK_ORDER``
    the runs have, else their primary metric) orders the rows and is the quality axis of the Pareto front; the cost
    axis is the answers' cost in USD, or their tokens (in + out) when a price is unknown for some model."""
    if not entries:
        return {"rows": [], "winners": {}, "rank_by": rank_by, "cost_axis": "cost", "pareto": []}
    metrics = list(dict.fromkeys(m for e in entries for m in e.report.metrics))
    rank_by = rank_by or next((m for m in RANK_ORDER if m in metrics), entries[0].report.primary_metric)
    if rank_by is not None and rank_by not in metrics:
        raise UsageError(f"--rank-by {rank_by}: not a metric of this run", hint=f"choose from: {', '.join(metrics)}")
    # the answers' tokens and cost as served (cached answers count what they cost when made; runs recorded before
    # ``served`` existed have only what they spent)
    served = [e.answer_usage.get("served") or e.answer_usage for e in entries]
    cost_known = all(s.get("cost") is not None for s in served)
    rows = []
    for e, spent in zip(entries, served, strict=True):
        per_metric = {}
        for m in metrics:
            values = [r.metrics[m] for r in e.report.rows if m in r.metrics]
            per_metric[m] = stats.mean_ci(values, *metric_range(m))
        lat = [r.latency_s for r in e.report.rows if getattr(r, "latency_s", None) is not None]
        u = e.answer_usage
        tokens = int(spent.get("input_tokens", 0)) + int(spent.get("output_tokens", 0))
        rows.append(
            {
                "label": e.combo.label,
                "model": e.combo.model,
                "prompt": e.combo.prompt.ref(),
                "run_id": e.report.run_id,
                "metrics": per_metric,
                "cost": spent.get("cost"),
                "input_tokens": int(spent.get("input_tokens", 0)),
                "output_tokens": int(spent.get("output_tokens", 0)),
                "tokens": tokens,
                "calls": int(u.get("calls", 0)),
                "cached": int(u.get("cached", 0)),
                "latency_p50_s": stats.percentile(lat, 50),
                "latency_p95_s": stats.percentile(lat, 95),
                "latency_n": len(lat),
                "error_rows": e.report.error_rows,
                "judge_usage": e.judge_usage,
            }
        )
    winners: dict[str, list[str]] = {}
    for m in metrics:
        scored = [(r["metrics"][m]["mean"], r["label"]) for r in rows if r["metrics"][m]["mean"] is not None]
        if scored:
            best = (min if lower_is_better(m) else max)(v for v, _ in scored)
            winners[m] = [label for v, label in scored if abs(v - best) < 1e-12]
    cost_axis = "cost" if cost_known else "tokens"
    pareto: list[str] = []
    if rank_by is not None:
        sign = -1.0 if lower_is_better(rank_by) else 1.0
        candidates = [r for r in rows if r["metrics"][rank_by]["mean"] is not None]
        points = [(sign * r["metrics"][rank_by]["mean"], float(r[cost_axis])) for r in candidates]
        pareto = [candidates[i]["label"] for i in stats.pareto_front(points)]

        def order(r: dict[str, Any]) -> tuple:
            mean = r["metrics"][rank_by]["mean"]
            return (mean is None, -sign * (mean or 0.0), float(r[cost_axis]))

        rows.sort(key=order)
    for n, r in enumerate(rows, start=1):
        r["rank"] = n
        r["pareto"] = r["label"] in pareto
    return {"rows": rows, "winners": winners, "rank_by": rank_by, "cost_axis": cost_axis, "pareto": pareto}


@dataclass
class MatrixReport:
    """A finished matrix: the combinations' runs (one recorded run each) and their leaderboard."""

    matrix_id: str
    dataset: dict[str, Any]
    entries: list[MatrixEntry]
    board: dict[str, Any]
    context_usage: dict[str, Any] = field(default_factory=dict)  # the shared rewordings' calls
    duration_s: float = 0.0

    @property
    def error_rows(self) -> int:
        return sum(e.report.error_rows for e in self.entries)

    def questions(self) -> list[dict[str, Any]]:
        """Side by side per question: every combination's answer, scores and errors in one row."""
        out = []
        for n, row in enumerate(self.entries[0].report.rows if self.entries else []):
            answers = []
            for e in self.entries:
                r = e.report.rows[n]
                answers.append({"label": e.combo.label, "answer": r.answer, "metrics": r.metrics, "errors": r.errors})
            out.append(
                {"id": row.id, "question": row.question, "reference_answer": row.reference_answer, "answers": answers}
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "matrix",
            "matrix_id": self.matrix_id,
            "dataset": self.dataset,
            "leaderboard": self.board,
            "runs": [e.report.run_id for e in self.entries],
            "gates": {e.combo.label: e.report.gates for e in self.entries if e.report.gates},
            "context_usage": self.context_usage,
            "error_rows": self.error_rows,
            "duration_s": self.duration_s,
            "questions": self.questions(),
        }
