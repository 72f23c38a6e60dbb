"""Metric functions against values computed by hand (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from llmops_cli.core.eval.answer_metrics import exact_match, normalize_answer, semantic_similarities, token_f1
from llmops_cli.core.eval.retrieval_metrics import (
    hit_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    retrieval_scores,
)

RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "e", "x"}


def test_retrieval_metrics_hand_computed_k5():
    assert hit_at_k(RANKED, RELEVANT, 5) == 1.0
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)  # b and e of {b, e, x}
    assert precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.4)  # 2 of 5 positions
    assert reciprocal_rank(RANKED, RELEVANT, 5) == pytest.approx(0.5)  # first relevant at rank 2
    # DCG = 1/log2(3) + 1/log2(6) = 0.630930 + 0.386853 = 1.017783
    # IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.630930 + 0.5 = 2.130930
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(1.017783 / 2.130930, abs=1e-6)


def test_retrieval_metrics_cut_at_k():
    assert hit_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert precision_at_k(RANKED, RELEVANT, 1) == 0.0
    assert reciprocal_rank(RANKED, RELEVANT, 1) == 0.0
    assert ndcg_at_k(RANKED, RELEVANT, 1) == 0.0
    # k=2: b at rank 2 -> DCG = 1/log2(3); IDCG (2 relevant fit) = 1 + 1/log2(3)
    assert ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert precision_at_k(RANKED, RELEVANT, 2) == 0.5


def test_source_level_duplicates_count_once_in_ndcg_and_recall():
    ranked = ["s1", "s1", "s2"]
    assert recall_at_k(ranked, {"s1"}, 3) == 1.0
    assert precision_at_k(ranked, {"s1"}, 3) == pytest.approx(2 / 3)  # two of three chunks from s1
    assert ndcg_at_k(ranked, {"s1"}, 3) == 1.0  # the second s1 chunk adds no gain: DCG = IDCG = 1
    assert reciprocal_rank(ranked, {"s2"}, 3) == pytest.approx(1 / 3)


def test_fewer_hits_than_k_are_misses_for_precision():
    assert precision_at_k(["a"], {"a"}, 5) == pytest.approx(0.2)


def test_retrieval_scores_keys_and_empty_relevant():
    s = retrieval_scores(RANKED, RELEVANT, 5, prefix="chunk_")
    assert set(s) == {"chunk_hit@5", "chunk_recall@5", "chunk_precision@5", "chunk_mrr", "chunk_ndcg@5"}
    assert retrieval_scores(RANKED, [], 5) == {}


def test_squad_normalisation():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theory") == "theory"  # articles only as whole words


def test_exact_match_and_token_f1_hand_computed():
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("a cat", "cats") == 0.0
    # "cat sat on mat" vs "cat sat on hat": 3 common, P = R = 3/4 -> F1 = 0.75
    assert token_f1("The cat sat on the mat", "a cat sat on a hat") == pytest.approx(0.75)
    # multiset overlap: x x y vs x y y -> common = 1 x + 1 y = 2; P = R = 2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    # 1 common of answer 1 token and reference 4 tokens: P = 1, R = 1/4 -> F1 = 2*0.25/1.25 = 0.4
    assert token_f1("airflow", "airflow is a scheduler tool") == pytest.approx(2 * 1 * 0.25 / 1.25)
    assert token_f1("", "") == 1.0
    assert token_f1("the", "something") == 0.0  # normalises to nothing vs something
    assert token_f1("no overlap", "different words") == 0.0


class VectorTable:
    """A fake embedder: fixed vectors per text."""

    def __init__(self, table):
        self.table = table

    def embed(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_semantic_similarity_is_cosine():
    emb = VectorTable({"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [2.0, 0.0], "d": [-1.0, 0.0]})
    sims = semantic_similarities(emb, ["a", "c", "a"], ["b", "a", "d"])
    assert sims == pytest.approx([0.6, 1.0, -1.0])  # unnormalised "c" is normalised first
    assert semantic_similarities(emb, [], []) == []
