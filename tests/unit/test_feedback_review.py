"""The LLM review: verdict parsing (pydantic), errors stored instead of crashing, redaction before the judge sees
text."""

from __future__ import annotations

import json

import pytest

from llmops_cli.core.feedback import AnswerLog
from llmops_cli.core.feedback.review import ReviewParseError, build_messages, parse_verdict, review_answers
from llmops_cli.core.ports import LLM, Completion, LLMCallError

GOOD = {
    "helpfulness": {"score": 4, "reason": "clear"},
    "relevance": {"score": 5, "reason": "on topic"},
    "publicness": {"public": True, "reason": "fine"},
}


def test_parse_verdict_accepts_bare_fenced_and_embedded_json():
    for text in (
        json.dumps(GOOD),
        f"```json\n{json.dumps(GOOD)}\n```",
        f"Here you go: {json.dumps(GOOD)} Hope it helps.",
    ):
        v = parse_verdict(text)
        assert (v.helpfulness.score, v.relevance.score, v.publicness.public) == (4, 5, True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("Looks fine to me.", "not JSON"),
        (json.dumps({**GOOD, "helpfulness": {"score": 9}}), "helpfulness.score"),
        (json.dumps({"helpfulness": {"score": 3}, "relevance": {"score": 3}}), "publicness"),
        ("[1, 2, 3]", "review schema"),
    ],
)
def test_parse_verdict_rejects_what_does_not_fit(text, message):
    with pytest.raises(ReviewParseError, match=message):
        parse_verdict(text)


class JudgeByContent(LLM):
    """Replies by what the answer under review says (thread-safe: review runs calls concurrently)."""

    model = "fake/judge"

    def __init__(self):
        self.seen: list[str] = []

    def complete(self, messages, **params) -> Completion:
        user = messages[-1]["content"]
        self.seen.append(user)
        assert params.get("response_format") == {"type": "json_object"}
        if "BROKEN" in user:
            return Completion(text="I think it is good", model=self.model)
        if "TIMEOUT" in user:
            raise LLMCallError("judge timed out", retryable=True)
        return Completion(text=json.dumps(GOOD), model=self.model)


def test_review_stores_scores_errors_and_leaves_failed_calls_unreviewed(tmp_path):
    with AnswerLog(tmp_path / "l.sqlite") as log:
        ok = log.record(kind="ask", question="q1", answer="fine answer", collection="docs")
        broken = log.record(kind="ask", question="q2", answer="BROKEN", collection="docs")
        failed = log.record(kind="ask", question="q3", answer="TIMEOUT", collection="docs")
        log.record(kind="batch", question="p", answer="r")  # not an answer from a collection: never reviewed
        todo = log.to_review(limit=10)
        assert [a.id for a in todo] == [ok, broken, failed]

        seen: list[tuple[int, int]] = []
        report = review_answers(log, JudgeByContent(), todo, concurrency=3, progress=lambda d, t: seen.append((d, t)))
        assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]  # a count per verdict, failed calls included
        assert report.reviewed == [ok]
        assert [e["id"] for e in report.errors] == [broken] and "not JSON" in report.errors[0]["error"]
        assert [f["id"] for f in report.failed] == [failed]

        r = log.review_of(ok)
        assert (r.status, r.helpfulness, r.relevance, r.public, r.judge_model) == ("ok", 0.75, 1.0, True, "fake/judge")
        assert r.reasons == {"helpfulness": "clear", "relevance": "on topic", "public": "fine"}
        assert log.review_of(broken).status == "error"
        assert log.review_of(failed) is None
        # next run: only the failed call is picked again; errors only when asked
        assert [a.id for a in log.to_review(limit=10)] == [failed]
        assert {a.id for a in log.to_review(limit=10, retry_errors=True)} == {broken, failed}


def test_the_judge_sees_redacted_text_and_the_collection_sources(tmp_path):
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUV123"
    with AnswerLog(tmp_path / "l.sqlite") as log:
        a = log.get(
            log.record(
                kind="ask",
                question="mail bob@example.com?",
                answer=f"use {key} [1]",
                collection="docs",
                chunks=[{"id": "c1", "source": "guide.md", "heading": "Keys"}],
            )
        )
        judge = JudgeByContent()
        review_answers(log, judge, [a], context=lambda rec: [f"context with {key}"])
        sent = judge.seen[0]
        assert key not in sent and "bob@example.com" not in sent
        assert "[REDACTED_API_KEY]" in sent and "[REDACTED_EMAIL]" in sent
        assert "guide.md (Keys)" in sent and '"docs"' in sent
        assert log.review_of(a.id).redactions == ["API_KEY", "EMAIL"]


def test_build_messages_caps_the_context():
    from llmops_cli.core.feedback.log import AnswerRecord
    from llmops_cli.core.feedback.review import MAX_CONTEXT_CHARS

    a = AnswerRecord(id="x", created_at=0, kind="ask", question="q", answer="a", collection="docs")
    user = build_messages(a, ["x" * 5000, "y" * 5000])[1]["content"]
    assert user.count("x") + user.count("y") <= MAX_CONTEXT_CHARS + 50


class RejectingJudge(LLM):
    """Every call is refused as a bad key would be; the first few are slow so that others queue behind them."""

    model = "fake/judge"

    def __init__(self):
        self.calls = 0

    def complete(self, messages, **params) -> Completion:
        import time

        from llmops_cli.core.ports import LLMAuthError

        self.calls += 1
        time.sleep(0.05)
        raise LLMAuthError("the LLM rejected the API key (401)", status=401)


def test_a_rejected_key_stops_the_review_instead_of_failing_every_answer(tmp_path):
    from llmops_cli.errors import AuthError

    with AnswerLog(tmp_path / "l.sqlite") as log:
        for i in range(20):
            log.record(kind="ask", question=f"q{i}", answer=f"answer {i}", collection="docs")
        judge = RejectingJudge()
        with pytest.raises(AuthError):
            review_answers(log, judge, log.to_review(limit=50), concurrency=2)
        assert judge.calls <= 4  # the queued answers were not sent
        assert len(log.to_review(limit=50)) == 20  # and none was marked reviewed or failed
