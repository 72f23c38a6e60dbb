"""The async runner: a fixed pool of workers (the concurrency bound) over a queue of requests.

Per request: the cache, then the rate limiter, the call, retries by the policy, schema validation; the outcome
is handed to ``on_record`` (which appends it to the checkpoint) the moment it is known. Errors that will fail
every row the same way (rejected credentials, unknown model, an endpoint that still refuses connections after
the retries) stop the run instead of being recorded N times: those rows stay undone, so re-running the same
command continues where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmops_cli.core.batch.requests import BatchRequest
from llmops_cli.core.batch.retry import RetryPolicy
from llmops_cli.core.batch.validation import AnswerInvalid
from llmops_cli.core.ports import LLMCallError
from llmops_cli.errors import AuthError, NotFoundError, UnreachableError

if TYPE_CHECKING:
    from llmops_cli.core.batch.ratelimit import RateLimiter
    from llmops_cli.core.batch.validation import SchemaValidator
    from llmops_cli.core.llm_cache import LLMCache
    from llmops_cli.core.ports import LLM, Completion

Record = dict[str, Any]


@dataclass
class EngineStats:
    calls: int = 0  # provider calls made, retries included
    retries: int = 0
    cache_hits: int = 0
    answered: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_unknown: int = 0  # answers whose price litellm does not know (set llm.*_cost_per_token)
    status_counts: dict[str, int] = field(default_factory=dict)


class FatalBatchError(Exception):
    """Wraps the error that stopped the run."""


@dataclass
class Engine:
    llm_for: Callable[[str], LLM]
    concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: RateLimiter | None = None
    cache: LLMCache | None = None
    validator: SchemaValidator | None = None
    timeout_s: float = 60.0
    on_record: Callable[[Record], None] = lambda r: None
    sleep: Callable[[float], Any] = asyncio.sleep
    stats: EngineStats = field(default_factory=EngineStats)

    async def run(self, requests: list[BatchRequest]) -> EngineStats:
        queue: asyncio.Queue[BatchRequest] = asyncio.Queue()
        for r in requests:
            queue.put_nowait(r)
        fatal: list[BaseException] = []
        for model in sorted({r.model for r in requests}):
            prepare = getattr(self.llm_for(model), "prepare", None)
            if prepare is not None:
                await asyncio.to_thread(prepare)

        async def worker() -> None:
            while not fatal:
                try:
                    req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    record = await self.run_one(req)
                except FatalBatchError as e:
                    fatal.append(e.__cause__ or e)
                    return
                self._count(record)
                self.on_record(record)

        tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(self.concurrency, len(requests))))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in pending:  # an exception (e.g. the checkpoint disk is full): stop everyone now
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in tasks:
                t.cancel()
            await _close_llms(self.llm_for)
        if fatal:
            raise fatal[0]
        return self.stats

    def _count(self, rec: Record) -> None:
        s = self.stats
        if rec["status"] == "ok":
            s.answered += 1
        else:
            s.errors += 1
            key = str(rec.get("error_status") or rec.get("error_kind"))
            s.status_counts[key] = s.status_counts.get(key, 0) + 1
        if not rec.get("cached"):
            s.input_tokens += rec.get("input_tokens") or 0
            s.output_tokens += rec.get("output_tokens") or 0
            if rec.get("cost") is not None:
                s.cost += rec["cost"]
            elif rec["status"] == "ok":
                s.cost_unknown += 1

    async def run_one(self, req: BatchRequest) -> Record:
        t0 = time.perf_counter()
        if self.cache is not None:
            hit = self.cache.get(req.request_hash)
            if hit is not None:
                self.stats.cache_hits += 1
                return self._answer(req, hit, attempts=0, t0=t0, cached=True)
        llm = self.llm_for(req.model)
        params = {**req.params, "timeout": self.timeout_s, "num_retries": 0, "max_retries": 0}
        attempts = 0
        while True:
            estimate = req.estimated_tokens()
            if self.limiter is not None:
                await self.limiter.acquire(estimate)
            attempts += 1
            self.stats.calls += 1
            try:
                # the adapter has its own timeout; this one guards against a client that ignores it
                completion = await asyncio.wait_for(llm.acomplete(req.messages, **params), self.timeout_s + 30)
            except LLMCallError as e:
                fatal = _fatal(e, will_retry=self.retry.should_retry(e.retryable, attempts))
                if fatal is not None:
                    raise FatalBatchError(str(e)) from fatal
                if self.retry.should_retry(e.retryable, attempts):
                    await self._backoff(attempts, e.retry_after, e.status)
                    continue
                return self._error(
                    req,
                    e.message,
                    attempts,
                    t0,
                    status=e.status,
                    kind="retries exhausted" if e.retryable else "rejected",
                )
            except TimeoutError:
                if self.retry.should_retry(True, attempts):
                    await self._backoff(attempts, None, None)
                    continue
                return self._error(
                    req, f"no answer within {self.timeout_s:g} s", attempts, t0, status=408, kind="timeout"
                )
            if self.limiter is not None and completion.input_tokens:
                self.limiter.settle(estimate, completion.input_tokens + completion.output_tokens)
            return self._answer(req, completion, attempts=attempts, t0=t0, cached=False)

    async def _backoff(self, attempts: int, retry_after: float | None, status: int | None) -> None:
        self.stats.retries += 1
        delay = self.retry.delay(attempts, retry_after)
        if status == 429 and retry_after and self.limiter is not None:
            self.limiter.block_for(retry_after)  # the whole run slows down, not only this request
        await self.sleep(delay)

    def _answer(self, req: BatchRequest, c: Completion, *, attempts: int, t0: float, cached: bool) -> Record:
        parsed = None
        if self.validator is not None:
            try:
                parsed = self.validator.parse(c.text)
            except AnswerInvalid as e:
                rec = self._error(req, str(e), attempts, t0, status=None, kind="invalid")
                rec.update(
                    response=c.text,
                    input_tokens=c.input_tokens,
                    output_tokens=c.output_tokens,
                    cost=None if cached else c.cost,
                    cached=cached,
                )
                return rec
        if self.cache is not None and not cached:
            self.cache.put(req.request_hash, c)  # only answers that passed validation are cached
        return {
            "id": req.id,
            "request_hash": req.request_hash,
            "status": "ok",
            "model": req.model,
            "response": c.text,
            "parsed": parsed,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "cost": 0.0 if cached else c.cost,
            "cached": cached,
            "attempts": attempts,
            "latency_s": round(time.perf_counter() - t0, 4),
            "finished_at": _now(),
        }

    def _error(
        self, req: BatchRequest, message: str, attempts: int, t0: float, *, status: int | None, kind: str
    ) -> Record:
        return {
            "id": req.id,
            "request_hash": req.request_hash,
            "status": "error",
            "model": req.model,
            "error": message,
            "error_status": status,
            "error_kind": kind,
            "attempts": attempts,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": None,
            "cached": False,
            "latency_s": round(time.perf_counter() - t0, 4),
            "finished_at": _now(),
        }


_KEPT = "rows done so far are kept: re-run the same command to continue"


def _fatal(e: Any, *, will_retry: bool) -> Exception | None:
    """The error that stops the whole run, or None when ``e`` belongs to its row (or is retried)."""
    if isinstance(e, AuthError) or (e.status in (401, 403) and not e.retryable):
        return AuthError(e.message, hint=f"{e.hint or 'set the API key (llm.api_key or LLMOPS_LLM_API_KEY)'}; {_KEPT}")
    if e.status == 404 and not e.retryable:
        return NotFoundError(e.message, hint=f"{e.hint or 'check --model / llm.model and llm.api_base'}; {_KEPT}")
    if isinstance(e, UnreachableError) and not will_retry:
        return UnreachableError(
            e.message, hint=f"{e.hint or 'is the server running? check llm.api_base'}; {_KEPT} once it is up"
        )
    return None


async def _close_llms(llm_for: Any) -> None:
    """Close async HTTP sessions of adapters that have them (built per event loop)."""
    for llm in getattr(llm_for, "built", {}).values():
        close = getattr(llm, "aclose", None)
        if close is not None:
            await close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
