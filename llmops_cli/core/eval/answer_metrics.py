"""Answer metrics that need no LLM: exact match and token F1 (SQuAD v1.1 definitions) and semantic similarity.

SQuAD normalisation: lower-case, remove punctuation (``string.punctuation``), remove the articles
``a``/``an``/``the`` as whole words, collapse whitespace.

- exact_match = 1 if normalise(answer) == normalise(reference) else 0.
- token_f1    = harmonic mean of token precision (common / answer tokens) and recall (common / reference
                tokens), where ``common`` counts shared tokens with multiplicity (a multiset intersection);
                1 when both normalise to nothing, 0 when only one does.
- semantic_similarity = cosine similarity of the embedder's vectors of answer and reference (the embedder
                returns L2-normalised vectors, so it is their dot product); in [-1, 1], ~1 for paraphrases.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(answer: str, reference: str) -> float:
    return 1.0 if normalize_answer(answer) == normalize_answer(reference) else 0.0


def token_f1(answer: str, reference: str) -> float:
    a = normalize_answer(answer).split()
    r = normalize_answer(reference).split()
    if not a or not r:
        return 1.0 if a == r else 0.0
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision = common / len(a)
    recall = common / len(r)
    return 2 * precision * recall / (precision + recall)


def semantic_similarities(embedder, answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity per (answer, reference) pair, embedding all texts in one batch."""
    if len(answers) != len(references):
        raise ValueError("answers and references must have the same length")
    if not answers:
        return []
    import numpy as np

    vecs = np.asarray(embedder.embed(list(answers) + list(references)), dtype=np.float32)
    a, r = vecs[: len(answers)], vecs[len(answers) :]
    # re-normalise defensively: an embedder that does not normalise must still give a cosine
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    return [float(x) for x in np.sum(a * r, axis=1)]
