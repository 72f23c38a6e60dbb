"""Operating runs on a real Airflow 3.3: a cancelled run, a deleted run, notes, runs across DAGs, XComs, undeclared
params and a paused DAG's queued run on the session's ``airflow_server``; backfills, and docs/ci.md's CI script, on the
session's ``celery_airflow``, whose metadata database is PostgreSQL: on SQLite, Airflow answers a backfill created
while the scheduler writes with 503 "Database is locked", after deleting the runs it had made, which the scheduler
may have loaded already; it then dies (ObjectDeletedError) and every later run of the session stays queued."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_airflow_cli import llmops, ok_json

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]


@contextlib.contextmanager
def unpaused(srv, *dag_ids: str):
    """The DAGs unpaused for the test (the Celery Airflow creates them paused), paused again after it; a scheduled
    run made meanwhile and not started is cancelled, so it cannot start later under another test."""
    for d in dag_ids:
        assert llmops(srv, "dags", "unpause", d).returncode == 0
    try:
        yield
    finally:
        for d in dag_ids:
            llmops(srv, "dags", "pause", d)
            for run in ok_json(srv, "runs", "list", d, "--state", "queued", "--limit", "100"):
                if run["run_type"] == "scheduled":
                    llmops(srv, "runs", "cancel", d, run["run_id"], "--yes")


def test_a_backfill_over_three_logical_dates_finishes_with_exit_0(celery_airflow):
    srv = celery_airflow
    with unpaused(srv, "llmops_test_daily"):
        _backfill_three_dates(srv)


def _backfill_three_dates(srv) -> None:
    span = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-03T00:00:00Z")
    preview = ok_json(srv, "backfill", "create", "llmops_test_daily", *span, "--dry-run")
    assert [d[:10] for d in preview["logical_dates"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert not ok_json(srv, "backfill", "list", "llmops_test_daily")  # a dry run creates nothing

    r = llmops(
        srv,
        "backfill",
        "create",
        "llmops_test_daily",
        *span,
        "--max-active-runs",
        "3",
        "--wait",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["state"] == "success" and [x["state"] for x in doc["runs"]] == ["success"] * 3
    assert "backfill" in r.stderr  # the plain progress lines (stderr is not a terminal)
    bid = doc["backfill_id"]
    # what each run produced, through XCom: the task's return value is its logical date
    first = doc["runs"][0]["run_id"]
    assert ok_json(srv, "xcom", "get", "llmops_test_daily", first, "stamp")["value"] == "2026-01-01"

    listed = ok_json(srv, "backfill", "list", "llmops_test_daily")
    assert [b["id"] for b in listed] == [bid]
    got = ok_json(srv, "backfill", "get", str(bid))
    assert got["dag_id"] == "llmops_test_daily" and len(got["runs"]) == 3
    # the same dates again: nothing to do (each has a run), unless told to rerun them
    again = llmops(srv, "backfill", "create", "llmops_test_daily", *span, "--wait")
    assert again.returncode == 0 and "nothing to backfill" in again.stderr


def test_a_paused_backfill_is_said_to_be_paused_and_a_cancelled_one_fails_its_queued_runs(celery_airflow):
    srv = celery_airflow
    with unpaused(srv, "llmops_test_daily_b"):
        _pause_and_cancel_a_backfill(srv)


def _pause_and_cancel_a_backfill(srv) -> None:
    span = ("--from", "2026-02-01T00:00:00Z", "--to", "2026-02-03T00:00:00Z")
    made = ok_json(srv, "backfill", "create", "llmops_test_daily_b", *span, "--max-active-runs", "1")
    bid = str(made["id"])
    assert ok_json(srv, "backfill", "pause", bid)["is_paused"]
    start = time.monotonic()
    r = llmops(srv, "backfill", "get", bid, "--wait", "--timeout", "60")
    assert r.returncode == 2 and f"backfill unpause {bid}" in r.stderr, r.stderr
    assert time.monotonic() - start < 15
    assert not ok_json(srv, "backfill", "unpause", bid)["is_paused"]
    assert ok_json(srv, "backfill", "pause", bid)["is_paused"]
    # one run at a time, each 20 s, and a new one starts only while unpaused (a few seconds): the last is still
    # queued when the cancel comes
    assert ok_json(srv, "backfill", "cancel", bid)["completed_at"]
    r = llmops(srv, "backfill", "get", bid, "--wait", "--timeout", "120", "--json")
    assert r.returncode == 5, r.stderr
    runs = json.loads(r.stdout)["runs"]
    assert len(runs) == 3 and runs[-1]["state"] == "failed" and "run(s) failed" in r.stderr


def test_cancel_stops_a_running_run_and_delete_removes_it(airflow_server):
    srv = airflow_server
    run = ok_json(srv, "trigger-dag", "llmops_test_slow", "-p", "seconds=120", "--note", "to be cancelled")
    rid = run["run_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # cancel what is really running, not a queued run
        tis = ok_json(srv, "tasks", "list", "llmops_test_slow", rid)
        if any(t["state"] == "running" for t in tis):
            break
        time.sleep(1)
    else:
        pytest.fail("the slow task never started")
    assert all(t["run_id"] == rid for t in tis)

    r = llmops(srv, "runs", "cancel", "llmops_test_slow", rid)
    assert r.returncode == 2 and "--yes" in r.stderr  # not a terminal: nothing cancelled without --yes
    preview = ok_json(srv, "runs", "cancel", "llmops_test_slow", rid, "--dry-run")
    assert [t["task_id"] for t in preview["task_instances"]] == ["sleep"] and not preview["cancelled"]
    start = time.monotonic()
    done = ok_json(srv, "runs", "cancel", "llmops_test_slow", rid, "--yes")
    assert done["cancelled"] and done["run"]["state"] == "failed"
    # the running task is stopped, not left to finish its 120 s
    wait = llmops(srv, "runs", "wait", "llmops_test_slow", rid, "--timeout", "60")
    assert wait.returncode == 5, wait.stderr
    assert time.monotonic() - start < 60
    state = {t["task_id"]: t["state"] for t in ok_json(srv, "tasks", "list", "llmops_test_slow", rid)}
    assert state["sleep"] == "failed"

    noted = ok_json(srv, "runs", "note", "llmops_test_slow", rid, "cancelled by CI")
    assert noted["note"] == "cancelled by CI" and noted["run_id"] == rid

    assert llmops(srv, "runs", "delete", "llmops_test_slow", rid).returncode == 2  # needs --yes
    assert ok_json(srv, "runs", "delete", "llmops_test_slow", rid, "--yes")["deleted"]
    gone = llmops(srv, "runs", "get", "llmops_test_slow", rid)
    assert gone.returncode == 9 and "runs list llmops_test_slow" in gone.stderr


def test_runs_list_across_dags_between_dates_and_by_state(airflow_server):
    srv = airflow_server
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    ran = ok_json(srv, "trigger-dag", "llmops_test_params", "-p", "n=2", "--wait", "--timeout", "120")
    runs = ok_json(srv, "runs", "list", "--since", since, "--state", "success", "--limit", "100")
    assert (ran["dag_id"], ran["run_id"]) in {(x["dag_id"], x["run_id"]) for x in runs}
    assert all(x["state"] == "success" for x in runs)
    assert not ok_json(srv, "runs", "list", "--until", "2000-01-01T00:00:00Z")
    human = llmops(srv, "runs", "list", "--since", since)
    assert human.returncode == 0 and "llmops_test_params" in human.stdout


def test_an_undeclared_param_is_refused_before_a_run_exists(airflow_server):
    srv = airflow_server
    before = len(ok_json(srv, "runs", "list", "llmops_test_slow", "--limit", "200"))
    r = llmops(srv, "trigger-dag", "llmops_test_slow", "-p", "secnds=0")
    assert r.returncode == 2, r.stderr
    assert "'secnds' (did you mean 'seconds'?)" in r.stderr and "its params: seconds" in r.stderr
    assert "--allow-unknown-params" in r.stderr
    assert len(ok_json(srv, "runs", "list", "llmops_test_slow", "--limit", "200")) == before
    r = llmops(srv, "trigger-dag", "llmops_test_params", "-p", "m=3", "--allow-unknown-params", "--wait")
    assert r.returncode == 0, r.stderr


def test_runs_wait_on_a_queued_run_of_a_paused_dag_says_so(airflow_server):
    srv = airflow_server
    assert llmops(srv, "dags", "pause", "llmops_test_quick").returncode == 0
    try:
        run = ok_json(srv, "trigger-dag", "llmops_test_quick")  # without --wait: created, and stays queued
        start = time.monotonic()
        r = llmops(srv, "runs", "wait", "llmops_test_quick", run["run_id"], "--timeout", "60")
        assert r.returncode == 2, r.stderr
        assert "is paused" in r.stderr and "dags unpause llmops_test_quick" in r.stderr
        assert time.monotonic() - start < 15
    finally:
        llmops(srv, "dags", "unpause", "llmops_test_quick")


def docs_block(section: str) -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    part = text[text.index(section) :]
    m = re.search(r"```bash\n(.*?)```", part, re.S)
    assert m, f"no bash block in docs/ci.md's {section!r}"
    return m.group(1)


def test_docs_ci_runs_block_runs_as_written(celery_airflow, tmp_path):
    srv = celery_airflow
    with unpaused(srv, "llmops_eval", "llmops_feedback", "llmops_batch_inference"):
        _run_docs_block(srv, tmp_path)


def _run_docs_block(srv, tmp_path) -> None:
    script = docs_block("## Trigger, read the results, backfill and stop runs")
    for needed in ("trigger-dag llmops_ingest", "runs get", "xcom get", "backfill create", "runs cancel", "runs note"):
        assert needed in script
    work = tmp_path / "job"
    (work / "kb").mkdir(parents=True)
    (work / "kb" / "retries.md").write_text("# Retries\n\nSet `retries=3` on a task to retry it three times.\n" * 20)
    rows = work / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "q": f"question {i}"}) + "\n" for i in range(4)))
    conf = {"input": str(rows), "prompt": "Answer: {q}", "output": str(work / "answers.jsonl"), "id_column": "id"}
    (work / "batch.json").write_text(json.dumps(conf))
    env = {**srv.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"the docs/ci.md block failed (exit {r.returncode}):\n{out[-6000:]}"
    assert "Traceback" not in out and srv.server.password not in out
    ingest = json.loads((work / "ingest.json").read_text())
    assert ingest["outcome"]["summary"]["chunks_added"] > 0
    assert '"status": "ok"' in r.stdout  # xcom get of the llmops_outcome key
    backfill = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith('[{"run_id"')))
    assert len(backfill) == 3 and all(b["state"] == "success" and b["reviewed"] == 0 for b in backfill)
    runs = ok_json(srv, "runs", "list", "llmops_ingest", "--limit", "5")
    assert runs[0]["note"] == "ingested by CI job local"
    left = ok_json(srv, "runs", "list", "llmops_batch_inference", "--limit", "200")
    assert all(x["conf"].get("input") != str(rows) for x in left)  # cancelled, then deleted
