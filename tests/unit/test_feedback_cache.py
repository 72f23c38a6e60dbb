"""The semantic cache's second check: a near-identical embedding is not enough, the content words must match too."""

from __future__ import annotations

import pytest

from llmops_cli.core.feedback import AnswerLog
from llmops_cli.core.feedback.cache import content_words, find_cached, lexical_conflict, unit_vector
from llmops_cli.core.feedback.log import Promotion
from tests.support.fakes import FakeEmbedder

PROMOTED = "How do I get the value of an Airflow Variable in a task?"


@pytest.mark.parametrize(
    "question, conflict",
    [
        ("How do I NOT get the value of an Airflow Variable in a task?", ["not"]),
        ("How do I set the value of an Airflow Variable in a task?", ["get", "set"]),
        ("How do I get the value of an Airflow Connection in a task?", ["connection", "variable"]),
        ("How do I get the value of an Airflow Variable outside a task?", ["outside"]),
        ("Why can't I get the value of an Airflow Variable in a task?", ["how", "not", "why"]),
        ("How do I get the value of an Airflow Variable in Airflow 2?", ["2", "task"]),
    ],
)
def test_a_negation_or_another_verb_entity_or_version_is_a_conflict(question, conflict):
    assert lexical_conflict(question, PROMOTED) == conflict


@pytest.mark.parametrize(
    "question",
    [
        "how do i get the value of an airflow variable in a task",
        "How can I get the values of Airflow Variables inside a task?",
        "In a task, how do I get the value of an Airflow Variable?",
        "How do I get the value of an Airflow Varaible in a task?",  # a typo of a long word
    ],
)
def test_rewordings_with_the_same_content_words_do_not_conflict(question):
    assert lexical_conflict(question, PROMOTED) == []


def test_contractions_and_possessives_are_normalised():
    assert content_words("Why doesn't my DAG show up? What's Airflow's status; it cannot run") == {
        "why",
        "not",
        "dag",
        "show",
        "up",
        "what",
        "airflow",
        "status",
        "run",
    }
    assert lexical_conflict("Why doesn't my DAG show up in the UI?", "Why does my DAG not show up in the UI?") == []
    assert lexical_conflict("How do I enable it?", "How do I unable it?") == [
        "enable",
        "unable",
    ]  # not a typo: first letter


def _promote(log: AnswerLog, emb: FakeEmbedder, question: str) -> str:
    aid = log.record(kind="ask", question=question, answer=f"answer to {question}", collection="docs")
    log.save_promotion(
        Promotion(
            answer_id=aid,
            collection="docs",
            chunk_id=f"answer-{aid}",
            question=question,
            answer_text=f"answer to {question}",
            question_vector=unit_vector(emb.embed_query(question)).tobytes(),
            embedder=emb.identity,
            promoted_at=0.0,
        )
    )
    return aid


def test_find_cached_blocks_near_misses_that_the_threshold_lets_through(tmp_path):
    emb = FakeEmbedder()
    with AnswerLog(tmp_path / "l.sqlite") as log:
        aid = _promote(log, emb, PROMOTED)
        for near in (
            "How do I NOT get the value of an Airflow Variable in a task?",
            "How do I set the value of an Airflow Variable in a task?",
        ):
            before = find_cached(log, emb, "docs", near, 0.9, lexical_check=False)
            assert before is not None and before.answer_id == aid  # the cosine threshold alone serves it
            assert find_cached(log, emb, "docs", near, 0.9) is None
        hit = find_cached(log, emb, "docs", "how do I get the value of an Airflow Variable in a task", 0.9)
        assert hit is not None and hit.answer_id == aid


def test_the_most_similar_promotion_that_passes_is_served(tmp_path):
    emb = FakeEmbedder()
    with AnswerLog(tmp_path / "l.sqlite") as log:
        _promote(
            log, emb, "How do I NOT get the value of an Airflow Variable in a task?"
        )  # nearer by cosine, wrong answer
        right = _promote(log, emb, PROMOTED)
        hit = find_cached(log, emb, "docs", "How can I get the value of an Airflow Variable in a task?", 0.8)
        assert hit is not None and hit.answer_id == right


def test_redacted_promoted_questions_still_match_the_same_question(tmp_path):
    emb = FakeEmbedder()
    with AnswerLog(tmp_path / "l.sqlite") as log:
        aid = _promote(
            log, emb, "How do I mail [REDACTED_EMAIL] about the outage?"
        )  # stored redacted, as promotion does
        hit = find_cached(log, emb, "docs", "How do I mail ops@corp.example about the outage?", 0.5)
        assert hit is not None and hit.answer_id == aid
