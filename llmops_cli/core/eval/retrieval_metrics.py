"""Retrieval metrics over one ranked list of hits, with binary relevance.

Definitions (``ranked`` = the retrieved ids, best first, cut at ``k``; ``relevant`` = the set of relevant ids;
``rank`` counts from 1). At *source level* an id is a hit's source; at *chunk level* it is the chunk id.

- hit@k       = 1 if any of the top-k ids is relevant, else 0.
- recall@k    = |relevant ids found in the top k| / |relevant|  (distinct ids, so at most 1).
- precision@k = (number of the top-k positions holding a relevant id) / k. At source level this is the share
                of the k retrieved chunks that come from a relevant source; fewer than k hits count as misses.
- MRR         = 1 / rank of the first relevant id within the top k, 0 when none (averaged over questions).
- nDCG@k      = DCG / IDCG with DCG = sum over positions i<=k of gain_i / log2(i + 1), where gain_i = 1 when
                position i holds a relevant id not already seen higher up (a source counts once, at its first
                chunk), else 0; IDCG = sum_{i=1..min(|relevant|, k)} 1 / log2(i + 1).

A question without relevant ids gets no value (it is left out of the means, not counted as 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

RETRIEVAL_METRICS = ("hit", "recall", "precision", "mrr", "ndcg")


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    return 1.0 if any(r in rel for r in ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    if not rel:
        raise ValueError("recall needs at least one relevant id")
    return len(rel & set(ranked[:k])) / len(rel)


def precision_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    if k < 1:
        raise ValueError("k must be >= 1")
    rel = set(relevant)
    return sum(1 for r in ranked[:k] if r in rel) / k


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    for i, r in enumerate(ranked[:k], start=1):
        if r in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    if not rel:
        raise ValueError("nDCG needs at least one relevant id")
    seen: set[str] = set()
    dcg = 0.0
    for i, r in enumerate(ranked[:k], start=1):
        if r in rel and r not in seen:
            dcg += 1.0 / math.log2(i + 1)
        seen.add(r)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / idcg


def retrieval_scores(ranked: Sequence[str], relevant: Iterable[str], k: int, prefix: str = "") -> dict[str, float]:
    """All five metrics for one question, keyed ``hit@k``, ``recall@k``, ``precision@k``, ``mrr``, ``ndcg@k``
    (with ``prefix`` prepended, e.g. ``chunk_``). Empty when there is nothing relevant to find."""
    rel = set(relevant)
    if not rel:
        return {}
    return {
        f"{prefix}hit@{k}": hit_at_k(ranked, rel, k),
        f"{prefix}recall@{k}": recall_at_k(ranked, rel, k),
        f"{prefix}precision@{k}": precision_at_k(ranked, rel, k),
        f"{prefix}mrr": reciprocal_rank(ranked, rel, k),
        f"{prefix}ndcg@{k}": ndcg_at_k(ranked, rel, k),
    }
