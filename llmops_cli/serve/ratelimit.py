"""``llmops serve``'s per-caller rate limit, one for the whole service: the counters live in the state database
(``core/state/ratelimit.py``), so every worker process and every machine sharing ``state.url`` counts together
(without ``state.url``, the processes of one machine share ``<data_dir>/ratelimit.sqlite``).

Fails open: when the state database cannot be opened or written, each process limits on its own (the in-memory
token bucket, ``LocalBucket``), logs a warning at most once a minute, and tries the database again 30 s later.
A limit of 0 opens nothing and costs nothing per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import LlmopsError

if TYPE_CHECKING:
    from llmops_cli.core.state.ratelimit import RateCounter
    from llmops_cli.settings import Settings

log = logging.getLogger("llmops_cli.serve")
RETRY_S = 30.0  # after a failure, how long each process limits on its own before it tries the database again
BUSY_MS = 1000  # SQLite: how long a counter update waits for another process's (a few microseconds each)


class LocalBucket:
    """A token bucket per caller in this process's memory: ``per_minute`` requests a minute, bursts up to it."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 when allowed, else the seconds until a request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 10_000:  # many callers seen once: forget the ones whose bucket is full again
                full = [w for w, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.capacity]
                for w in full:
                    del self._buckets[w]
            tokens, last = self._buckets.get(who, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate


class RateLimiter:
    """``take(caller)``: 0 when allowed, else the seconds to wait. The service-wide counter when the state
    database answers, this process's bucket while it does not. Blocking (a statement on the state database):
    ``inline`` says whether it is cheap enough for the event loop (a local SQLite file) or belongs in a thread
    (PostgreSQL: a round trip)."""

    def __init__(self, settings: Settings, per_minute: int):
        self.per_minute = per_minute
        self.url = settings.state.url or None
        self.data_path = settings.data_path
        self.inline = self.url is None
        self.local = LocalBucket(per_minute)
        self._counter: RateCounter | None = None
        self._own_db: Any = None  # the PostgreSQL connection this limiter opened for its counter
        self._retry_at = 0.0
        self._warned_at = -1e9
        self._lock = threading.RLock()  # _open reports its failure through _failed

    def take(self, who: str) -> float:
        if self.per_minute <= 0:
            return 0.0
        counter = self._counter or self._open()
        if counter is not None:
            try:
                return counter.take(who)
            except LlmopsError as e:
                self._failed(e)
        return self.local.take(who)

    def _open(self) -> RateCounter | None:
        with self._lock:
            if self._counter is not None:
                return self._counter
            if time.monotonic() < self._retry_at:
                return None
            from llmops_cli.core.state.ratelimit import RateCounter, default_rate_limit_path

            try:
                if self.url is None:
                    self._counter = RateCounter(
                        default_rate_limit_path(self.data_path), self.per_minute, busy_ms=BUSY_MS
                    )
                else:
                    from llmops_cli.adapters.state.postgres import PostgresDB

                    db = PostgresDB(self.url)  # its own connection: no wait behind the answer log's statements
                    try:
                        self._counter = RateCounter(db, self.per_minute)
                    except BaseException:
                        db.close()
                        raise
                    self._own_db = db  # the counter does not close a database it was given
            except LlmopsError as e:
                self._failed(e, opening=True)
                return None
            return self._counter

    def _failed(self, e: LlmopsError, *, opening: bool = False) -> None:
        with self._lock:
            counter, self._counter = self._counter, None
            self._retry_at = time.monotonic() + RETRY_S
            if counter is not None:
                self._close(counter)
            now = time.monotonic()
            if now - self._warned_at >= 60:
                self._warned_at = now
                what = "cannot open" if opening else "cannot update"
                log.warning(
                    "rate limit: %s the shared counters (%s); limiting per process for now",
                    what,
                    redact_secrets(e.message),
                )

    def _close(self, counter: RateCounter) -> None:
        db, self._own_db = self._own_db, None
        try:
            counter.close()
            if db is not None:
                db.close()
        except Exception:  # noqa: BLE001  # a broken connection may fail to close too; it is dropped either way
            pass

    def close(self) -> None:
        with self._lock:
            counter, self._counter = self._counter, None
            if counter is not None:
                self._close(counter)
