"""Chunking sweeps: the same sources ingested into temporary collections under several chunking configurations
(strategy x size x overlap, and embedders when given), each evaluated on the same question set, ranked.

Every combination is checked before any work: a bad value, or a size over an embedder's maximum (the model would
truncate longer chunks), is a usage error naming the sweep's own flag; combinations that are only invalid together
(overlap >= size) are skipped and listed. Temporary collections are named ``sweep-<hash>-<n>`` and deleted
afterwards unless ``keep``.

This module holds the sweep's values and its ranking; the run itself (ingest and evaluate per configuration) is an
entry point, ``llmops_cli.entry.eval.sweep``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops_cli.core.eval.report import lower_is_better
from llmops_cli.errors import UsageError


@dataclass
class SweepEntry:
    rank: int
    strategy: str
    size: int
    overlap: int
    embedder: str
    collection: str
    chunks: int
    ingest_seconds: float
    eval_seconds: float
    metrics: dict[str, float]
    run_id: int | None = None


@dataclass
class SweepReport:
    dataset: str
    rank_by: str
    entries: list[SweepEntry] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    kept_collections: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rank_by": self.rank_by,
            "leaderboard": [asdict(e) for e in self.entries],
            "skipped": self.skipped,
            "kept_collections": self.kept_collections,
        }


def plan_configs(
    strategies: Sequence[str], sizes: Sequence[int], overlaps: Sequence[int], embedders: Sequence[str]
) -> list[tuple[str, int, int, str]]:
    return list(itertools.product(strategies, sizes, overlaps, embedders))


def rank_entries(report: SweepReport, done: list[SweepEntry]) -> SweepReport:
    """The evaluated configurations sorted by ``report.rank_by``, best first (configurations without it last)."""
    key = report.rank_by
    if done and not any(key in e.metrics for e in done):
        raise UsageError(
            f"--rank-by {key!r} is not a metric of the sweep (has: {', '.join(sorted(done[0].metrics))})",
            hint="pick one of those",
        )
    sign = 1 if lower_is_better(key) else -1
    done.sort(key=lambda e: (key not in e.metrics, sign * e.metrics.get(key, 0.0)))  # best first, missing last
    for i, e in enumerate(done, start=1):
        e.rank = i
    report.entries = done
    return report
