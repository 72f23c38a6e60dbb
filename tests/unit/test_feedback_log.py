"""The answer log: numbered migrations, recording, id prefixes, ratings, concurrency, recording of eval/batch calls."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from llmops_cli.core.feedback import AnswerLog, RecordingLLM, answer_config_hash, record_llm_call
from llmops_cli.core.feedback.log import LOG_FILE, MIGRATIONS, AnswerLogError, latest_votes
from llmops_cli.errors import NotFoundError, UsageError
from tests.support.fakes import ScriptedLLM
from tests.support.legacy_state import legacy_log


def test_fresh_log_applies_every_migration_once(tmp_path):
    with AnswerLog(tmp_path / "a.sqlite") as log:
        assert log.schema_version() == len(MIGRATIONS) == 5
    with AnswerLog(tmp_path / "a.sqlite") as log:  # reopening applies nothing twice
        rows = log._query("SELECT name FROM _llmops_migrations ORDER BY applied_at, name")
        assert [r[0] for r in rows] == [m.name for m in MIGRATIONS]
        assert [r[0] for r in rows][0] == "answer_log/m001_answers_and_ratings"


def test_old_schema_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    legacy_log(path, versions=1)
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO answers (id, created_at, kind, question, answer) VALUES ('abcdef012345', 1.0, 'ask', 'q?', 'a.')"
    )
    db.commit()
    db.close()
    with AnswerLog(path) as log:
        assert log.schema_version() == len(MIGRATIONS)
        a = log.get("abcdef012345")
        assert (a.question, a.answer, a.cached_from) == ("q?", "a.", None)  # column added by migration 4
        assert log.review_of(a.id) is None and log.promotion_of(a.id) is None


def test_a_log_from_a_newer_llmops_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    AnswerLog(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _llmops_migrations VALUES ('answer_log/m999_future', 9e9)")
    db.commit()
    db.close()
    with pytest.raises(AnswerLogError, match="newer"):
        AnswerLog(path)


def test_a_legacy_log_from_a_newer_llmops_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    legacy_log(path, versions=5)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (6, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(AnswerLogError, match="newer"):
        AnswerLog(path)
    db = sqlite3.connect(path)  # refused without a change: the old record is still there
    assert db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 6
    db.close()


def test_record_get_and_id_prefixes(tmp_path):
    with AnswerLog.for_data_dir(tmp_path) as log:
        assert (tmp_path / LOG_FILE).is_file()
        i = log.record(
            kind="ask",
            question="How?",
            answer="Like this [1].",
            model="m",
            collection="docs",
            rewordings=["how so"],
            chunks=[{"id": "c1", "source": "a.md", "heading": "A"}],
            input_tokens=10,
            output_tokens=5,
            cost=0.001,
            latency_s=1.5,
            config_hash="h",
        )
        assert len(i) == 12
        a = log.get(i[:4].upper())  # any unique prefix of 4+, case-insensitive
        assert (a.id, a.rewordings, a.chunks[0]["source"], a.cost, a.latency_s) == (i, ["how so"], "a.md", 0.001, 1.5)
        with pytest.raises(NotFoundError) as ei:
            log.get(i[:3])  # too short to be a prefix: the hint says so
        assert "at least 4 characters" in ei.value.hint
        with pytest.raises(NotFoundError):
            log.get("0000000000zz")
        # two ids sharing a prefix: ambiguous
        log._tx(
            lambda db: db.execute(
                "INSERT INTO answers (id, created_at, kind, question, answer) VALUES "
                "('beef00000001', 1, 'ask', 'x', 'y'), ('beef00000002', 2, 'ask', 'x', 'y')"
            )
        )
        with pytest.raises(UsageError, match="ambiguous"):
            log.get("beef")


def test_recent_is_newest_first_and_filters_by_kind(tmp_path):
    with AnswerLog(tmp_path / "l.sqlite") as log:
        ids = [
            log.record(kind=k, question=f"q{n}", answer="a", created_at=100.0 + n)
            for n, k in enumerate(["ask", "eval", "ask"])
        ]
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
        assert [(r.rating, r.answer_id) for r in log.ratings(origin, with_cached_copies=True)] == [
            (1, origin),
            (-1, copy),
        ]
        with pytest.raises(UsageError):
            log.rate(origin, 0)


def test_one_vote_per_rater_the_latest_wins(tmp_path):
    with AnswerLog(tmp_path / "l.sqlite") as log:
        flip, twice, two = (log.record(kind="ask", question=f"q{n}", answer="a", collection="docs") for n in range(3))
        log.rate(flip, 1, rater="ann")
        log.rate(flip, -1, rater="ann")  # changed her mind: one down vote, not a balance of 0
        log.rate(twice, 1, rater="ann")
        log.rate(twice, 1, rater="ann")  # the same vote again: still one
        log.rate(two, 1, rater="ann")
        log.rate(two, -1, rater="bob")
        flags = log.summary_flags([flip, twice, two])
        assert flags[flip]["votes"] == {"up": 0, "down": 1} and flags[flip]["rating"] == -1
        assert flags[twice]["votes"] == {"up": 1, "down": 0} and flags[twice]["rating"] == 1
        assert flags[two]["votes"] == {"up": 1, "down": 1} and flags[two]["rating"] == 0
        # the log keeps every rating (history show lists them); the votes are derived
        assert [(r.rating, r.rater) for r in log.ratings(flip)] == [(1, "ann"), (-1, "ann")]
        assert [(r.rating, r.rater) for r in latest_votes(log.ratings(flip))] == [(-1, "ann")]


def test_a_v4_log_with_ratings_opens_and_its_ratings_count_as_one_unknown_rater(tmp_path):
    path = tmp_path / "v4.sqlite"
    legacy_log(path, versions=4)
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO answers (id, created_at, kind, question, answer) VALUES ('abcdef012345', 1.0, 'ask', 'q?', 'a.')"
    )
    db.executemany(
        "INSERT INTO ratings (answer_id, rating, comment, created_at) VALUES ('abcdef012345', ?, NULL, ?)",
        [(1, 2.0), (1, 3.0)],
    )
    db.commit()
    db.close()
    with AnswerLog(path) as log:
        assert log.schema_version() == len(MIGRATIONS)
        assert [(r.rating, r.rater) for r in log.ratings("abcdef012345")] == [(1, None), (1, None)]
        assert log.summary_flags(["abcdef012345"])["abcdef012345"]["votes"] == {"up": 1, "down": 0}
        log.rate("abcdef012345", -1, rater="ann")  # a named rater is another vote
        assert log.summary_flags(["abcdef012345"])["abcdef012345"]["votes"] == {"up": 1, "down": 1}


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
    i = record_llm_call(
        tmp_path, kind="eval", prompt="Is it?", response="Yes", model="m", input_tokens=3, output_tokens=1, cost=0.5
    )
    with AnswerLog.for_data_dir(tmp_path) as log:
        a = log.get(i)
        assert (a.kind, a.question, a.answer, a.cost) == ("eval", "Is it?", "Yes", 0.5)

        inner = ScriptedLLM(model="fake/m").enqueue("one", "two")
        llm = RecordingLLM(inner, log, kind="batch")
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "row 1"}]
        assert llm.complete(msgs).text == "one"
        assert asyncio.run(llm.acomplete([{"role": "user", "content": "row 2"}])).text == "two"
        rows = {r.question: r for r in log.recent(kind="batch", limit=10)}
        assert (
            set(rows) == {"row 1", "row 2"}
            and rows["row 1"].answer == "one"
            and rows["row 1"].extra == {"system": "Be brief."}
        )
        assert rows["row 1"].model == "fake/m" and len(llm.recorded) == 2


def test_answer_config_hash_follows_the_answer_shaping_settings_not_secrets():
    from llmops_cli.settings import load_settings

    def h(env):
        return answer_config_hash(load_settings(None, environ=env).settings)

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
            _ = llm.no_such_thing
