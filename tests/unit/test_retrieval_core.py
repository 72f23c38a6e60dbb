"""Reciprocal rank fusion and the retriever on fakes; rewording parsing and the ask path."""

from __future__ import annotations

import pytest

from llmops_cli.core.ask import ask, parse_rewordings
from llmops_cli.core.retrieval import Retriever, reciprocal_rank_fusion
from tests.support.fakes import FakeEmbedder, MemoryStore, ScriptedLLM


def test_rrf_hand_computed():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])] == ["b", "c", "a", "d"]


class FakeLexical:
    def __init__(self, ranked):
        self.ranked = ranked

    def search(self, text, k):
        return self.ranked[:k]


def _store():
    store, emb = MemoryStore(), FakeEmbedder()
    store.ensure_collection("c")
    texts = {
        "x1": "retry a failed task",
        "x2": "schedule a dag daily",
        "x3": "task retries and backoff",
        "x4": "sensors wait",
    }
    store.upsert(
        "c",
        list(texts),
        emb.embed(list(texts.values())),
        list(texts.values()),
        [{"source": f"{k}.md", "kind": "doc" if k != "x4" else "other"} for k in texts],
    )
    return store, emb


def test_hybrid_fuses_vector_and_lexical_and_modes_pick_one_side():
    store, emb = _store()
    lex = FakeLexical([("x4", 9.0), ("x3", 5.0)])
    r = Retriever(store, emb, "c", lexical=lex, candidates=4)
    vec = r.search("retry failed task", 4, mode="vector")
    assert vec[0].id == "x1" and vec[0].ranks == {"vector": 1}
    assert [h.id for h in r.search("retry failed task", 2, mode="lexical")] == ["x4", "x3"]
    hyb = r.search("retry failed task", 4, mode="hybrid")
    expected = [
        d for d, _ in reciprocal_rank_fusion([[h.id for h in r.vector_hits("retry failed task", 4)], ["x4", "x3"]])
    ]
    assert [h.id for h in hyb] == expected[:4]
    assert hyb[0].score == pytest.approx(dict(reciprocal_rank_fusion([[h.id for h in vec], ["x4", "x3"]]))[hyb[0].id])


def test_where_filters_both_sides():
    store, emb = _store()
    r = Retriever(store, emb, "c", lexical=FakeLexical([("x4", 9.0), ("x3", 5.0)]), candidates=4)
    hits = r.search("retry", 4, where={"kind": "doc"})
    assert hits and all(h.metadata["kind"] == "doc" for h in hits)


def test_parse_rewordings_strips_numbering_and_duplicates():
    text = (
        "Here are rewordings:\n1. How to retry tasks?\n2) how to retry tasks?\n"
        '- What is a retry policy\n\n"Configure retries"\n'
    )
    assert parse_rewordings(text, "q", 3) == ["How to retry tasks?", "What is a retry policy", "Configure retries"]


def test_ask_rewords_retrieves_with_every_wording_and_answers_with_context():
    store, emb = _store()
    llm = ScriptedLLM().enqueue("backoff for failed tasks\nsensors waiting", "Use retries [1].")
    r = Retriever(store, emb, "c", lexical=None, candidates=4)
    res = ask("how do I retry?", r, llm, k=3, rewordings=2)
    assert res.rewordings == ["backoff for failed tasks", "sensors waiting"]
    assert res.answer == "Use retries [1]." and res.cited() == [1]
    assert len(llm.history) == 2 and "[1]" in llm.history[1][1]["content"]
    # every wording produced a ranked list
    assert any(k.startswith("vector#2") for h in res.hits for k in h.ranks)
    assert res.usage.calls == 2


def test_retrieval_only_makes_no_llm_call():
    store, emb = _store()
    res = ask("retry", Retriever(store, emb, "c", lexical=None), None, k=2)
    assert res.answer == "" and res.rewordings == [] and len(res.hits) == 2


def test_weighted_rrf_scales_each_lists_terms():
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=10, weights=[2.0, 1.0]))
    assert fused["a"] == pytest.approx(2 / 11 + 1 / 12)
    assert fused["b"] == pytest.approx(2 / 12 + 1 / 11)


def _pages_store():
    """Three chunks of page a.md that all match 'pool', then one chunk each of b.md and c.md."""
    store, emb = MemoryStore(), FakeEmbedder()
    store.ensure_collection("c")
    texts = {
        "a1": "pool pool slots",
        "a2": "pool pool limit",
        "a3": "pool pool size",
        "b1": "pool of workers",
        "c1": "pool tasks queue",
    }
    store.upsert(
        "c",
        list(texts),
        emb.embed(list(texts.values())),
        list(texts.values()),
        [{"source": f"{k[0]}.md"} for k in texts],
    )
    return store, emb


def test_results_are_diversified_by_source_and_filled_when_sources_run_out():
    store, emb = _pages_store()
    lex = FakeLexical([("a1", 9.0), ("a2", 8.0), ("a3", 7.0), ("b1", 2.0), ("c1", 1.0)])
    plain = Retriever(store, emb, "c", lexical=lex, candidates=5, per_source=None)
    assert [h.metadata["source"] for h in plain.search("pool", 3, mode="lexical")] == ["a.md"] * 3
    one = Retriever(store, emb, "c", lexical=lex, candidates=5)  # the default: one chunk per source first
    # the best chunk of each source first, in fused order; then the rest, so k results still come back
    assert [h.id for h in one.search("pool", 3, mode="lexical")] == ["a1", "b1", "c1"]
    assert [h.id for h in one.search("pool", 5, mode="lexical")] == ["a1", "b1", "c1", "a2", "a3"]
    two = Retriever(store, emb, "c", lexical=lex, candidates=5, per_source=2)
    assert [h.id for h in two.search("pool", 4, mode="lexical")] == ["a1", "a2", "b1", "c1"]
    hybrid = [h.metadata["source"] for h in one.search("pool", 3)]
    assert sorted(hybrid) == ["a.md", "b.md", "c.md"]
