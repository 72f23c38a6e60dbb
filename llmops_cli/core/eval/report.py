"""The result of one evaluation run: per-question rows, metric means, usage, robustness deltas."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops_cli.core.eval.datasets import EvalItem
from llmops_cli.core.eval.judge import LOWER_IS_BETTER

# The metric the "worst questions" are ranked by: the first of these the run has.
PRIMARY_ORDER = (
    "correctness",
    "faithfulness",
    "ndcg@",
    "mrr",
    "token_f1",
    "semantic_similarity",
    "chunk_ndcg@",
    "answer_relevance",
    "helpfulness",
)


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


@dataclass
class RowResult(EvalItem):
    """One question's result: the question set's fields (EvalItem) plus what the run produced."""

    retrieved: list[dict[str, Any]] = field(default_factory=list)  # id, source, score
    metrics: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # the judge's reason per judged metric
    errors: dict[str, str] = field(default_factory=dict)  # metric (or "retrieval"/"answer") -> message
    latency_s: float | None = None  # the answer call's latency when it reached the LLM


@dataclass
class EvalReport:
    dataset: dict[str, Any]  # path, sha256, rows
    config: dict[str, Any]
    config_hash: str
    metrics: dict[str, float]  # mean per metric
    counts: dict[str, int]  # rows with a value per metric
    rows: list[RowResult]
    usage: dict[str, Any] = field(default_factory=dict)
    robustness: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # kind -> {metrics: {m: {original, perturbed, delta, rows}}, example}
    duration_s: float = 0.0
    created_at: str = ""
    run_id: int | None = None
    by_tag: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # tag -> metric -> mean over the rows with that tag
    gates: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    human_ratings: list[dict[str, Any]] = field(default_factory=list)  # people's scores (eval rate), when exported

    @property
    def error_rows(self) -> int:
        return sum(1 for r in self.rows if r.errors)

    @property
    def primary_metric(self) -> str | None:
        for p in PRIMARY_ORDER:
            for m in self.metrics:
                if m == p or (p.endswith("@") and m.startswith(p)):
                    return m
        return next(iter(self.metrics), None)

    def worst(self, n: int = 5, metric: str | None = None) -> list[RowResult]:
        metric = metric or self.primary_metric
        if metric is None:
            return []
        scored = [r for r in self.rows if metric in r.metrics]
        scored.sort(key=lambda r: r.metrics[metric], reverse=lower_is_better(metric))
        return scored[:n]

    def summary(self) -> dict[str, Any]:
        """Everything but the rows (what the Airflow DAG puts in XCom)."""
        d = self.to_dict()
        d.pop("rows")
        d["error_rows"] = self.error_rows
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [r.to_dict() for r in self.rows]
        d["error_rows"] = self.error_rows
        d["primary_metric"] = self.primary_metric
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        rows = [
            RowResult(**{k: v for k, v in r.items() if k in RowResult.__dataclass_fields__}) for r in d.get("rows", [])
        ]
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "rows"}
        return cls(rows=rows, **kw)


def mean_metrics(rows: list[RowResult]) -> tuple[dict[str, float], dict[str, int]]:
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in rows:
        for k, v in r.metrics.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}, counts


def means_by_tag(rows: list[RowResult]) -> dict[str, dict[str, float]]:
    tags = sorted({t for r in rows for t in r.tags})
    return {t: mean_metrics([r for r in rows if t in r.tags])[0] for t in tags}
