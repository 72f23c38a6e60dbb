"""Base vs tuned on the held-out questions: the eval's own retrieval metrics (``core/eval/retrieval_metrics``) per
question, their means with paired bootstrap confidence intervals, and the gain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmops_cli.core.eval.retrieval_metrics import hit_at_k, reciprocal_rank
from llmops_cli.core.eval.runner import source_ranking
from llmops_cli.core.finetune.pairs import Chunk, Example

METRICS = ("hit@5", "mrr@10")


def rank(query_vecs: np.ndarray, chunk_vecs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest chunks per query (vectors are L2-normalised: dot product = cosine)."""
    scores = query_vecs @ chunk_vecs.T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def per_question(
    examples: Sequence[Example], chunks: Sequence[Chunk], query_vecs: np.ndarray, chunk_vecs: np.ndarray
) -> dict[str, list[float]]:
    """hit@5 and MRR@10 of each question: at source level where it names sources (a source counts at its first
    chunk), else at chunk level, as ``llmops eval`` scores them."""
    top = rank(query_vecs, chunk_vecs, 10)
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for e, row in zip(examples, top, strict=True):
        if e.relevant_sources:
            relevant = e.relevant_sources
            ranked = source_ranking([{"source": chunks[i].source} for i in row], relevant)
        else:
            ranked, relevant = [chunks[i].id for i in row], e.relevant_chunks
        out["hit@5"].append(hit_at_k(ranked, relevant, 5))
        out["mrr@10"].append(reciprocal_rank(ranked, relevant, 10))
    return out


@dataclass
class Comparison:
    n: int
    base: dict[str, float]
    tuned: dict[str, float]
    gain: dict[str, float]
    ci: dict[str, dict[str, list[float]]]  # metric -> {"base": [lo, hi], "tuned": [...], "gain": [...]}

    def to_dict(self) -> dict[str, Any]:
        return {"questions": self.n, "base": self.base, "tuned": self.tuned, "gain": self.gain, "ci95": self.ci}


def compare(
    base: dict[str, list[float]], tuned: dict[str, list[float]], *, resamples: int = 2000, seed: int = 0
) -> Comparison:
    """Means and 95% paired bootstrap intervals (the same resampled questions for base, tuned and their gain)."""
    n = len(base[METRICS[0]])
    if n == 0:
        raise ValueError("no held-out questions to compare on")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    out = Comparison(n, {}, {}, {}, {})
    for m in METRICS:
        b, t = np.asarray(base[m]), np.asarray(tuned[m])
        out.base[m], out.tuned[m], out.gain[m] = _r(b.mean()), _r(t.mean()), _r(t.mean() - b.mean())
        bm, tm = b[idx].mean(axis=1), t[idx].mean(axis=1)
        draws = {"base": bm, "tuned": tm, "gain": tm - bm}
        out.ci[m] = {k: [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))] for k, v in draws.items()}
    return out


def _r(x: float) -> float:
    return round(float(x), 4)
