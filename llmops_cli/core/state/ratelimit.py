"""A request counter per caller shared by every process on one state database: ``llmops serve``'s rate limit holds
for the service (all workers, all machines behind one load balancer), not per process.

A sliding window over two fixed one-minute windows (aligned to the epoch minute, so every machine agrees on them
as far as their clocks do): a request is allowed when ``current + previous * (1 - elapsed fraction) <= limit - 1``.
Each allowed request costs ONE statement, an upsert that increments the current window's count only while it is
under what the previous window leaves (``ON CONFLICT ... DO UPDATE ... WHERE n <= cap RETURNING n``: no row back
means refused, and a refused request is not counted). The previous window is over, so its count is read once per
caller and window by each process and kept. Windows older than the previous one are deleted once a minute per
process. Callers are stored as a hash (``key_id``), never as a key or an address.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from llmops_cli.core.state import Migrations, StateDB, StateStore
from llmops_cli.errors import StoreError

WINDOW_S = 60

migrations = Migrations("rate_limits")
migrations.sql(
    "m001_rate_windows",
    """
CREATE TABLE IF NOT EXISTS rate_windows (
    key_hash TEXT NOT NULL,
    win INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (key_hash, win)
)
""",
)

_HIT = (
    "INSERT INTO rate_windows (key_hash, win, n) VALUES (?, ?, 1) ON CONFLICT (key_hash, win) "
    "DO UPDATE SET n = rate_windows.n + 1 WHERE rate_windows.n <= ? RETURNING n"
)
_HINT = "check state.url (or that data_dir is writable)"


def key_id(caller: str) -> str:
    """What the table keeps of a caller (an API key's hash, or a client address): a hash of it."""
    return hashlib.sha256(caller.encode()).hexdigest()[:32]


def default_rate_limit_path(data_path: Path) -> Path:
    return Path(data_path) / "ratelimit.sqlite"


class RateCounter(StateStore):
    """``take(caller)``: 0 when the caller may make one more request now (and it is counted), else the seconds
    until it may. ``RateCounter(path)``: a SQLite file; ``RateCounter(db)``: the shared state database."""

    def __init__(
        self,
        target: str | Path | StateDB,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        busy_ms: int | None = None,
    ):
        """``busy_ms`` (a SQLite file): how long an update waits for another process's before it fails."""
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="the rate-limit counters {where} cannot be opened",
            file_hint=_HINT,
            db_hint=_HINT,
        )
        if busy_ms is not None and self.path is not None:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        self.limit = per_minute
        self.clock = clock
        self._previous: dict[str, tuple[int, int]] = {}  # key_hash -> (window, count of the window before it)
        self._pruned = -1
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Raises ``StateError`` when the database cannot be written (the caller decides what that means)."""
        if self.limit <= 0:
            return 0.0
        now = self.clock()
        win = int(now // WINDOW_S)
        left = 1.0 - (now - win * WINDOW_S) / WINDOW_S  # share of the previous window still inside the last minute
        k = key_id(caller)
        if win != self._pruned:
            self._prune(win)
        prev = self._previous_count(k, win)
        cap = self.limit - 1 - prev * left  # the highest current count that still admits one more
        if cap >= 0:
            rows = self._db.query(_HIT, (k, win, cap))
            if rows:
                return 0.0
        cur = self._count(k, win)
        return self._wait(cur, prev, 1.0 - left)

    def _wait(self, cur: int, prev: int, done: float) -> float:
        """Seconds until ``cur + prev * (1 - f) <= limit - 1`` holds, ``f`` being the elapsed fraction."""
        room = self.limit - 1 - cur
        if room >= 0 and prev > 0:  # within this window, once enough of the previous one has slid out
            f = 1.0 - room / prev
            if f < 1.0:
                return max(f - done, 0.0) * WINDOW_S or 1e-3
        # in the next window this one is the previous one
        g = max(1.0 - (self.limit - 1) / cur, 0.0) if cur else 0.0
        return (1.0 - done + g) * WINDOW_S

    def _previous_count(self, k: str, win: int) -> int:
        got = self._previous.get(k)
        if got is not None and got[0] == win:
            return got[1]
        prev = self._count(k, win - 1)
        with self._lock:
            if len(self._previous) > 10_000:  # callers seen once: forget the windows that are over
                for old in [x for x, (w, _) in self._previous.items() if w != win]:
                    del self._previous[old]
            self._previous[k] = (win, prev)
        return prev

    def _count(self, k: str, win: int) -> int:
        rows = self._db.query("SELECT n FROM rate_windows WHERE key_hash = ? AND win = ?", (k, win))
        return int(rows[0][0]) if rows else 0

    def _prune(self, win: int) -> None:
        self._pruned = win
        self._db.execute("DELETE FROM rate_windows WHERE win < ?", (win - 1,))


__all__ = ["WINDOW_S", "RateCounter", "default_rate_limit_path", "key_id", "migrations"]
