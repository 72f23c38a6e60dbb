"""When and how long to retry a failed LLM call: the one policy of every LLM client and the batch engine.

Pure (stdlib and core.ports only), so the batch engine uses it without reaching into the adapters, and every client
(adapters/llm) imports it from here.

Only what can succeed on retry is retried (429, 5xx, timeouts, connection errors: ``LLMCallError.retryable``);
a 400 or a rejected key fails at once. Waits grow exponentially with jitter, and are never shorter than the
server's Retry-After. The adapters run ``call_with_retries`` around each request (``llm.max_retries``); the
batch engine passes ``max_retries=0`` per call and runs its own loop, so that a 429 can pause the whole run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from llmops_cli.core.ports import LLMCallError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # calls per request, the first included
    base_delay_s: float = 0.5
    multiplier: float = 2.0
    max_delay_s: float = 30.0
    jitter: float = 0.25  # up to +25 %, so that workers failed together do not retry together
    max_retry_after_s: float = 600.0  # a longer Retry-After is not honoured literally
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.multiplier < 1 or self.max_delay_s < 0:
            raise ValueError("delays must be non-negative and the multiplier at least 1")

    def should_retry(self, retryable: bool, attempt: int) -> bool:
        """``attempt`` is the number of calls made so far for this request."""
        return retryable and attempt < self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed call."""
        backoff = min(self.max_delay_s, self.base_delay_s * self.multiplier ** max(0, attempt - 1))
        backoff *= 1.0 + self.jitter * self.rand()
        if retry_after is not None and retry_after > 0:
            return max(min(retry_after, self.max_retry_after_s), backoff)
        return backoff


# An interactive call (ask, an eval answer, a review) waits at most this long for one Retry-After; a server
# asking for longer gets its error reported at once, with the wait it asked for in the hint.
CLIENT_MAX_RETRY_AFTER_S = 60.0


def client_policy(max_retries: int) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max(0, int(max_retries)) + 1, max_delay_s=8.0, max_retry_after_s=CLIENT_MAX_RETRY_AFTER_S
    )


def _next_delay(policy: RetryPolicy, e: LLMCallError, attempt: int) -> float | None:
    """The wait before the next call, or None to give up (raise ``e``)."""
    if not policy.should_retry(e.retryable, attempt):
        if e.retryable and e.hint is None and e.status is not None and (e.status == 429 or e.status >= 500):
            # the server's side failed on every try, not this command's input: say what the user can do
            e.hint = f"the server failed on all {attempt} tries: try again later (llm.max_retries sets the retries)"
        return None
    if e.retry_after is not None and e.retry_after > policy.max_retry_after_s:
        e.hint = e.hint or f"the server asks to retry after {e.retry_after:g} s; try again later"
        return None
    return policy.delay(attempt, e.retry_after)


def call_with_retries(policy: RetryPolicy, call: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except LLMCallError as e:
            wait = _next_delay(policy, e, attempt)
            if wait is None:
                raise
        sleep(wait)


async def acall_with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except LLMCallError as e:
            wait = _next_delay(policy, e, attempt)
            if wait is None:
                raise
        await asyncio.sleep(wait)
