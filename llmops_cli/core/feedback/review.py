"""LLM review of logged answers: helpfulness, relevance to the collection, publicness.

One judge call per answer; the reply is one JSON object validated with pydantic. A reply that does not parse
marks that answer's review as an error (stored, with the reason) and the run goes on. A failed call (network,
5xx after retries) stores nothing: the answer stays unreviewed and the next run tries again.

The judge sees the question and answer REDACTED (keys, tokens, e-mails, phones replaced by placeholders): secrets
are not sent to another model, and what it judges public is the text that would be promoted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops_cli.core.feedback.log import AnswerLog, AnswerRecord, Review
from llmops_cli.core.ports import LLM
from llmops_cli.core.redaction import find_sensitive, redact
from llmops_cli.errors import AuthError, LlmopsError, UnreachableError

MAX_CONTEXT_CHARS = 4000

SYSTEM = (
    "You review answers written by a documentation assistant before they are reused for other people. "
    "Reply with exactly one JSON object and nothing else: no prose, no code fences."
)

# one prompt, cut into lines of source (implicit concatenation): the text sent is unchanged
TASK = (
    'Review the ANSWER to the QUESTION, asked of the documentation collection "{collection}".\n'
    "- helpfulness: would the answer help the person asking? 5 = complete and actionable, 1 = useless, "
    'wrong, or "I do not know".\n'
    "- relevance: are the question and the answer on topic for this collection (its sources are listed "
    "below)? 5 = squarely on topic, 1 = unrelated to it.\n"
    "- publicness: is the answer safe to show to anyone? It must contain no secrets (keys, passwords, "
    "tokens), no personal data about individuals, nothing confidential. Placeholders such as "
    "[REDACTED_EMAIL] are safe.\n"
    'Reply as JSON: {{"helpfulness": {{"score": 1-5, "reason": "<short>"}}, "relevance": {{"score": 1-5, '
    '"reason": "<short>"}}, "publicness": {{"public": true|false, "reason": "<short>"}}}}\n'
    "\n"
    "COLLECTION SOURCES:\n"
    "{sources}\n"
    "\n"
    "CONTEXT (the passages the answer was written from):\n"
    "{context}\n"
    "\n"
    "QUESTION:\n"
    "{question}\n"
    "\n"
    "ANSWER:\n"
    "{answer}"
)


class ReviewParseError(LlmopsError):
    """The judge's reply could not be parsed into a review verdict."""


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ScoreVerdict(_Verdict):
    score: int = Field(ge=1, le=5)
    reason: str = ""


class PublicVerdict(_Verdict):
    public: bool
    reason: str = ""


class ReviewVerdict(_Verdict):
    helpfulness: ScoreVerdict
    relevance: ScoreVerdict
    publicness: PublicVerdict


