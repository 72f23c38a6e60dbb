"""The semantic cache with the real bundled embedding model on the planted set of benchmarks/bench_feedback.py:
near misses over the cosine threshold (a negation, another verb, entity or version) are not served the promoted
answer; rewordings still are."""

from __future__ import annotations

import os

import pytest

from benchmarks.bench_feedback import PLANTED, cache_guard

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from llmops_cli import wiring
    from llmops_cli.settings import load_settings

    tmp = tmp_path_factory.mktemp("guard")
    s = load_settings(
        None, environ={k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}, cwd=tmp
    ).settings
    emb = wiring.build_embedder(s.embedder)
    assert emb.identity == "st:all-MiniLM-L6-v2"  # the real model, not a stand-in
    return cache_guard(emb, tmp / "guard.sqlite", s.feedback.cache_threshold)


def test_the_threshold_alone_serves_near_misses(measured):
    # what issue 11 item 13 reported, still true of the embeddings: the planted set exercises the check
    served = {p["question"] for p in measured["probes"] if p["kind"] == "near_miss" and p["before"]}
    assert "How do I NOT get the value of an Airflow Variable in a task?" in served
    assert "How do I set the value of an Airflow Variable in a task?" in served
    assert measured["before"]["false_hits_per_near_miss"]["count"] >= 5


def test_near_misses_miss_and_rewordings_still_hit(measured):
    probes = measured["probes"]
    assert len(probes) == sum(len(n) + len(r) + len(s) for _, n, r, s in PLANTED)
    assert [p["question"] for p in probes if p["kind"] == "near_miss" and p["after"]] == []
    assert [p["question"] for p in probes if p["kind"] == "rewording" and p["after"] != "right"] == []
    assert measured["after"]["false_hits_per_near_miss"]["ratio"] == 0.0
    assert measured["after"]["true_hits_per_rewording"]["ratio"] == 1.0
