"""Semantic cache: a question near-identical to one whose answer was promoted gets that answer, without an LLM call.

The key is the embedding of the promoted question (kept in the answer log with the promotion, for the embedder that
made it); a new question hits when its cosine similarity to one of them reaches the threshold. Only promotions that
are still active count, so an answer rated down or failing review stops being served at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmops_cli.adapters.embedders.base import Embedder
from llmops_cli.core.feedback.log import AnswerLog, Promotion


@dataclass
class CacheHit:
    promotion: Promotion
    similarity: float

    @property
    def answer_id(self) -> str:
        return self.promotion.answer_id

    def to_dict(self) -> dict:
        return {"answer_id": self.answer_id, "similarity": round(self.similarity, 4), "question": self.promotion.question,
                "chunk_id": self.promotion.chunk_id}


def unit_vector(v) -> np.ndarray:
    """``v`` as float32 scaled to length 1 (a zero vector stays zero): the form of the cache's keys and queries."""
    v = np.asarray(v, dtype=np.float32)
    return v / (float(np.linalg.norm(v)) or 1.0)


def find_cached(log: AnswerLog, embedder: Embedder, collection: str, question: str, threshold: float) -> CacheHit | None:
    """The promoted answer whose question is most similar to ``question``, when the similarity reaches ``threshold``."""
    ids, blob = log.promotion_vectors(collection, embedder.identity)
    if not ids:
        return None  # no embedding needed
    q = unit_vector(embedder.embed_query(question))
    keys = np.frombuffer(blob, dtype=np.float32).reshape(len(ids), -1)
    if keys.shape[1] != q.shape[0]:
        return None  # vectors of another dimension under the same identity: never comparable
    sims = keys @ q
    best = int(np.argmax(sims))
    if float(sims[best]) < threshold:
        return None
    promo = log.promotion_of(ids[best])
    return CacheHit(promo, float(sims[best])) if promo is not None else None
