"""The statistics model selection rests on, in plain Python (no numpy/scipy import: `llmops eval runs` stays light).

- ``mean_ci``: a mean and its 95% confidence interval (Student's t over the questions);
- ``percentile``: linear interpolation between closest ranks (numpy's default);
- ``sign_test``: the exact two-sided sign test on paired deltas (is one run better on more questions than chance?);
- ``cohen_kappa`` (unweighted, linear or quadratic weights), ``spearman`` and ``confusion``: agreement between two
  raters (the LLM judge and people) on the same items;
- ``pareto_front``: the configurations no other one beats on quality and cost at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Student's t 0.975 quantiles for 1..30 degrees of freedom; beyond that the normal 1.96 is within 2%
_T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def t975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def mean_ci(values: Sequence[float], lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """``{mean, low, high, n}``: the 95% interval mean +- t(n-1) * sd / sqrt(n), clipped to the metric's range
    [lo, hi] when given; one value has no interval (low = high = None)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if lo is not None:
        low = max(lo, low)
    if hi is not None:
        high = min(hi, high)
    return {"mean": mean, "low": low, "high": high, "n": n}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    below = math.floor(pos)
    above = min(below + 1, len(s) - 1)
    return s[below] + (s[above] - s[below]) * (pos - below)


def sign_test(deltas: Sequence[float], eps: float = 1e-12) -> dict[str, Any]:
    """The exact two-sided sign test on paired deltas (new - base): ties (|delta| <= eps) are dropped; the p-value
    is the probability, with no real difference, of a split at least this uneven between ups and downs."""
    up = sum(1 for d in deltas if d > eps)
    down = sum(1 for d in deltas if d < -eps)
    n = up + down
    if n == 0:
        return {"up": 0, "down": 0, "ties": len(deltas), "p_value": 1.0}
    k = min(up, down)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"up": up, "down": down, "ties": len(deltas) - n, "p_value": min(1.0, 2 * tail)}


def cohen_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int], weights: str = "none") -> float | None:
    """Cohen's kappa of two raters over the same items: 1 - observed disagreement / disagreement expected by chance
    (from each rater's own marginals). ``weights``: ``none`` (every disagreement counts 1), ``linear`` (|i - j| /
    (K - 1)) or ``quadratic`` ((i - j)^2 / (K - 1)^2: a 5 against a 4 costs little, against a 1 a lot). None when
    undefined (no items, or both raters always gave the same one category)."""
    if len(a) != len(b):
        raise ValueError("kappa needs the two raters' ratings of the same items")
    cats = list(categories)
    index = {c: i for i, c in enumerate(cats)}
    size, n = len(cats), len(a)
    if n == 0 or size < 2:
        return None

    def w(i: int, j: int) -> float:
        if weights == "none":
            return 0.0 if i == j else 1.0
        d = abs(i - j) / (size - 1)
        return d if weights == "linear" else d * d

    obs = [[0.0] * size for _ in range(size)]
    for x, y in zip(a, b, strict=True):
        obs[index[x]][index[y]] += 1
    row = [sum(obs[i]) for i in range(size)]
    col = [sum(obs[i][j] for i in range(size)) for j in range(size)]
    observed = sum(w(i, j) * obs[i][j] for i in range(size) for j in range(size)) / n
    expected = sum(w(i, j) * row[i] * col[j] for i in range(size) for j in range(size)) / (n * n)
    if expected == 0:
        return None
    return 1 - observed / expected


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1  # ties share their average rank
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged); None when either side is
    constant or there are fewer than 2 items."""
    if len(a) != len(b) or len(a) < 2:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return None
    return cov / math.sqrt(va * vb)


def confusion(a: Sequence[int], b: Sequence[int], categories: Sequence[int]) -> list[list[int]]:
    """``table[i][j]``: items rater a put in categories[i] and rater b in categories[j]."""
    index = {c: i for i, c in enumerate(categories)}
    table = [[0] * len(categories) for _ in categories]
    for x, y in zip(a, b, strict=True):
        table[index[x]][index[y]] += 1
    return table


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points (quality, cost) that no other point dominates (quality >= and cost <=, one strictly):
    higher quality is better, lower cost is better."""
    front = []
    for i, (q, c) in enumerate(points):
        dominated = any((q2 >= q and c2 <= c) and (q2 > q or c2 < c) for j, (q2, c2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front
