"""Export of good answers as a fine-tuning dataset (OpenAI chat format: one ``{"messages": [...]}`` per line).

"Good" is the promotion rule (review passed, public, not rated down, thresholds met), and the text is the
redacted one that promotion writes: a dataset must not leak what the store may not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.core.feedback.promotion import Thresholds, decide, promoted_parts

FORMATS = ("openai-chat",)
DEFAULT_SYSTEM = "You answer questions about the documentation concisely and accurately."


def good_answers(
    log: AnswerLog, thresholds: Thresholds, *, collection: str | None = None
) -> Iterator[tuple[str, str, str]]:
    """(answer id, redacted question, redacted answer) of every answer that qualifies, oldest first."""
    ids = log.reviewed_ids()
    for a in sorted(log.get_many(ids), key=lambda a: a.created_at):
        if collection and a.collection != collection:
            continue
        d = decide(a, log.review_of(a.id), log.ratings(a.id, with_cached_copies=True), thresholds)
        if d.promote:
            q, body, _ = promoted_parts(a)
            yield a.id, q, body


def openai_chat_rows(
    log: AnswerLog, thresholds: Thresholds, *, system: str | None = DEFAULT_SYSTEM, collection: str | None = None
) -> Iterator[dict[str, Any]]:
    for _id, q, body in good_answers(log, thresholds, collection=collection):
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": q},
            {"role": "assistant", "content": body},
        ]
        yield {"messages": msgs}
