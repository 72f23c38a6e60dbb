"""Chunking sweeps: the same sources ingested into temporary collections under several chunking configurations
(strategy x size x overlap, and embedders when given), each evaluated on the same question set, ranked.

Every combination is checked before any work: a bad value, or a size over an embedder's maximum (the model would
truncate longer chunks), is a usage error naming the sweep's own flag; combinations that are only invalid together
(overlap >= size) are skipped and listed. Temporary collections are named ``sweep-<hash>-<n>`` and deleted
afterwards unless ``keep``.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.eval.report import lower_is_better

if TYPE_CHECKING:
    from llmops_cli.settings import Settings


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
        return {"dataset": self.dataset, "rank_by": self.rank_by, "leaderboard": [asdict(e) for e in self.entries],
                "skipped": self.skipped, "kept_collections": self.kept_collections}


def _embedder_token_limit(es) -> int:
    from llmops_cli import wiring

    return int(wiring.build_embedder(es).tokens.max_tokens)


def plan_configs(strategies: Sequence[str], sizes: Sequence[int], overlaps: Sequence[int], embedders: Sequence[str]) -> list[tuple[str, int, int, str]]:
    return list(itertools.product(strategies, sizes, overlaps, embedders))


def run_sweep(
    settings: "Settings",
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
    """``token_limit(embedder_settings)``: the longest chunk the embedder reads (default: its tokenizer's maximum)."""
    from pydantic import ValidationError

    from llmops_cli import pipelines
    from llmops_cli.core.eval.datasets import load_dataset
    from llmops_cli.core.eval.pipeline import evaluate as default_evaluate
    from llmops_cli.errors import UsageError
    from llmops_cli.settings import ChunkingSettings

    evaluate = evaluate or default_evaluate
    ingest = ingest or pipelines.ingest
    delete_collection = delete_collection or pipelines.delete_collection
    if not sources:
        raise UsageError("a sweep needs sources to ingest", hint="pass --sources PATH (repeatable)")
    load_dataset(dataset_path)  # fail early on a bad question set, before any ingest
    k = k or settings.retrieval.k
    strategies = list(strategies or [settings.chunking.strategy])
    sizes = list(sizes or [settings.chunking.size])
    overlaps = list(overlaps or [settings.chunking.overlap])
    embedders = list(embedders or [settings.embedder.model])
    for value, field_name, flag in [*[(x, "strategy", "--strategy") for x in strategies], *[(x, "size", "--size") for x in sizes]]:
        try:  # a bad value on its own is a usage error; only combinations (overlap >= size) are skipped
            ChunkingSettings(**{field_name: value, "overlap": 0})
        except ValidationError as e:
            raise UsageError(f"{flag} {value!r}: {e.errors()[0]['msg']}", hint="see `llmops eval sweep --help`") from None
    if any(o < 0 for o in overlaps):
        raise UsageError("--overlap must be 0 or more")
    token_limit = token_limit or _embedder_token_limit
    for emb in embedders:  # the embedders are loaded here anyway (ingest reuses them): before, not at the nth ingest
        limit = token_limit(settings.embedder.model_copy(update={"model": emb}))
        over = [x for x in sizes if x > limit]
        if over:
            raise UsageError(f"--size {over[0]} is over the embedding model {emb}'s maximum of {limit} tokens "
                             "(longer chunks would be truncated)",
                             hint=f"use --size {limit} or less" + (f" (or drop --embedder {emb})" if len(embedders) > 1 else ""))
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
        raise UsageError(f"every combination is skipped: {'; '.join(s['config'] + ': ' + s['reason'] for s in report.skipped[:3])}",
                         hint="pass an --overlap smaller than the --size values")
    done: list[SweepEntry] = []
    for n, label, chunking, emb in planned:
        strategy, size, overlap = chunking.strategy, chunking.size, chunking.overlap
        variant = settings.model_copy(update={"chunking": chunking,
                                               "embedder": settings.embedder.model_copy(update={"model": emb})})
        name = f"sweep-{tag}-{n}"
        if progress:
            progress(f"[{n}] ingesting {label} into {name}")
        try:
            t0 = time.perf_counter()
            ing = ingest(variant, list(sources), collection=name)
            t1 = time.perf_counter()
            if progress:
                progress(f"[{n}] evaluating {label}")
            rep = evaluate(variant, dataset_path, collection=name, metrics=list(metrics or ["retrieval"]), k=k, mode=mode,
                           record=record, label=f"sweep {tag} {label}")
            t2 = time.perf_counter()
            done.append(SweepEntry(rank=0, strategy=strategy, size=size, overlap=overlap, embedder=emb, collection=name,
                                   chunks=int(getattr(ing, "chunks_total", 0) or 0), ingest_seconds=round(t1 - t0, 2),
                                   eval_seconds=round(t2 - t1, 2), metrics=rep.metrics, run_id=rep.run_id))
        finally:
            if not keep:
                try:
                    delete_collection(variant, name)
                except Exception:  # noqa: BLE001 - a collection that was never created has nothing to delete
                    pass
    key = report.rank_by
    if done and not any(key in e.metrics for e in done):
        raise UsageError(f"--rank-by {key!r} is not a metric of the sweep (has: {', '.join(sorted(done[0].metrics))})",
                         hint="pick one of those")
    sign = 1 if lower_is_better(key) else -1
    done.sort(key=lambda e: (key not in e.metrics, sign * e.metrics.get(key, 0.0)))  # best first, missing last
    for i, e in enumerate(done, start=1):
        e.rank = i
    report.entries = done
    return report
