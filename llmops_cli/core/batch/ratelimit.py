"""Client-side requests-per-minute and tokens-per-minute limits.

Each limit is a token bucket refilled at ``limit / 60`` per second holding at most one second's worth (at
least one request's worth, so a single large request is never blocked forever). A caller reserves its cost
at once, even into debt, and is told how long to wait: callers are served in arrival order and the long-run
rate never exceeds the limit. ``block_for`` makes everyone wait (a 429 with Retry-After pauses the whole run,
not only the request that got it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(self, per_minute: float, now: float, burst: float | None = None):
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, burst if burst is not None else self.rate)
        self.level = self.capacity
        self.last = now

    def reserve(self, cost: float, now: float) -> float:
        """Take ``cost`` now; return the seconds to wait before using it."""
        if now > self.last:
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now
        need = min(cost, self.capacity)  # a request bigger than the bucket waits for a full bucket, not forever
        wait = max(0.0, (need - self.level) / self.rate)
        self.level -= cost
        return wait

    def refund(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        self.clock = clock
        self.sleep = sleep if sleep is not None else asyncio.sleep
        now = clock()
        self.requests = TokenBucket(rpm, now) if rpm else None
        self.tokens = TokenBucket(tpm, now) if tpm else None
        self.blocked_until = 0.0
        self.waited_s = 0.0

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def reserve(self, tokens: int) -> float:
        """Reserve one request of ``tokens`` estimated tokens; the seconds to wait."""
        now = self.clock()
        wait = max(0.0, self.blocked_until - now)
        if self.requests is not None:
            wait = max(wait, self.requests.reserve(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.reserve(tokens, now))
        return wait

    async def acquire(self, tokens: int = 0) -> float:
        if not self.active and self.blocked_until <= 0:
            return 0.0  # no limits and never blocked: no clock reads on the hot path
        wait = self.reserve(tokens)
        while wait > 0:
            self.waited_s += wait
            await self.sleep(wait)
            # a block_for() that arrived meanwhile applies to waiters too
            wait = max(0.0, self.blocked_until - self.clock())
        return wait

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a reservation once the real token count is known (refund, or charge the excess)."""
        if self.tokens is None or actual == estimated:
            return
        if actual < estimated:
            self.tokens.refund(estimated - actual)
        else:
            self.tokens.level -= actual - estimated

    def block_for(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)
