"""Semantic cache: a question near-identical to one whose answer was promoted gets that answer, without an LLM call.

The key is the embedding of the promoted question (kept in the answer log with the promotion, for the embedder that
made it); a new question is a candidate when its cosine similarity to one of them reaches the threshold. Only
promotions that are still active count, so an answer rated down or failing review stops being served at once.

Cosine similarity alone serves wrong answers: "How do I NOT get the value of a Variable?" is 0.97 from "How do I get
the value of a Variable?", "... set the value ..." 0.92. So a candidate must also pass a lexical check: after
lower-casing, expanding "n't", dropping function words (the, a, do, can, in, ...) and plural "s", both questions must
have the same content words (a typo of a long word counts as the word). A negation, another verb, another entity or
version present in one question and absent from the other blocks the hit; ``lexical_conflict`` names those words.
The price: a paraphrase with other content words ("read" for "get") is answered by the LLM instead of the cache.
benchmarks/bench_feedback.py measures both rates on a planted set with the real embedding model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from llmops_cli.core.feedback.log import AnswerLog, Promotion
from llmops_cli.core.ports import Embedder
from llmops_cli.core.redaction import redact


@dataclass
class CacheHit:
    promotion: Promotion
    similarity: float

    @property
    def answer_id(self) -> str:
        return self.promotion.answer_id

    def to_dict(self) -> dict:
        return {
            "answer_id": self.answer_id,
            "similarity": round(self.similarity, 4),
            "question": self.promotion.question,
            "chunk_id": self.promotion.chunk_id,
        }


def unit_vector(v) -> np.ndarray:
    """``v`` as float32 scaled to length 1 (a zero vector stays zero): the form of the cache's keys and queries."""
    v = np.asarray(v, dtype=np.float32)
    return v / (float(np.linalg.norm(v)) or 1.0)


# Words that do not change what a question asks. Not here on purpose: negations (not, no, never, without), question
# words (how, why, when, ...), directions (from, into, out, off, before, after), and/or: they change the answer.
_FUNCTION_WORDS = frozenset(
    """
    a an the of in inside within on at for by to is are was were be been being am do does did doing can could should
    would will shall may might must i me my we us our you your it its this that these those there please some any
""".split()
)
_WORD = re.compile(r"[a-z0-9_]+")


def content_words(question: str) -> set[str]:
    """The words of ``question`` that carry its meaning: lower-cased, "n't" and "cannot" expanded to "not", "'s" and a
    plural "s" dropped, function words removed."""
    t = question.lower().replace("’", "'")
    t = re.sub(r"\bcan(?:not|'t)\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = re.sub(r"n't\b", " not", t)
    t = re.sub(r"'s\b", "", t)
    words = set()
    for w in _WORD.findall(t):
        if w in _FUNCTION_WORDS:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]  # variables -> variable; class, status, analysis stay
        words.add(w)
    return words


def _one_typo(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or swap of neighbours apart, in words of 5+ letters with the same first
    letter ("varaible" for "variable"; not "get" / "set", not "enable" / "unable")."""
    if a[0] != b[0] or min(len(a), len(b)) < 5 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def lexical_conflict(question: str, cached_question: str) -> list[str]:
    """Content words in one question and not the other (sorted; a typo pair does not count): empty when the cached
    answer may be served for ``question``."""
    a, b = content_words(question), content_words(cached_question)
    only_a, only_b = sorted(a - b), sorted(b - a)
    for w in list(only_a):
        twin = next((v for v in only_b if _one_typo(w, v)), None)
        if twin is not None:
            only_a.remove(w)
            only_b.remove(twin)
    return sorted(only_a + only_b)


def find_cached(
    log: AnswerLog, embedder: Embedder, collection: str, question: str, threshold: float, *, lexical_check: bool = True
) -> CacheHit | None:
    """The promoted answer whose question is most similar to ``question``, when the similarity reaches ``threshold``
    and (``lexical_check``) the two questions have the same content words; the most similar one that passes."""
    ids, blob = log.promotion_vectors(collection, embedder.identity)
    if not ids:
        return None  # no embedding needed
    q = unit_vector(embedder.embed_query(question))
    keys = np.frombuffer(blob, dtype=np.float32).reshape(len(ids), -1)
    if keys.shape[1] != q.shape[0]:
        return None  # vectors of another dimension under the same identity: never comparable
    sims = keys @ q
    above = np.flatnonzero(sims >= threshold)
    # promoted questions are stored redacted: compare with the new question redacted the same way
    asked = redact(question) if lexical_check and len(above) else question
    for i in above[np.argsort(-sims[above], kind="stable")]:
        promo = log.promotion_of(ids[int(i)])
        if promo is None:
            continue
        if lexical_check and lexical_conflict(asked, promo.question):
            continue
        return CacheHit(promo, float(sims[i]))
    return None
