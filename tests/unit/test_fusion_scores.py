"""Score-level fusion: normalisation and the convex combination, hand-computed."""

from __future__ import annotations

import pytest

from llmops_cli.core.retrieval.fusion import convex_fusion, normalise


def test_minmax_and_zscore_normalise_by_hand():
    assert normalise([3.0, 2.0, 1.0]) == [1.0, 0.5, 0.0]
    assert normalise([0.7, 0.7]) == [1.0, 1.0]  # all equal: none is worse than another
    assert normalise([3.0, 1.0], "zscore") == [1.0, -1.0]  # mean 2, sd 1
    assert normalise([5.0], "zscore") == [0.0]
    assert normalise([]) == []
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise([1.0], "rank")  # type: ignore[arg-type]


def test_convex_fusion_weighs_normalised_scores_and_floors_missing_documents():
    vector = [("a", 0.9), ("b", 0.7), ("c", 0.5)]  # min-max: a 1, b 0.5, c 0
    lexical = [("c", 12.0), ("d", 8.0), ("a", 4.0)]  # min-max: c 1, d 0.5, a 0
    fused = dict(convex_fusion([vector, lexical], [0.6, 0.4]))
    # a: 0.6 * 1 + 0.4 * 0; b: 0.6 * 0.5 + 0.4 * 0 (absent: the list's floor); c: 0.6 * 0 + 0.4 * 1; d: 0 + 0.4 * 0.5
    assert fused == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.4, "d": 0.2})
    assert [d for d, _ in convex_fusion([vector, lexical], [0.6, 0.4])] == ["a", "c", "b", "d"]


def test_convex_fusion_zscore_floor_is_the_lists_lowest_and_ties_keep_first_seen_order():
    # z-scores: x 1, y -1 in the first list; y 1, z -1 in the second; x absent from the second gets -1
    fused = convex_fusion([[("x", 3.0), ("y", 1.0)], [("y", 5.0), ("z", 3.0)]], [0.5, 0.5], norm="zscore")
    assert fused == [("x", 0.0), ("y", 0.0), ("z", -1.0)]
    with pytest.raises(ValueError, match="2 weights for 1 lists"):
        convex_fusion([[("x", 1.0)]], [0.5, 0.5])


def test_retriever_fuses_the_lists_own_scores_when_asked():
    from llmops_cli.core.retrieval import Retriever
    from tests.unit.test_retrieval_core import FakeLexical, _store

    store, emb = _store()
    lex = FakeLexical([("x4", 9.0), ("x3", 5.0)])
    r = Retriever(store, emb, "c", lexical=lex, candidates=4, fusion="zscore", vector_weight=0.5, per_source=None)
    vec = r.vector_hits("retry failed task", 4)
    expected = convex_fusion([[(h.id, h.score) for h in vec], [("x4", 9.0), ("x3", 5.0)]], [0.5, 0.5], "zscore")
    hyb = r.search("retry failed task", 4)
    assert [(h.id, h.score) for h in hyb] == [(d, pytest.approx(s)) for d, s in expected]
    assert hyb[0].ranks  # each hit still carries its place in each list
    with pytest.raises(ValueError, match="unknown fusion"):
        Retriever(store, emb, "c", lexical=lex, fusion="max")
    with pytest.raises(ValueError, match="vector_weight"):
        Retriever(store, emb, "c", lexical=lex, fusion="minmax", vector_weight=1.5)
