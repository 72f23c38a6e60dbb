"""LLM calls for evaluation: a cached LLM that totals tokens and cost, and a bounded-concurrency runner.

``CachedLLM`` is itself an ``LLM``, so code that takes an LLM (the ``ask`` step) goes through the cache too; it is
the top layer of the LLM stack (``wiring.llm_stack``) and eval's call counter. Cache hits are counted apart and cost
nothing: a re-run with unchanged inputs makes no new calls.

Replies that must parse (judge verdicts, generated questions) go through ``complete_parsed``: a reply that does
not parse is asked again once, with the reply and what was wrong with it, and only a reply that parsed is cached
(so a fixed judge is really asked on the next run, and a cached unusable reply from an older version is ignored).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmops_cli.core.llm_cache import LLMCache, cache_key
from llmops_cli.core.ports import LLM, Completion, LLMCallError, LLMConfigError, Message
from llmops_cli.core.usage import Usage
from llmops_cli.errors import AuthError, LlmopsError, UnreachableError

T = TypeVar("T")


class ReplyParseError(LlmopsError):
    """An LLM reply that could not be parsed into what was asked for (not JSON, wrong schema)."""


REASKS = 1  # a malformed reply is asked again this many times before it is an error


def reask_messages(messages: list[Message], reply: str, error: ReplyParseError) -> list[Message]:
    """The conversation for asking again: the reply that could not be used and why."""
    return [
        *messages,
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"That reply could not be used ({error.message}). Reply again with exactly one JSON "
            "object in the format asked for above (the field names and value ranges given), "
            "and nothing else.",
        },
    ]


async def complete_parsed(llm: LLM, messages: list[Message], parse: Callable[[str], T], **params: Any) -> T:
    """``parse(reply)`` of a completion; a reply that raises ReplyParseError is asked again (``REASKS`` times), then
    the error is raised. Through a ``CachedLLM``, only a reply that parsed is cached."""
    if isinstance(llm, CachedLLM):
        return await llm.acomplete_parsed(messages, parse, **params)
    convo = messages
    for attempt in range(REASKS + 1):
        c = await llm.acomplete(convo, **params)
        try:
            return parse(c.text)
        except ReplyParseError as e:
            if attempt == REASKS:
                raise
            convo = reask_messages(messages, c.text, e)
    raise AssertionError("unreachable")  # pragma: no cover


class CachedLLM(LLM):
    """``retry`` (a batch RetryPolicy) retries retryable failures in ``acomplete``; leave it None for adapters that
    retry by themselves (litellm)."""

    def __init__(self, inner: LLM, cache: LLMCache | None, usage: Usage | None = None, retry=None):
        self.inner = inner
        self.model = inner.model
        self.cache = cache
        self.usage = usage or Usage()
        self.retry = retry
        self._lock = threading.Lock()

    def _lookup(
        self, messages: list[Message], params: dict[str, Any], count: bool = True
    ) -> tuple[str | None, Completion | None]:
        if self.cache is None:
            return None, None
        key = cache_key(self.model, messages, params)
        hit = self.cache.get(key)
        if hit is not None and count:
            self._cached(hit)
        return key, hit

    def _cached(self, hit: Completion) -> None:
        with self._lock:
            self.usage.add_cached(hit)

    def _record(self, key: str | None, c: Completion) -> None:
        with self._lock:
            self.usage.add(c)
        if key is not None and self.cache is not None:
            self.cache.put(key, c)

    def _failed(self) -> None:
        with self._lock:
            self.usage.failed += 1

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        key, hit = self._lookup(messages, params)
        if hit is not None:
            return hit
        try:
            c = self.inner.complete(messages, **params)
        except Exception:
            self._failed()
            raise
        self._record(key, c)
        return c

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        key, hit = self._lookup(messages, params)
        if hit is not None:
            return hit
        c = await self._call(messages, params)
        self._record(key, c)
        return c

    async def acomplete_parsed(self, messages: list[Message], parse: Callable[[str], T], **params: Any) -> T:
        """See ``complete_parsed``: cached under the original messages' key, and only once it parsed."""
        key, hit = self._lookup(messages, params, count=False)
        if hit is not None:
            try:
                value = parse(hit.text)
            except ReplyParseError:
                pass  # cached before replies were checked: ask again, and overwrite it below
            else:
                self._cached(hit)
                return value
        convo = messages
        for attempt in range(REASKS + 1):
            c = await self._call(convo, params)
            try:
                value = parse(c.text)
            except ReplyParseError as e:
                self._record(None, c)  # it reached the LLM (usage), but is not cached
                if attempt == REASKS:
                    raise
                convo = reask_messages(messages, c.text, e)
                continue
            self._record(key, c)
            return value
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, messages: list[Message], params: dict[str, Any]) -> Completion:
        """One call to the inner LLM, with this client's retries of retryable failures (failures counted)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                c = await self.inner.acomplete(messages, **params)
                break
            except LLMCallError as e:
                if self.retry is None or not self.retry.should_retry(e.retryable, attempt):
                    self._failed()
                    raise
                await asyncio.sleep(self.retry.delay(attempt, e.retry_after))
            except Exception:
                self._failed()
                raise
        return c

    def prepare(self) -> None:
        """Let the client below resolve what it needs before a run (prices), outside the event loop."""
        prepare = getattr(self.inner, "prepare", None)
        if prepare is not None:
            prepare()

    async def aclose(self) -> None:
        """Close the inner adapter's HTTP session (it belongs to the running event loop)."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


# A rejected key, an endpoint that cannot be reached or a model string no provider serves fails every call the same
# way: such an error stops the whole step (the CLI exits 8 / 7 / 2) instead of becoming one identical error per row.
STOP_ERRORS: tuple[type[BaseException], ...] = (AuthError, UnreachableError, LLMConfigError)


async def bounded_gather(
    jobs: list[Callable[[], Awaitable[T]]], concurrency: int, on_done: Callable[[], None] | None = None
) -> list[T | BaseException]:
    """Run ``jobs`` with at most ``concurrency`` in flight; results in order, exceptions returned in place, except
    ``STOP_ERRORS``: the first one cancels the jobs still running or waiting and is raised."""
    sem = asyncio.Semaphore(max(1, concurrency))
    stopped: list[BaseException] = []

    async def one(job: Callable[[], Awaitable[T]]) -> T | BaseException:
        async with sem:
            if stopped:  # not started: the step is failing as a whole
                return stopped[0]
            try:
                return await job()
            except asyncio.CancelledError:
                raise
            except STOP_ERRORS as e:
                stopped.append(e)
                raise
            except Exception as e:  # noqa: BLE001 - a failed row is reported on that row
                return e
            finally:
                if on_done is not None:
                    on_done()

    tasks = [asyncio.ensure_future(one(j)) for j in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
