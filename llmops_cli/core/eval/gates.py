"""CI gates: ``--fail-under METRIC=VALUE`` (repeatable). For toxicity (lower is better) the gate fails when the
value is *above* the threshold.

Gates are checked twice: ``validate_gates`` before any work (the name must be a metric this run computes, the
threshold inside the metric's range), so a typo costs a usage error and not a whole evaluation; ``check_gates``
after the run. A gate on a metric that got no value (every row errored) fails: it cannot pass silently.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from llmops_cli.core.eval.report import EvalReport, lower_is_better
from llmops_cli.core.eval.runner import ANSWER_METRICS, LLM_METRICS
from llmops_cli.errors import UsageError

_RETRIEVAL_AT_K = ("hit", "recall", "precision", "ndcg")
_BOUNDS = {"semantic_similarity": (-1.0, 1.0)}  # a cosine; every other metric lies in [0, 1]


def parse_gates(specs: list[str] | None) -> list[tuple[str, float]]:
    out = []
    for spec in specs or []:
        if "=" not in spec:
            raise UsageError(f"--fail-under {spec!r} is not METRIC=VALUE", hint="e.g. --fail-under hit@5=0.8")
        name, value = spec.split("=", 1)
        try:
            threshold = float(value)
        except ValueError:
            raise UsageError(
                f"--fail-under {spec!r}: {value!r} is not a number", hint="e.g. --fail-under mrr=0.6"
            ) from None
        out.append((name.strip().lower(), threshold))
    return out


def metric_names(chosen: list[str], k: int) -> list[str]:
    """The per-question metric names a run with these (resolved) metrics and this k produces."""
    out: list[str] = []
    for m in chosen:
        if m in ("retrieval", "chunk"):
            p = "chunk_" if m == "chunk" else ""
            out += [f"{p}hit@{k}", f"{p}recall@{k}", f"{p}precision@{k}", f"{p}mrr", f"{p}ndcg@{k}"]
        elif m != "robustness":  # robustness reports deltas apart, not a per-question metric
            out.append(m)
    return out


def _known_metric(name: str) -> bool:
    base = name.removeprefix("chunk_")
    return (
        base == "mrr"
        or bool(re.fullmatch(rf"({'|'.join(_RETRIEVAL_AT_K)})@(\d+|k)", base))
        or name in ANSWER_METRICS
        or name in LLM_METRICS
    )


def validate_gates(gates: list[tuple[str, float]], chosen: list[str], k: int) -> list[tuple[str, float]]:
    """The gates with ``@k`` resolved to the run's k; a UsageError for a name this run does not compute (with the
    closest valid name) or a threshold outside the metric's range."""
    valid = metric_names(chosen, k)
    out = []
    for name, threshold in gates:
        resolved = name.replace("@k", f"@{k}") if name.endswith("@k") else name
        if resolved not in valid:
            spec = f"--fail-under {name}"
            listed = ", ".join(valid) or "none"
            at = re.fullmatch(r"(chunk_)?(\w+)@(\d+)", resolved)
            if at and _known_metric(resolved) and f"{at.group(1) or ''}{at.group(2)}@{k}" in valid:
                raise UsageError(
                    f"{spec}: this run computes {at.group(1) or ''}{at.group(2)}@{k} (k={k}), not @{at.group(3)}",
                    hint=f"gate on {at.group(1) or ''}{at.group(2)}@{k} (or @k), or run with -k {at.group(3)}",
                )
            if _known_metric(resolved):
                wider = ",".join(dict.fromkeys([*chosen, _group_of(resolved)]))
                raise UsageError(
                    f"{spec}: this run does not compute {resolved} (it computes: {listed})",
                    hint=f"add it to --metrics (e.g. --metrics {wider}), or drop the gate",
                )
            close = difflib.get_close_matches(resolved, valid, n=1, cutoff=0.6)
            raise UsageError(
                f"{spec}: unknown metric {name!r}" + (f"; did you mean {close[0]}?" if close else ""),
                hint=f"metrics of this run: {listed} (hit@k etc. mean the run's own k)",
            )
        lo, hi = _BOUNDS.get(resolved, (0.0, 1.0))
        if not lo <= threshold <= hi:
            raise UsageError(
                f"--fail-under {name}={threshold:g} can never be met or always is: "
                f"{resolved} lies between {lo:g} and {hi:g}",
                hint=f"use a threshold between {lo:g} and {hi:g}",
            )
        out.append((resolved, threshold))
    return out


def _group_of(metric: str) -> str:
    base = metric.removeprefix("chunk_")
    if base != metric:
        return "chunk"
    return "retrieval" if base == "mrr" or "@" in base else metric


def shown(value: float, threshold: float, digits: int = 3) -> str:
    """``value`` with at least ``digits`` decimals and as many more as it takes to be visibly on its side of
    ``threshold``: 0.96666 against a 0.967 gate prints 0.9667, never 0.967 next to FAIL."""
    d = digits
    while d < 12:
        s = f"{value:.{d}f}"
        v = float(s)
        if (v < threshold) == (value < threshold) and (v > threshold) == (value > threshold):
            return s
        d += 1
    return repr(value)


def _lookup(report: EvalReport, name: str) -> float | None:
    if name in report.metrics:
        return report.metrics[name]
    if "@k" in name:  # hit@k means the run's own k
        k = report.config.get("k")
        return report.metrics.get(name.replace("@k", f"@{k}"))
    return None


def check_gates(report: EvalReport, gates: list[tuple[str, float]]) -> list[dict[str, Any]]:
    results = []
    for name, threshold in gates:
        value = _lookup(report, name)
        if value is None:
            passed, note = (
                False,
                f"got no value: every question's {name} failed (has: {', '.join(sorted(report.metrics)) or 'none'})",
            )
        elif lower_is_better(name):
            passed, note = value <= threshold, f"= {shown(value, threshold)}, needs <= {threshold:g}"
        else:
            passed, note = value >= threshold, f"= {shown(value, threshold)}, needs >= {threshold:g}"
        results.append({"metric": name, "threshold": threshold, "value": value, "passed": passed, "check": note})
    report.gates = results
    return results
