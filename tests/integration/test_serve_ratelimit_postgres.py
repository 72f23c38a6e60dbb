"""The service-wide rate limit's counters on a REAL PostgreSQL (the team deployment's state database): two
connections (two serve processes) share one count, the sliding window refuses and readmits as on SQLite
(tests/unit/test_serve_ratelimit.py), old windows are pruned, and ``RateLimiter`` opens its own connection there."""

from __future__ import annotations

import pytest

from llmops_cli.core.state.ratelimit import WINDOW_S, RateCounter
from llmops_cli.serve.ratelimit import RateLimiter
from tests.integration.test_state_postgres import fresh_database, pg_server  # noqa: F401  (the module's server)

pytestmark = pytest.mark.integration

T0 = 1_000_000 * WINDOW_S


def test_counters_shared_between_connections_on_postgres(pg_server):  # noqa: F811
    from llmops_cli.adapters.state.postgres import PostgresDB

    url = fresh_database(pg_server)
    now = [T0 + 5.0]
    dbs = [PostgresDB(url), PostgresDB(url)]
    try:
        one, two = (RateCounter(db, 5, clock=lambda: now[0]) for db in dbs)
        got = [(one if i % 2 else two).take("k") == 0 for i in range(8)]
        assert got == [True] * 5 + [False] * 3
        assert one.take("k") == pytest.approx(WINDOW_S - 5 + WINDOW_S / 5)  # next window, a fifth slid out
        now[0] = T0 + WINDOW_S + 15  # 5 * 0.75 = 3.75 of the limit's 5 still count: one more
        assert [one.take("k") == 0, two.take("k") == 0] == [True, False]
        now[0] = T0 + 2 * WINDOW_S + 1  # the first window is pruned at the next window's first request
        assert two.take("x") == 0
        wins = {r[0] for r in dbs[0].query("SELECT DISTINCT win FROM rate_windows")}
        assert wins == {T0 // WINDOW_S + 1, T0 // WINDOW_S + 2}
    finally:
        for db in dbs:
            db.close()

    settings = type("S", (), {"state": type("St", (), {"url": url})(), "data_path": None})()
    a, b = RateLimiter(settings, 2), RateLimiter(settings, 2)
    try:
        assert not a.inline  # a round trip: the app runs it in a worker thread
        assert [x.take("caller") == 0 for x in (a, b, a)] == [True, True, False]
    finally:
        a.close()
        b.close()
