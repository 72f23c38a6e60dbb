"""Reciprocal rank fusion (Cormack et al. 2009): score(d) = sum over lists of 1 / (k + rank_in_list(d))."""

from __future__ import annotations

from collections.abc import Sequence


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
