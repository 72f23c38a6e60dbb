"""The llmops_insights DAG's task without Airflow (``entry.insights.scheduled_refresh``): from a planted answer log it
writes the same documents `llmops insights questions|sources --json` print (and the HTML page) under the workers'
data_dir and, with ``output``, under <output>/<run_id>/, never replacing an earlier run's; a relative output is
refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_cli.entry import dag_support
from llmops_cli.entry import insights as insights_entry
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeWorkspace

TOPICS = {
    "pool": ["how many slots does a pool have", "limit tasks with a pool", "pool slots for one dag"],
    "cron": ["cron schedule for a dag", "run a dag every hour with cron", "cron timetable syntax"],
}


@pytest.fixture
def planted(tmp_path, monkeypatch):
    settings = load_settings(
        environ={}, cwd=tmp_path, flags={"data_dir": str(tmp_path / "shared" / "state"), "tracing.enabled": False}
    ).settings
    # the task's workspace: the worker's settings, with the fake embedder (no model in a unit test)
    monkeypatch.setattr(dag_support, "task_workspace", lambda params, **kw: FakeWorkspace(settings))
    with FakeWorkspace(settings) as ws:
        log = ws.answer_log()
        for topic, qs in TOPICS.items():
            for i in range(6):
                src = f"docs/{topic}.md"
                aid = log.record(
                    kind="ask", question=qs[i % 3], answer="It is so [1].", collection="docs", chunks=[{"source": src}]
                )
                log.rate(aid, 1 if topic == "pool" else -1, rater=f"r{i}")
    return settings


def test_the_task_writes_what_the_commands_print_and_publishes_it(planted, tmp_path):
    out = tmp_path / "published"
    summary = insights_entry.scheduled_refresh(
        {"since": "30d", "clusters": 2, "output": out.as_uri()}, "scheduled__2026-11-26"
    )
    run = Path(planted.data_path) / "insights" / "scheduled__2026-11-26"
    with FakeWorkspace(planted) as ws:
        want_q = insights_entry.questions(ws, since=insights_entry.parse_since("30d"), clusters=2)
        want_s = insights_entry.sources(ws, since=insights_entry.parse_since("30d"))
    assert json.loads((run / "questions.json").read_text()) == json.loads(json.dumps(want_q))
    assert json.loads((run / "sources.json").read_text()) == json.loads(json.dumps(want_s))
    assert "<svg" in (run / "questions.html").read_text()
    assert summary["questions"] == 12 and summary["sources"] == 2 and summary["clusters"] == 2
    ranked = [s["source"] for s in want_s["sources"]]
    assert ranked == ["docs/pool.md", "docs/cron.md"]
    for name in ("questions.json", "questions.html", "sources.json"):
        assert (out / "scheduled__2026-11-26" / name).read_bytes() == (run / name).read_bytes()
    report = json.loads(Path(summary["report"]).read_text())
    assert Path(summary["report"]).parent == Path(planted.data_path) / "airflow-reports" / "llmops_insights"
    assert report["files"]["sources"] == str(run / "sources.json")
    # an earlier run's published files are never replaced by different ones
    (out / "scheduled__2026-11-27").mkdir()
    (out / "scheduled__2026-11-27" / "sources.json").write_text("{}")
    with pytest.raises(Exception, match="sources.json"):
        insights_entry.scheduled_refresh({"clusters": 2, "output": str(out)}, "scheduled__2026-11-27")


def test_a_relative_output_is_refused(planted):
    with pytest.raises(ValueError, match="param output"):
        insights_entry.scheduled_refresh({"output": "reports/insights"}, "manual__1")
