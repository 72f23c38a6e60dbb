"""Comparing two runs: per-metric deltas, regressions, and the questions that got worse.

A metric *regresses* when it moves the wrong way by more than ``tolerance`` (absolute, default 0.01): down
for every metric except toxicity, which is lower-is-better. Per question, rows are matched by id.

Means are compared *paired*: over the questions both runs scored (a row whose judge call errored in one run is
left out of both sides), so a failed call is not read as a change of quality. ``n_base`` / ``n_new`` say how many
rows each run scored, ``n_paired`` how many both did. Runs without common row ids (other question sets, reports
without rows) fall back to each run's own mean (``paired: false``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops_cli.core.eval.report import EvalReport, lower_is_better
from llmops_cli.errors import InputError


def compare_reports(base: EvalReport, new: EvalReport, *, tolerance: float = 0.01, top: int = 10) -> dict[str, Any]:
    metrics = []
    for m in sorted(set(base.metrics) | set(new.metrics)):
        a, b, n_a, n_b, paired = _paired_means(base, new, m)
        delta = None if a is None or b is None else b - a
        worse = delta is not None and ((delta > tolerance) if lower_is_better(m) else (delta < -tolerance))
        better = delta is not None and ((delta < -tolerance) if lower_is_better(m) else (delta > tolerance))
        metrics.append(
            {
                "metric": m,
                "base": a,
                "new": b,
                "delta": delta,
                "status": "regressed" if worse else "improved" if better else ("missing" if delta is None else "same"),
                "n_base": n_a,
                "n_new": n_b,
                "n_paired": paired,
                "paired": paired is not None,
            }
        )
    primary = new.primary_metric or base.primary_metric
    worse_rows = []
    if primary:
        by_id = {r.id: r for r in base.rows}
        for r in new.rows:
            old = by_id.get(r.id)
            if old is None or primary not in r.metrics or primary not in old.metrics:
                continue
            d = r.metrics[primary] - old.metrics[primary]
            if (d > tolerance) if lower_is_better(primary) else (d < -tolerance):
                worse_rows.append(
                    {
                        "id": r.id,
                        "question": r.question,
                        "base": old.metrics[primary],
                        "new": r.metrics[primary],
                        "delta": d,
                    }
                )
        worse_rows.sort(key=lambda x: -x["delta"] if lower_is_better(primary) else x["delta"])
    return {
        "base": {"run_id": base.run_id, "dataset_sha256": base.dataset.get("sha256"), "config_hash": base.config_hash},
        "new": {"run_id": new.run_id, "dataset_sha256": new.dataset.get("sha256"), "config_hash": new.config_hash},
        "same_dataset": base.dataset.get("sha256") == new.dataset.get("sha256"),
        "tolerance": tolerance,
        "metrics": metrics,
        "regressions": [m["metric"] for m in metrics if m["status"] == "regressed"],
        "primary_metric": primary,
        "questions_worse": worse_rows[:top],
        "questions_worse_total": len(worse_rows),
    }


def _scored(report: EvalReport, metric: str) -> dict[str, float]:
    return {r.id: r.metrics[metric] for r in report.rows if r.metrics.get(metric) is not None}


def _paired_means(
    base: EvalReport, new: EvalReport, metric: str
) -> tuple[float | None, float | None, int, int, int | None]:
    """(base mean, new mean, rows base scored, rows new scored, rows both scored or None when unpaired)."""
    a, b = _scored(base, metric), _scored(new, metric)
    n_a = len(a) if base.rows else base.counts.get(metric, 0)
    n_b = len(b) if new.rows else new.counts.get(metric, 0)
    both = [i for i in a if i in b]
    if not both:  # nothing in common to pair: each run's own mean
        return base.metrics.get(metric), new.metrics.get(metric), n_a, n_b, None
    return sum(a[i] for i in both) / len(both), sum(b[i] for i in both) / len(both), n_a, n_b, len(both)


def load_report_ref(ref: str, history) -> EvalReport:
    """A run from the history (``7``, ``latest``, ``latest~1``) or a report file written with --output/--json."""
    p = Path(ref).expanduser()
    if p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(
                f"report file {p} cannot be read as JSON: {e}",
                hint="pass a file written by `llmops eval ... --output X.json`",
            ) from None
        if not isinstance(data, dict) or "metrics" not in data:
            raise InputError(
                f"report file {p} is not an eval report (no 'metrics')",
                hint="pass a file written by `llmops eval ... --output X.json`",
            )
        return EvalReport.from_dict(data)
    return history.load(ref)
