"""Writing answers and LLM calls into the answer log.

- ``record_ask``: one ``ask`` result (question, rewordings, retrieved chunks, answer, usage, latency);
- ``record_llm_call``: any other LLM call (eval, batch), recorded the same way with its ``kind``;
- ``RecordingLLM``: wraps an ``LLM`` so that every call through it is recorded (one line for callers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.core.ports import LLM, Completion, Message


def _log(target: AnswerLog | str | Path) -> tuple[AnswerLog, bool]:
    """An open log, and whether we opened it (then we close it). A folder means <data_dir>/llmops.sqlite."""
    if isinstance(target, AnswerLog):
        return target, False
    p = Path(target)
    return (AnswerLog(p) if p.suffix in (".sqlite", ".db") else AnswerLog.for_data_dir(p)), True


def chunk_refs(hits: Any) -> list[dict[str, Any]]:
    return [{"id": h.id, "source": h.source, "heading": h.heading} for h in hits]


def record_ask(
    log: AnswerLog,
    result: Any,
    *,
    collection: str,
    config_hash: str | None = None,
    cached_from: str | None = None,
    extra: dict[str, Any] | None = None,
    kind: str = "ask",
) -> str:
    """Record an ``AskResult`` (a chat turn with ``kind="chat"``); returns the answer id."""
    u = result.usage
    return log.record(
        kind=kind,
        question=result.question,
        answer=result.answer,
        model=result.model,
        collection=collection,
        rewordings=result.rewordings,
        chunks=chunk_refs(result.hits),
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cost=u.cost,
        latency_s=result.latency_s,
        config_hash=config_hash,
        cached_from=cached_from,
        extra={"llm_calls": u.calls, **(extra or {})},
    )


def record_llm_call(
    target: AnswerLog | str | Path,
    *,
    kind: str,
    prompt: str,
    response: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost: float | None = None,
    latency_s: float = 0.0,
    collection: str | None = None,
    config_hash: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Record one LLM call of eval, batch or anything else (``kind``); returns its id in the answer log.

    ``target`` is an open ``AnswerLog``, the data dir (``settings.data_path``) or the log file itself.
    """
    log, opened = _log(target)
    try:
        return log.record(
            kind=kind,
            question=prompt,
            answer=response,
            model=model,
            collection=collection,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            latency_s=latency_s,
            config_hash=config_hash,
            extra=extra,
        )
    finally:
        if opened:
            log.close()


def _prompt_of(messages: list[Message]) -> tuple[str, str | None]:
    """(last user message, system message) of a chat."""
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), None)
    return str(user), system


class RecordingLLM(LLM):
    """An ``LLM`` that records every completed call in the answer log (failures are not answers: not recorded)."""

    def __init__(
        self, inner: LLM, log: AnswerLog, *, kind: str, collection: str | None = None, config_hash: str | None = None
    ):
        self.inner = inner
        self.model = inner.model
        self.log = log
        self.kind = kind
        self.collection = collection
        self.config_hash = config_hash
        self.recorded: list[str] = []

    def __getattr__(self, name: str) -> Any:
        # transparent for what callers look up on the adapter they wrapped (prepare, aclose, last, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _record(self, messages: list[Message], c: Completion, seconds: float) -> None:
        prompt, system = _prompt_of(messages)
        self.recorded.append(
            record_llm_call(
                self.log,
                kind=self.kind,
                prompt=prompt,
                response=c.text,
                model=c.model or self.model,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                cost=c.cost,
                latency_s=c.latency_s or seconds,
                collection=self.collection,
                config_hash=self.config_hash,
                extra={"system": system} if system else None,
            )
        )

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        t = time.perf_counter()
        c = self.inner.complete(messages, **params)
        self._record(messages, c, time.perf_counter() - t)
        return c

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        t = time.perf_counter()
        c = await self.inner.acomplete(messages, **params)
        self._record(messages, c, time.perf_counter() - t)
        return c
