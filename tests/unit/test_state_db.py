"""The state-database layer on SQLite: named migrations recorded once, adopted from the stores' old numbered
records without losing a row, transactional (an error or a SIGKILL mid-migration leaves the database as it was),
the dialect's DDL translation, and the stores as context managers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from llmops_cli.core.eval.history import RunHistory
from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.core.llm_cache import LLMCache
from llmops_cli.core.ports import Completion
from llmops_cli.core.state import POSTGRESQL, Migrations, SchemaTooNew, applied, migrate, sqlite_file
from llmops_cli.core.state.migrations import MIGRATIONS_TABLE
from tests.support.legacy_state import legacy_cache, legacy_history, legacy_log


def _tables(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def _records(path) -> list[tuple[str, float]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY applied_at, name").fetchall()
    finally:
        db.close()


def test_migrations_are_named_recorded_with_their_time_and_applied_once(tmp_path):
    calls: list[str] = []
    m = Migrations("demo")

    @m
    def m001_things(db):
        calls.append("m001")
        db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")

    m.sql("m002_thing_size", "ALTER TABLE things ADD COLUMN size REAL; CREATE INDEX things_name ON things(name)")
    db = sqlite_file(tmp_path / "s.sqlite")
    assert migrate(db, m) == ["demo/m001_things", "demo/m002_thing_size"]
    assert migrate(db, m) == [] and calls == ["m001"]
    db.close()
    names = [n for n, _ in _records(tmp_path / "s.sqlite")]
    assert names == ["demo/m001_things", "demo/m002_thing_size"]
    assert all(at > 1e9 for _, at in _records(tmp_path / "s.sqlite"))  # epoch seconds of now
    with pytest.raises(ValueError, match="twice"):
        m.sql("m002_thing_size", "SELECT 1")


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path):
    m = Migrations("demo")
    m.sql("m001_things", "CREATE TABLE things (id INTEGER PRIMARY KEY)")
    db = sqlite_file(tmp_path / "s.sqlite")
    migrate(db, m)
    db.execute("INSERT INTO things (id) VALUES (7)")

    @m
    def m002_half_done(db):
        db.execute("ALTER TABLE things ADD COLUMN half TEXT")
        db.execute("CREATE TABLE other (x TEXT)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        migrate(db, m)
    assert applied(db, "demo") == ["demo/m001_things"]
    assert not db.table_exists("other")
    assert [r[1] for r in db.query("PRAGMA table_info(things)")] == ["id"]
    assert db.query("SELECT id FROM things")[0][0] == 7
    db.close()


def test_the_answer_log_adopts_its_numbered_versions_and_keeps_every_row(tmp_path):
    path = tmp_path / "llmops.sqlite"
    legacy_log(path, versions=5)
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO answers (id, created_at, kind, question, answer) VALUES ('abcdef012345', 5, 'ask', 'q', 'a')"
    )
    db.execute("INSERT INTO ratings (answer_id, rating, created_at, rater) VALUES ('abcdef012345', 1, 6, 'ann')")
    db.commit()
    db.close()
    with AnswerLog(path) as log:
        assert log.schema_version() == 5
        assert log.get("abcdef012345").question == "q"
        assert [(r.rating, r.rater) for r in log.ratings("abcdef012345")] == [(1, "ann")]
    assert "schema_migrations" not in _tables(path)  # one record, not two
    assert _records(path) == [
        ("answer_log/m001_answers_and_ratings", 1001.0),  # the times the old code applied them
        ("answer_log/m002_reviews", 1002.0),
        ("answer_log/m003_promotions_and_the_semantic_cache", 1003.0),
        ("answer_log/m004_answers_served_from_the_cache", 1004.0),
        ("answer_log/m005_who_rated", 1005.0),
    ]


def test_a_partly_migrated_old_answer_log_gets_only_what_it_lacks(tmp_path):
    path = tmp_path / "llmops.sqlite"
    legacy_log(path, versions=3)
    with AnswerLog(path) as log:
        i = log.record(kind="ask", question="q", answer="a", collection="docs")
        log.rate(i, -1, rater="bob")  # the rater column of migration 5
        assert log.get(i).cached_from is None  # the column of migration 4
    names = [n for n, _ in _records(path)]
    assert names[:3] == [
        "answer_log/m001_answers_and_ratings",
        "answer_log/m002_reviews",
        "answer_log/m003_promotions_and_the_semantic_cache",
    ]
    assert names[3:] == ["answer_log/m004_answers_served_from_the_cache", "answer_log/m005_who_rated"]


def test_the_eval_history_and_the_llm_cache_adopt_their_old_files(tmp_path):
    legacy_history(tmp_path / "runs.sqlite", versions=2)
    with RunHistory(tmp_path / "runs.sqlite") as h:
        assert h.schema_version == 6
        assert "by_tag_json" in [r[1] for r in h.db.execute("PRAGMA table_info(runs)")]
    assert [n for n, _ in _records(tmp_path / "runs.sqlite")] == [
        "eval_history/m001_runs_and_rows",
        "eval_history/m002_run_label",
        "eval_history/m003_metric_means_by_tag",
        "eval_history/m004_run_matrix",
        "eval_history/m005_blessed_baselines",
        "eval_history/m006_human_ratings",
    ]
    legacy_cache(tmp_path / "llm.sqlite")
    db = sqlite3.connect(tmp_path / "llm.sqlite")
    db.execute("INSERT INTO completions VALUES ('k', 'm', 'cached text', 1, 2, 0.5, 3.0)")
    db.commit()
    db.close()
    with LLMCache(tmp_path / "llm.sqlite") as cache:
        got = cache.get("k")
        assert (got.text, got.input_tokens, got.output_tokens, got.cost) == ("cached text", 1, 2, 0.5)
        assert len(cache) == 1
    assert [n for n, _ in _records(tmp_path / "llm.sqlite")] == ["llm_cache/m001_completions"]


def test_a_kill_in_the_middle_of_a_migration_loses_nothing(tmp_path):
    """A real SIGKILL after migration 5's ALTER TABLE, before its commit: the old record, the tables and the rows are
    as they were; the next open migrates."""
    path = tmp_path / "llmops.sqlite"
    legacy_log(path, versions=4)
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO answers (id, created_at, kind, question, answer) VALUES ('abcdef012345', 5, 'ask', 'q', 'a')"
    )
    db.execute("INSERT INTO ratings (answer_id, rating, created_at) VALUES ('abcdef012345', 1, 6)")
    db.commit()
    db.close()
    child = textwrap.dedent(
        f"""
        import os, signal
        from llmops_cli.core.feedback import log
        from llmops_cli.core.state import Migration

        def killed(db):
            db.execute("ALTER TABLE ratings ADD COLUMN rater TEXT")
            os.kill(os.getpid(), signal.SIGKILL)

        log.migrations.items[4] = Migration(log.migrations.items[4].name, killed)
        log.AnswerLog({str(path)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2, 3, 4]
    assert "rater" not in [r[1] for r in db.execute("PRAGMA table_info(ratings)")]
    assert MIGRATIONS_TABLE not in _tables(path)
    db.close()
    with AnswerLog(path) as log:
        assert log.schema_version() == 5
        assert [(r.rating, r.rater) for r in log.ratings("abcdef012345")] == [(1, None)]


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "llmops.sqlite"
    child = f"from llmops_cli.core.feedback.log import AnswerLog; AnswerLog({str(path)!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert len(_records(path)) == 5


def test_a_newer_record_is_refused_for_every_store(tmp_path):
    with RunHistory(tmp_path / "runs.sqlite"):
        pass
    db = sqlite3.connect(tmp_path / "runs.sqlite")
    db.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES ('eval_history/m004_from_the_future', 9e9)")
    db.commit()
    db.close()
    from llmops_cli.errors import StoreError

    with pytest.raises(StoreError, match="newer"):
        RunHistory(tmp_path / "runs.sqlite")
    m = Migrations("other")  # another store's migrations are not this one's business
    m.sql("m001_x", "CREATE TABLE x (a TEXT)")
    db = sqlite_file(tmp_path / "runs.sqlite")
    assert migrate(db, m) == ["other/m001_x"]
    with pytest.raises(SchemaTooNew):
        from llmops_cli.core.eval.history import migrations

        migrate(db, migrations)
    db.close()


def test_the_dialect_rewrites_sqlite_ddl_for_postgresql():
    ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, x REAL, v BLOB, s TEXT DEFAULT 'REAL')"
    assert POSTGRESQL.ddl(ddl) == (
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, x DOUBLE PRECISION, "
        "v BYTEA, s TEXT DEFAULT 'REAL')"
    )


