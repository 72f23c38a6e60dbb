"""The service-wide rate limit: counters in the state database (SQLite here; PostgreSQL in
tests/integration/test_state_postgres.py), a sliding window over two one-minute windows, shared by every
process on the database, pruned, and failing open to a per-process bucket when the database cannot be written."""

from __future__ import annotations

import logging
import time

import pytest

from llmops_cli.core.state import sqlite_file
from llmops_cli.core.state.ratelimit import WINDOW_S, RateCounter, key_id
from llmops_cli.serve.ratelimit import RateLimiter


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


T0 = 1_000_000 * WINDOW_S  # the start of a window


def allowed(counter: RateCounter, who: str, n: int) -> list[bool]:
    return [counter.take(who) == 0 for _ in range(n)]


def rows(path) -> list[tuple]:
    db = sqlite_file(path)
    try:
        return [tuple(r) for r in db.query("SELECT key_hash, win, n FROM rate_windows ORDER BY win, key_hash")]
    finally:
        db.close()


def test_limit_per_caller_refusals_not_counted_and_window_slides(tmp_path):
    clock = Clock(T0 + 30)
    with RateCounter(tmp_path / "rl.sqlite", 4, clock=clock) as c:
        assert allowed(c, "a", 6) == [True] * 4 + [False] * 2
        assert allowed(c, "b", 1) == [True]  # another caller has its own count
        wait = c.take("a")
        assert wait == pytest.approx(30 + 0.25 * WINDOW_S)  # next window, once a quarter of this one slid out
        # refusals are not counted: the window holds the 4 allowed requests only; the caller is kept as a hash
        assert set(rows(tmp_path / "rl.sqlite")) == {(key_id("a"), T0 // WINDOW_S, 4), (key_id("b"), T0 // WINDOW_S, 1)}
        clock.t = T0 + WINDOW_S + 1  # next window: the previous 4 still weigh 4 * 59/60 > 3
        assert c.take("a") > 0
        clock.t = T0 + WINDOW_S + 15  # a quarter slid out: 4 * 0.75 = 3 -> one more
        assert allowed(c, "a", 2) == [True, False]
        clock.t = T0 + WINDOW_S + 45  # 4 * 0.25 + 1 = 2 -> two more
        assert allowed(c, "a", 3) == [True, True, False]
        clock.t = T0 + 3 * WINDOW_S  # after a whole idle window: the full limit again
        assert allowed(c, "a", 5) == [True] * 4 + [False]


def test_two_processes_share_the_count_and_old_windows_are_pruned(tmp_path):
    clock = Clock(T0 + 5)
    path = tmp_path / "rl.sqlite"
    # two connections on one file, as two worker processes have
    with RateCounter(path, 5, clock=clock) as one, RateCounter(path, 5, clock=clock) as two:
        got = [(one if i % 2 else two).take("k") == 0 for i in range(8)]
        assert got == [True] * 5 + [False] * 3
        assert one.take("k") > 0 and two.take("k") > 0
        clock.t = T0 + WINDOW_S + 59  # the previous window nearly slid out: 5 * 1/60 < 1
        assert one.take("k") == 0 and one.take("x") == 0
        clock.t = T0 + 2 * WINDOW_S + 1  # the first window is two windows old: deleted at the first request
        assert two.take("x") == 0
        assert {r[1] for r in rows(path)} == {T0 // WINDOW_S + 1, T0 // WINDOW_S + 2}


def test_zero_limit_opens_nothing_and_costs_nothing(tmp_path):
    settings = type("S", (), {"state": type("St", (), {"url": None})(), "data_path": tmp_path / "data"})()
    limiter = RateLimiter(settings, 0)
    assert limiter.take("k") == 0 and not (tmp_path / "data").exists()


def test_limiter_is_service_wide_and_fails_open_to_a_bucket_per_process(tmp_path, caplog):
    def settings(data):
        return type("S", (), {"state": type("St", (), {"url": None})(), "data_path": data})()

    a, b = RateLimiter(settings(tmp_path / "data"), 3), RateLimiter(settings(tmp_path / "data"), 3)
    try:
        assert [x.take("k") == 0 for x in (a, b, a, b)] == [True, True, True, False]
        assert a.inline and (tmp_path / "data" / "ratelimit.sqlite").exists()
    finally:
        a.close()
        b.close()
    # a data_dir that cannot be written: the requests still pass, each process limiting on its own, one warning
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    broken = RateLimiter(settings(blocked / "data"), 2)
    with caplog.at_level(logging.WARNING, logger="llmops_cli.serve"):
        assert [broken.take("k") == 0 for _ in range(3)] == [True, True, False]
    warnings = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(warnings) == 1 and "limiting per process" in warnings[0], warnings


def test_cost_of_a_check(tmp_path):
    """Not a benchmark: a guard that one check stays a single cheap statement (well under a millisecond)."""
    with RateCounter(tmp_path / "rl.sqlite", 10**9) as c:
        c.take("k")
        n = 2000
        start = time.process_time()
        for _ in range(n):
            c.take("k")
        per = (time.process_time() - start) / n
    assert per < 1e-3, per
