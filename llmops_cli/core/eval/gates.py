"""CI gates: ``--fail-under METRIC=VALUE`` (repeatable). For toxicity (lower is better) the gate fails when the
value is *above* the threshold. A gate on a metric the run did not produce fails (it cannot pass silently)."""

from __future__ import annotations

from typing import Any

from llmops_cli.core.eval.report import EvalReport, lower_is_better
from llmops_cli.errors import UsageError


def parse_gates(specs: list[str] | None) -> list[tuple[str, float]]:
    out = []
    for spec in specs or []:
        if "=" not in spec:
            raise UsageError(f"--fail-under {spec!r} is not METRIC=VALUE", hint="e.g. --fail-under hit@5=0.8")
        name, value = spec.split("=", 1)
        try:
            threshold = float(value)
        except ValueError:
            raise UsageError(f"--fail-under {spec!r}: {value!r} is not a number", hint="e.g. --fail-under mrr=0.6") from None
        out.append((name.strip().lower(), threshold))
    return out


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
            passed, note = False, f"the run has no metric {name!r} (has: {', '.join(sorted(report.metrics)) or 'none'})"
        elif lower_is_better(name):
            passed, note = value <= threshold, f"= {value:.4f}, needs <= {threshold:g}"
        else:
            passed, note = value >= threshold, f"= {value:.4f}, needs >= {threshold:g}"
        results.append({"metric": name, "threshold": threshold, "value": value, "passed": passed, "check": note})
    report.gates = results
    return results
