"""The llmops_insights DAG on a real Airflow 3 (loopback): from answers in the tasks' answer log, one triggered run
writes the questions and sources analyses (JSON and the HTML page) under the workers' data_dir and publishes them
under the run's ``output`` folder; the sources rank as the votes say."""

from __future__ import annotations

import json
import re
import time

import pytest

from llmops_cli.core.feedback.log import AnswerLog
from tests.integration.test_feedback_dag import ok_json

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]

COLLECTION = "insights-dag"  # the run's filter: other tests' answers share this answer log
TOPICS = {
    "pool": ["how many slots does a pool have", "limit tasks with a pool", "pool slots for one dag"],
    "cron": ["cron schedule for a dag", "run a dag every hour with cron", "cron timetable syntax"],
}


def test_insights_dag_refreshes_the_analyses_into_the_shared_folders(airflow_server, tmp_path):
    srv = airflow_server
    cwd = srv.home.parent
    log = AnswerLog.for_data_dir(srv.data_dir)
    try:
        for topic, questions in TOPICS.items():
            for q in questions:
                aid = log.record(
                    kind="ask", question=q, answer="So [1].", collection=COLLECTION, chunks=[{"source": f"{topic}.md"}]
                )
                log.rate(aid, 1 if topic == "pool" else -1, rater="tester")
    finally:
        log.close()
    deadline = time.monotonic() + 120
    while not any(d["dag_id"] == "llmops_insights" for d in ok_json(srv.env, cwd, "dags", "list")):
        assert time.monotonic() < deadline, "llmops_insights was not parsed"
        time.sleep(2)

    out = tmp_path / "published"
    conf = {"collection": COLLECTION, "clusters": 2, "since": "1d", "output": str(out)}
    doc = ok_json(
        srv.env, cwd, "trigger-dag", "llmops_insights", "--conf", json.dumps(conf), "--wait", "--timeout", "300"
    )
    assert doc["state"] == "success", doc
    run = re.sub(r"[^A-Za-z0-9._-]+", "_", doc["run_id"])
    folder = srv.data_dir / "insights" / run
    sources = json.loads((folder / "sources.json").read_text())
    assert [s["source"] for s in sources["sources"]] == ["pool.md", "cron.md"] and sources["answers"] == 6
    questions = json.loads((folder / "questions.json").read_text())
    assert questions["questions"] == 6 and len(questions["clusters"]) == 2
    groups = sorted(sorted(c["question_ids"]) for c in questions["clusters"])
    assert len(groups[0]) == len(groups[1]) == 3  # the two planted topics
    for name in ("questions.json", "questions.html", "sources.json"):
        assert (out / run / name).read_bytes() == (folder / name).read_bytes()
    report = json.loads((srv.data_dir / "airflow-reports" / "llmops_insights" / f"{run}.json").read_text())
    assert report["sources"] == 2 and report["gaps"] == questions["gaps"]
