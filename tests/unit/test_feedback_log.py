"""The answer log: numbered migrations, recording, id prefixes, ratings, concurrency, recording of eval/batch calls."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from llmops_cli.core.feedback import AnswerLog, RecordingLLM, config_hash, record_llm_call
from llmops_cli.core.feedback.log import LOG_FILE, MIGRATIONS, AnswerLogError
from llmops_cli.errors import NotFoundError, UsageError
from tests.support.fakes import ScriptedLLM


def test_fresh_log_applies_every_migration_once(tmp_path):
    with AnswerLog(tmp_path / "a.sqlite") as log:
        assert log.schema_version() == MIGRATIONS[-1][0]
    with AnswerLog(tmp_path / "a.sqlite") as log:  # reopening applies nothing twice
        rows = log._query("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]


def test_old_schema_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for sql in MIGRATIONS[0][2]:
        db.execute(sql)
    db.execute("INSERT INTO schema_migrations VALUES (1, 'answers and ratings', 0)")
    db.execute("INSERT INTO answers (id, created_at, kind, question, answer) VALUES ('abcdef012345', 1.0, 'ask', 'q?', 'a.')")
    db.commit()
    db.close()
    with AnswerLog(path) as log:
        assert log.schema_version() == MIGRATIONS[-1][0]
        a = log.get("abcdef012345")
        assert (a.question, a.answer, a.cached_from) == ("q?", "a.", None)  # column added by migration 4
        assert log.review_of(a.id) is None and log.promotion_of(a.id) is None


def test_a_log_from_a_newer_llmops_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    AnswerLog(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(AnswerLogError, match="newer"):
        AnswerLog(path)


def test_record_get_and_id_prefixes(tmp_path):
    with AnswerLog.for_data_dir(tmp_path) as log:
        assert (tmp_path / LOG_FILE).is_file()
        i = log.record(kind="ask", question="How?", answer="Like this [1].", model="m", collection="docs", rewordings=["how so"],
                       chunks=[{"id": "c1", "source": "a.md", "heading": "A"}], input_tokens=10, output_tokens=5, cost=0.001,
                       latency_s=1.5, config_hash="h")
        assert len(i) == 12
        a = log.get(i[:4].upper())  # any unique prefix of 4+, case-insensitive
        assert (a.id, a.rewordings, a.chunks[0]["source"], a.cost, a.latency_s) == (i, ["how so"], "a.md", 0.001, 1.5)
        with pytest.raises(NotFoundError):
            log.get(i[:3])  # too short to be a prefix
        with pytest.raises(NotFoundError):
            log.get("0000000000zz")
        # two ids sharing a prefix: ambiguous
        log._tx(lambda db: db.execute("INSERT INTO answers (id, created_at, kind, question, answer) VALUES "
                                      "('beef00000001', 1, 'ask', 'x', 'y'), ('beef00000002', 2, 'ask', 'x', 'y')"))
        with pytest.raises(UsageError, match="ambiguous"):
            log.get("beef")


def test_recent_is_newest_first_and_filters_by_kind(tmp_path):
    with AnswerLog(tmp_path / "l.sqlite") as log:
        ids = [log.record(kind=k, question=f"q{n}", answer="a", created_at=100.0 + n) for n, k in enumerate(["ask", "eval", "ask"])]
        assert [a.id for a in log.recent(limit=10)] == ids[::-1]
        assert [a.id for a in log.recent(limit=10, kind="ask")] == [ids[2], ids[0]]
        assert [a.id for a in log.recent(limit=1)] == [ids[2]]


def test_ratings_include_cache_served_copies_when_asked(tmp_path):
    with AnswerLog(tmp_path / "l.sqlite") as log:
        origin = log.record(kind="ask", question="q", answer="a", collection="docs")
        copy = log.record(kind="ask", question="q!", answer="a", collection="docs", cached_from=origin)
        log.rate(origin, 1, "good")
        log.rate(copy, -1, "stale")
        assert [r.rating for r in log.ratings(origin)] == [1]
        assert [(r.rating, r.answer_id) for r in log.ratings(origin, with_cached_copies=True)] == [(1, origin), (-1, copy)]
        with pytest.raises(UsageError):
            log.rate(origin, 0)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    logs = [AnswerLog(path) for _ in range(4)]  # separate connections, like separate processes

    def write(log: AnswerLog) -> None:
        for n in range(25):
            log.record(kind="batch", question=f"p{n}", answer="r")

    threads = [threading.Thread(target=write, args=(lg,)) for lg in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].count() == 100
    for lg in logs:
        lg.close()


def test_record_llm_call_and_recording_llm(tmp_path):
    i = record_llm_call(tmp_path, kind="eval", prompt="Is it?", response="Yes", model="m", input_tokens=3, output_tokens=1, cost=0.5)
    with AnswerLog.for_data_dir(tmp_path) as log:
        a = log.get(i)
        assert (a.kind, a.question, a.answer, a.cost) == ("eval", "Is it?", "Yes", 0.5)

        inner = ScriptedLLM(model="fake/m").enqueue("one", "two")
        llm = RecordingLLM(inner, log, kind="batch")
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "row 1"}]
        assert llm.complete(msgs).text == "one"
        assert asyncio.run(llm.acomplete([{"role": "user", "content": "row 2"}])).text == "two"
        rows = {r.question: r for r in log.recent(kind="batch", limit=10)}
        assert set(rows) == {"row 1", "row 2"} and rows["row 1"].answer == "one" and rows["row 1"].extra == {"system": "Be brief."}
        assert rows["row 1"].model == "fake/m" and len(llm.recorded) == 2


def test_config_hash_follows_the_answer_shaping_settings_not_secrets():
    from llmops_cli.settings import load_settings

    def h(env):
        return config_hash(load_settings(None, environ=env).settings)

    base = h({})
    assert h({"LLMOPS_LLM_API_KEY": "sk-something-secret-123456"}) == base
    assert h({"LLMOPS_LLM_MODEL": "openai/gpt-4o-mini"}) != base
    assert h({"LLMOPS_RETRIEVAL_K": "9"}) != base


def test_recording_llm_is_transparent_for_adapter_extras(tmp_path):
    class WithExtras(ScriptedLLM):
        prepared = False

        def prepare(self):
            self.prepared = True

    inner = WithExtras()
    with AnswerLog(tmp_path / "l.sqlite") as log:
        llm = RecordingLLM(inner, log, kind="batch")
        llm.prepare()
        assert inner.prepared and llm.model == inner.model
        with pytest.raises(AttributeError):
            llm.no_such_thing
