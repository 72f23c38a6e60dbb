"""Fusing ranked lists into one.

Reciprocal rank fusion (Cormack et al. 2009): score(d) = sum over lists of weight / (k + rank_in_list(d)).
Convex combination (Bruch et al. 2022, "An Analysis of Fusion Functions for Hybrid Retrieval"): each list's scores
normalised (min-max or z-score over the list), score(d) = sum over lists of weight * normalised score; a document
missing from a list gets that list's lowest normalised score (0 for min-max)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Norm = Literal["minmax", "zscore"]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked id lists (best first, rank 1-based), each list's terms times its weight (default 1);
    ties keep first-seen order."""
    scores: dict[str, float] = {}
    for i, ranking in enumerate(rankings):
        w = weights[i] if weights is not None else 1.0
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (k + rank)
    order = {d: i for i, d in enumerate(d for r in rankings for d in r)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def normalise(scores: Sequence[float], norm: Norm = "minmax") -> list[float]:
    """Min-max to [0, 1] (all equal: 1 each), or z-scores (all equal: 0 each)."""
    if not scores:
        return []
    if norm == "minmax":
        lo, hi = min(scores), max(scores)
        return [(s - lo) / (hi - lo) if hi > lo else 1.0 for s in scores]
    if norm == "zscore":
        mean = sum(scores) / len(scores)
        sd = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        return [(s - mean) / sd if sd > 0 else 0.0 for s in scores]
    raise ValueError(f"unknown normalisation {norm!r}; allowed: minmax, zscore")


def convex_fusion(
    lists: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float], norm: Norm = "minmax"
) -> list[tuple[str, float]]:
    """Fuse scored lists ((id, score), higher is better) by the weighted sum of their normalised scores; a document
    absent from a list gets that list's lowest normalised score. Ties keep first-seen order."""
    if len(weights) != len(lists):
        raise ValueError(f"{len(weights)} weights for {len(lists)} lists")
    normed = [dict(zip([d for d, _ in lst], normalise([s for _, s in lst], norm), strict=True)) for lst in lists]
    floors = [min(n.values()) if n else 0.0 for n in normed]
    order = {d: i for i, d in enumerate(dict.fromkeys(d for lst in lists for d, _ in lst))}
    scores = {d: sum(w * n.get(d, f) for w, n, f in zip(weights, normed, floors, strict=True)) for d in order}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
