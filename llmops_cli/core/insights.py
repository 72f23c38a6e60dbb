"""What are people asking, and which sources serve them well: analyses of the answer log.

- ``cluster_questions``: the logged questions grouped by meaning (k-means on their embeddings, k chosen by silhouette
  when not given), each group named by its most typical questions (nearest its centre) and its most distinctive terms
  (class-based TF-IDF), with its size, weekly trend, answer rate, average rating, cache-hit rate and a gap score.
  Groups the sources do not answer well ("gaps": questions left unanswered, rated down or judged irrelevant) come
  first.
- ``rank_sources``: each cited source's accuracy from the votes and judge reviews of the answers that cited it, as
  the mean of a Beta posterior (a Beta(2, 2) prior: one vote moves a source, it does not make a verdict).

Pure: rows and vectors in, plain results out; scikit-learn is imported where used.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

# An answer that says the context did not hold it: the question was not answered.
_NO_ANSWER = re.compile(
    r"(?i)\b(?:i\s+(?:do\s+not|don't|cannot|can't)\s+(?:know|find|answer)|not\s+(?:in|covered\s+by)\s+the\s+"
    r"(?:context|sources|documents)|no\s+(?:information|answer)\s+(?:about|on|in|for)|"
    r"(?:the\s+)?(?:context|sources)\s+(?:does|do)\s+not\s+(?:say|mention|contain|cover))"
)
PRIOR = (2.0, 2.0)  # Beta prior of a source's accuracy: (good, bad) pseudo-counts


def answered(text: str) -> bool:
    """False for an empty answer or one that says the context did not hold the answer."""
    return bool(text.strip()) and not _NO_ANSWER.search(text)


@dataclass
class LoggedQuestion:
    """One logged answer, as the analyses see it."""

    id: str
    question: str
    created_at: float
    answered: bool
    rating: int = 0  # votes up minus down (each rater's latest)
    rated: bool = False
    cache_hit: bool = False
    helpfulness: float | None = None  # the judge's review, 0..1
    relevance: float | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def good(self) -> bool:
        """Served well: answered, not rated down, not judged irrelevant."""
        return self.answered and self.rating >= 0 and (self.relevance is None or self.relevance >= 0.5)


@dataclass
class Cluster:
    id: int
    size: int
    typical: list[str]
    terms: list[str]
    weekly: dict[str, int]
    answer_rate: float
    avg_rating: float | None
    rated: int
    cache_hit_rate: float
    gap_score: float  # share of its questions not served well
    gap: bool
    question_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("answer_rate", "cache_hit_rate", "gap_score"):
            d[k] = round(d[k], 3)
        if d["avg_rating"] is not None:
            d["avg_rating"] = round(d["avg_rating"], 3)
        return d


GAP_SHARE = 0.5  # a group is a gap when at least half its questions were not served well


def choose_k(vectors: np.ndarray, k_max: int = 12, seed: int = 0) -> int:
    """The number of groups with the best silhouette (cosine), between 2 and ``k_max``; 1 for a handful of rows."""
    n = len(vectors)
    if n < 6:
        return 1
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best, best_k = -1.0, 2
    for k in range(2, min(k_max, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(vectors, labels, metric="cosine")
        if score > best:
            best, best_k = score, k
    return best_k


def cluster_questions(
    rows: list[LoggedQuestion], vectors: np.ndarray, n_clusters: int | None = None, *, seed: int = 0
) -> list[Cluster]:
    """Group ``rows`` (one vector each) into clusters; gaps first, then the biggest."""
    if not rows:
        return []
    vecs = np.asarray(vectors, dtype=np.float32)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    k = n_clusters or choose_k(vecs, seed=seed)
    k = max(1, min(k, len(rows)))
    if k == 1:
        labels = np.zeros(len(rows), dtype=int)
        centres = vecs.mean(axis=0, keepdims=True)
    else:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vecs)
        labels, centres = km.labels_, km.cluster_centers_
    terms = _distinctive_terms(
        [[r.question for r, lab in zip(rows, labels, strict=True) if lab == c] for c in range(k)]
    )
    clusters = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if not len(idx):
            continue
        members = [rows[i] for i in idx]
        closeness = vecs[idx] @ centres[c]
        typical = [rows[idx[j]].question for j in np.argsort(-closeness)[:3]]
        rated = [m for m in members if m.rated]
        bad = sum(1 for m in members if not m.good) / len(members)
        clusters.append(
            Cluster(
                id=c,
                size=len(members),
                typical=typical,
                terms=terms[c],
                weekly=dict(sorted(Counter(_week(m.created_at) for m in members).items())),
                answer_rate=sum(m.answered for m in members) / len(members),
                avg_rating=(sum(m.rating for m in rated) / len(rated)) if rated else None,
                rated=len(rated),
                cache_hit_rate=sum(m.cache_hit for m in members) / len(members),
                gap_score=bad,
                gap=bad >= GAP_SHARE,
                question_ids=[m.id for m in members],
            )
        )
    clusters.sort(key=lambda cl: (not cl.gap, -cl.gap_score if cl.gap else 0, -cl.size))
    return clusters


def _week(ts: float) -> str:
    y, w, _ = datetime.fromtimestamp(ts, tz=UTC).isocalendar()
    return f"{y}-W{w:02d}"


def _distinctive_terms(groups: list[list[str]], top: int = 5) -> list[list[str]]:
    """Class-based TF-IDF: each group's questions as one document; its highest-weighted words and word pairs."""
    docs = [" ".join(g) for g in groups]
    if not any(d.strip() for d in docs):
        return [[] for _ in groups]
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        tfidf = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        m = tfidf.fit_transform(docs)
    except ValueError:  # only stop words
        return [[] for _ in groups]
    vocab = np.array(tfidf.get_feature_names_out())
    out = []
    for i in range(len(docs)):
        row = m.getrow(i).toarray().ravel()
        order = [j for j in np.argsort(-row) if row[j] > 0]
        picked: list[str] = []
        for j in order:
            term = vocab[j]
            if any(term in p or p in term for p in picked):  # "task" after "mapped task": say it once
                continue
            picked.append(term)
            if len(picked) == top:
                break
        out.append(picked)
    return out