def test_the_stores_are_context_managers_and_close_what_they_opened(tmp_path):
    with AnswerLog(tmp_path / "a.sqlite") as log:
        log.record(kind="ask", question="q", answer="a")
    with pytest.raises(Exception, match="closed"):
        log.count()
    with LLMCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", Completion(text="t", model="m", input_tokens=1, output_tokens=1, cost=None, latency_s=0.1))
        assert cache.get("k").text == "t" and cache.get("nope") is None
    with pytest.raises(Exception, match="closed"):
        len(cache)
    with RunHistory(tmp_path / "r.sqlite") as h:
        assert h.list_runs() == []
    shared = sqlite_file(tmp_path / "shared.sqlite")  # a database handed in is its owner's to close
    with AnswerLog(shared) as log, LLMCache(shared) as cache, RunHistory(shared) as h:
        log.record(kind="ask", question="q", answer="a")
    assert shared.query("SELECT COUNT(*) FROM answers")[0][0] == 1
    shared.close()


def test_threads_sharing_one_connection_keep_their_transactions_apart(tmp_path):
    db = sqlite_file(tmp_path / "t.sqlite")
    db.execute("CREATE TABLE n (v INTEGER)")

    def work(k: int) -> None:
        for _ in range(50):
            with db.transaction() as tx:
                tx.execute("INSERT INTO n (v) VALUES (?)", (k,))
                tx.execute("INSERT INTO n (v) VALUES (?)", (-k,))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.query("SELECT COUNT(*), SUM(v) FROM n")[0][:] == (400, 0)
    db.close()