def build_messages(a: AnswerRecord, context: Sequence[str] = ()) -> list[dict[str, str]]:
    sources = sorted({f"{c.get('source', '')}" + (f" ({c['heading']})" if c.get("heading") else "") for c in a.chunks})
    ctx, used = [], 0
    for i, text in enumerate(context, 1):
        piece = redact(text)[: max(0, MAX_CONTEXT_CHARS - used)]
        if not piece:
            break
        ctx.append(f"[{i}] {piece}")
        used += len(piece)
    user = TASK.format(
        collection=a.collection or "?",
        sources="\n".join(f"- {s}" for s in sources) or "(none retrieved)",
        context="\n\n".join(ctx) or "(not available)",
        question=redact(a.question),
        answer=redact(a.answer),
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_verdict(text: str) -> ReviewVerdict:
    """The verdict in the judge's reply (a bare JSON object, fenced, or embedded in prose); ReviewParseError
    otherwise."""
    s = _FENCE.sub("", text.strip()).strip()
    data: Any = None
    for candidate in (s, s[s.find("{") : s.rfind("}") + 1] if "{" in s else ""):
        try:
            data = json.loads(candidate)
            break
        except json.JSONDecodeError:
            continue
    if data is None:
        raise ReviewParseError(f"judge reply is not JSON: {text.strip()[:80]!r}")
    try:
        return ReviewVerdict.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        raise ReviewParseError(f"judge reply does not match the review schema: {loc}: {err['msg']}") from None


def to_review(answer_id: str, v: ReviewVerdict, *, judge_model: str, redactions: list[str]) -> Review:
    """Scores 1-5 mapped to 0-1 ((s - 1) / 4), like the eval judge."""
    return Review(
        answer_id=answer_id,
        status="ok",
        helpfulness=(v.helpfulness.score - 1) / 4,
        relevance=(v.relevance.score - 1) / 4,
        public=v.publicness.public,
        judge_model=judge_model,
        redactions=redactions,
        reviewed_at=time.time(),
        reasons={"helpfulness": v.helpfulness.reason, "relevance": v.relevance.reason, "public": v.publicness.reason},
    )


@dataclass
class ReviewReport:
    reviewed: list[str] = field(default_factory=list)  # ok reviews
    errors: list[dict[str, str]] = field(
        default_factory=list
    )  # {id, error}: unparseable verdicts (stored as review errors)
    failed: list[dict[str, str]] = field(default_factory=list)  # {id, error}: calls that failed (left unreviewed)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reviewed": len(self.reviewed), "errors": self.errors, "failed": self.failed, "answers": self.rows}


ContextFn = Callable[[AnswerRecord], list[str]]


def review_answers(
    log: AnswerLog,
    llm: LLM,
    answers: Sequence[AnswerRecord],
    *,
    context: ContextFn | None = None,
    concurrency: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> ReviewReport:
    """Judge ``answers`` (``concurrency`` calls at a time); store each review as it completes. ``progress(done,
    total)`` after each verdict."""
    report = ReviewReport()

    def judge(a: AnswerRecord) -> tuple[AnswerRecord, Review | None, str | None]:
        redactions = sorted(set(find_sensitive(a.answer)) | set(find_sensitive(a.question)))
        try:
            msgs = build_messages(a, context(a) if context else [])
            c = llm.complete(msgs, temperature=0.0, response_format={"type": "json_object"})
        except (AuthError, UnreachableError):
            raise  # the same for every answer: stop the review (exit 8 / 7) instead of failing each one
        except LlmopsError as e:
            return a, None, e.message
        try:
            return (
                a,
                to_review(a.id, parse_verdict(c.text), judge_model=c.model or llm.model, redactions=redactions),
                None,
            )
        except ReviewParseError as e:
            return (
                a,
                Review(
                    answer_id=a.id,
                    status="error",
                    error=e.message,
                    judge_model=llm.model,
                    redactions=redactions,
                    reviewed_at=time.time(),
                ),
                None,
            )

    from concurrent.futures import as_completed

    results: list[tuple[AnswerRecord, Review | None, str | None] | None] = [None] * len(answers)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="review") as pool:
        futures = {pool.submit(judge, a): i for i, a in enumerate(answers)}
        try:
            for f in as_completed(futures):
                a, review, call_error = f.result()  # a stop error (rejected key, no connection) raises here
                if review is not None:
                    log.save_review(review)  # stored as it completes: a stopped review keeps what it judged
                results[futures[f]] = (a, review, call_error)
                if progress:
                    progress(sum(r is not None for r in results), len(answers))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # queued answers are not sent after a stop error
            raise
    for a, review, call_error in (r for r in results if r is not None):
        if review is None:
            report.failed.append({"id": a.id, "error": call_error or "call failed"})
            continue
        if review.status == "ok":
            report.reviewed.append(a.id)
        else:
            report.errors.append({"id": a.id, "error": review.error or ""})
        report.rows.append({"id": a.id, "question": a.question, **review.to_dict()})
    return report