@dataclass
class SourceScore:
    source: str
    accuracy: float  # posterior mean of Beta(prior + good, prior + bad)
    good: float
    bad: float
    answers: int  # answers that cited it

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "accuracy": round(self.accuracy, 3),
            "good": self.good,
            "bad": self.bad,
            "answers": self.answers,
        }


def rank_sources(rows: list[LoggedQuestion], prior: tuple[float, float] = PRIOR) -> list[SourceScore]:
    """Every cited source with evidence, best first. Evidence per answer that cited it: each vote up is good, each
    down bad; a judge review counts once (helpfulness >= 0.5 good, else bad). Answers with no vote and no review
    count in ``answers`` only."""
    good: dict[str, float] = defaultdict(float)
    bad: dict[str, float] = defaultdict(float)
    cited: Counter = Counter()
    for r in rows:
        up = max(r.rating, 0) if r.rated else 0
        down = max(-r.rating, 0) if r.rated else 0
        judge_good = r.helpfulness is not None and r.helpfulness >= 0.5
        judge_bad = r.helpfulness is not None and r.helpfulness < 0.5
        for s in dict.fromkeys(r.sources):
            cited[s] += 1
            good[s] += up + judge_good
            bad[s] += down + judge_bad
    a, b = prior
    scores = [
        SourceScore(s, (good[s] + a) / (good[s] + bad[s] + a + b), good[s], bad[s], cited[s])
        for s in cited
        if good[s] + bad[s] > 0
    ]
    scores.sort(key=lambda x: (-x.accuracy, -(x.good + x.bad), x.source))
    return scores
