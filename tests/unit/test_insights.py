"""core.insights on planted data: groups found from vectors, gaps first, terms and trend; sources ranked with a prior
that keeps one vote from being a verdict; spans for --since."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_cli.core.insights import LoggedQuestion, answered, cluster_questions, rank_sources
from llmops_cli.entry.insights import parse_since
from llmops_cli.errors import UsageError

DAY = 86400.0


def _rows_and_vectors():
    rng = np.random.default_rng(7)
    centres = np.eye(3, 16)
    topics = [
        ("pool", ["how many slots does a pool have", "limit tasks with a pool", "pool slots for one dag"]),
        ("cron", ["cron schedule for a dag", "run a dag every hour with cron", "cron timetable syntax"]),
        ("k8s", ["kubernetes pod template", "kubernetes executor resources", "pod override in kubernetes"]),
    ]
    rows, vecs = [], []
    for t, (name, questions) in enumerate(topics):
        for i in range(8):
            q = questions[i % 3] + f" ({i})"
            gap = name == "k8s"
            rows.append(
                LoggedQuestion(
                    id=f"{name}-{i}",
                    question=q,
                    created_at=1_700_000_000 + (i % 2) * 7 * DAY,
                    answered=not gap or i == 0,
                    rating=-1 if gap and i < 3 else (1 if i < 2 else 0),
                    rated=i < 3,
                    cache_hit=name == "pool" and i < 4,
                )
            )
            vecs.append(centres[t] + 0.05 * rng.standard_normal(16))
    return rows, np.array(vecs)


def test_groups_are_found_gaps_first_with_their_terms_trend_and_rates():
    rows, vecs = _rows_and_vectors()
    clusters = cluster_questions(rows, vecs)  # k chosen by silhouette
    assert len(clusters) == 3
    first = clusters[0]
    assert first.gap and all(i.startswith("k8s-") for i in first.question_ids)
    assert "kubernetes" in " ".join(first.terms)
    assert first.answer_rate == pytest.approx(1 / 8) and first.avg_rating == pytest.approx(-1.0)
    by_topic = {c.question_ids[0].split("-")[0]: c for c in clusters}
    assert by_topic["pool"].cache_hit_rate == pytest.approx(0.5) and not by_topic["pool"].gap
    assert sorted(by_topic["cron"].question_ids) == sorted(f"cron-{i}" for i in range(8))
    assert list(by_topic["cron"].weekly.values()) == [4, 4]  # two ISO weeks, four questions each
    assert by_topic["cron"].typical[0].startswith(("cron", "run a dag"))
    # asked for: that many groups
    assert len(cluster_questions(rows, vecs, 2)) == 2


def test_a_handful_of_questions_is_one_group_and_none_is_none():
    rows, vecs = _rows_and_vectors()
    assert len(cluster_questions(rows[:4], vecs[:4])) == 1
    assert cluster_questions([], np.zeros((0, 16))) == []


def test_sources_ranked_by_votes_and_reviews_with_a_prior():
    rows = [
        LoggedQuestion("a", "q", 0, True, rating=1, rated=True, sources=["good.md", "mixed.md"]),
        LoggedQuestion("b", "q", 0, True, rating=1, rated=True, sources=["good.md"]),
        LoggedQuestion("c", "q", 0, True, helpfulness=0.9, sources=["good.md", "good.md"]),
        LoggedQuestion("d", "q", 0, True, rating=-1, rated=True, sources=["bad.md", "mixed.md"]),
        LoggedQuestion("e", "q", 0, False, helpfulness=0.1, sources=["bad.md"]),
        LoggedQuestion("f", "q", 0, True, rating=-1, rated=True, sources=["once.md"]),
        LoggedQuestion("g", "q", 0, True, sources=["unrated.md"]),
    ]
    ranked = {s.source: s for s in rank_sources(rows)}
    order = [s.source for s in rank_sources(rows)]
    assert order[0] == "good.md" and order[-1] == "bad.md"
    assert ranked["good.md"].good == 3 and ranked["good.md"].answers == 3  # cited twice in one answer: once
    assert ranked["good.md"].accuracy == pytest.approx((3 + 2) / (3 + 4))
    assert ranked["once.md"].accuracy == pytest.approx(2 / 5)  # one down vote: 0.4, not 0
    assert "unrated.md" not in ranked  # no evidence, no score


def test_answered_and_since():
    assert answered("Pools limit concurrency.")
    assert not answered("I don't know: the context does not mention Kubernetes.")
    assert not answered("   ")
    now = 1_000_000.0
    assert parse_since("7d", now) == now - 7 * DAY and parse_since("12h", now) == now - 12 * 3600
    assert parse_since("2026-11-01", now) > 1.7e9
    assert parse_since(None) is None
    with pytest.raises(UsageError, match="--since"):
        parse_since("last tuesday")
