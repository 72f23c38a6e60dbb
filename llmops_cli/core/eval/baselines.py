"""Blessed baselines: a run marked as the reference of its question set (``RunHistory.bless``), and the gate of a
later run against it, question by question.

A question *passes* a metric when its score reaches the pass mark: 1 for the 0/1 metrics (hit@k, exact_match, ...),
else ``pass_at`` (default 0.5; toxicity passes at or below it). A *per-question regression* is a question that
passed in the blessed run and fails now. Only the questions both runs scored count: a row whose answer or judge
call errored in either run is left out (reported as an error, exit 3, never as a regression).

Next to the flips, each metric gets the exact two-sided sign test on the paired deltas (``stats.sign_test``): how
likely a split of ups and downs at least this uneven is if nothing really changed. A small p-value (< 0.05) says
the change is more than noise; with a handful of questions no change is significant, which is why the gate is the
flips, not the p-value.
"""

from __future__ import annotations

from typing import Any

from llmops_cli.core.eval import stats
from llmops_cli.core.eval.compare import compare_reports
from llmops_cli.core.eval.report import EvalReport, lower_is_better

BINARY_PREFIXES = ("hit@", "chunk_hit@", "exact_match")


def passes(metric: str, value: float, pass_at: float = 0.5) -> bool:
    if metric.startswith(BINARY_PREFIXES):
        return value >= 1.0 - 1e-9
    return value <= pass_at if lower_is_better(metric) else value >= pass_at


def blessed_comparison(
    base: EvalReport, new: EvalReport, *, tolerance: float = 0.01, pass_at: float = 0.5, top: int = 20
) -> dict[str, Any]:
    """``compare_reports`` plus, per metric, the questions that passed in ``base`` and fail in ``new`` (over the
    questions both scored) and the sign test of the paired deltas. ``regressions`` names every metric that regressed
    in the mean or has a question that flipped to failing."""
    c = compare_reports(base, new, tolerance=tolerance)
    base_rows = {r.id: r for r in base.rows}
    flips: list[dict[str, Any]] = []
    significance: dict[str, dict[str, Any]] = {}
    for m in sorted(set(base.metrics) & set(new.metrics)):
        deltas = []
        for r in new.rows:
            old = base_rows.get(r.id)
            if old is None or r.metrics.get(m) is None or old.metrics.get(m) is None:
                continue
            a, b = float(old.metrics[m]), float(r.metrics[m])
            deltas.append(b - a)
            if passes(m, a, pass_at) and not passes(m, b, pass_at):
                flips.append({"metric": m, "id": r.id, "question": r.question, "base": a, "new": b})
        test = stats.sign_test(deltas)
        # for a lower-is-better metric "up" is worse: say it as better/worse
        worse, better = (test["up"], test["down"]) if lower_is_better(m) else (test["down"], test["up"])
        significance[m] = {
            "n_paired": len(deltas),
            "mean_delta": sum(deltas) / len(deltas) if deltas else None,
            "better": better,
            "worse": worse,
            "ties": test["ties"],
            "p_value": test["p_value"],
        }
    flipped = sorted({f["metric"] for f in flips})
    c["against_blessed"] = True
    c["pass_at"] = pass_at
    c["question_regressions"] = flips[:top]
    c["question_regressions_total"] = len(flips)
    c["significance"] = significance
    c["regressions"] = sorted(set(c["regressions"]) | set(flipped))
    return c
