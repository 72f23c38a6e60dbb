"""The llmops_batch_inference DAG with ``via=provider`` on the session's real Airflow 3, against the tasks' local
OpenAI-compatible server (its /v1/files and /v1/batches): submit, a ``wait`` sensor in reschedule mode whose first
try fails (the server answers its status query with a 400, which the client does not retry) and is retried, collect.
The retried wait polls the recorded job: the server counts one job created, and the results hold every input row."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.integration.test_airflow_cli import llmops, ok_json

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]
FAULT = "planned fault: the first status query of the batch"


def _fail_next_status_query(srv) -> None:
    base = srv.env["LLMOPS_LLM_API_BASE"].removesuffix("/v1")
    body = json.dumps({"kind": "400", "n": 1, "message": FAULT}).encode()
    req = urllib.request.Request(
        f"{base}/_faults/batch-status", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["queued"] == 1


def _jobs_created(srv) -> int:
    """The tasks' LLM server runs in another process: its counters come from GET /_stats."""
    base = srv.env["LLMOPS_LLM_API_BASE"].removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/_stats", timeout=10) as r:
        return int(json.loads(r.read())["counters"].get("batches_created", 0))


def test_provider_batch_dag_waits_rescheduling_and_a_retried_wait_resumes_the_one_job(airflow_server, tmp_path):
    srv = airflow_server
    n = 6
    src = tmp_path / "questions.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "q": f"question {i}"}) + "\n" for i in range(n)))
    out = tmp_path / "answers.jsonl"
    conf = {
        "input": str(src),
        "output": str(out),
        "prompt": "Answer: {q}",
        "id_column": "id",
        "via": "provider",
    }
    env = {**srv.env, "LLMOPS_AIRFLOW_TIMEOUT": "60"}  # a busy 2-core machine: the API server may answer slowly
    before = _jobs_created(srv)
    _fail_next_status_query(srv)  # submit creates the job without a status query: wait's first poke gets it
    doc = ok_json(
        srv,
        "trigger-dag",
        "llmops_batch_inference",
        "--conf",
        json.dumps(conf),
        "--wait",
        "--timeout",
        "300",
        env=env,
    )
    assert doc["state"] == "success", doc
    states = {t["task_id"]: t["states"] for t in doc["tasks"]}
    assert all(states[t] == {"success": 1} for t in ("submit", "wait", "collect")), doc["tasks"]
    assert states["plan"] == states["merge"] == {"skipped": 1}, doc["tasks"]  # the online path's tasks
    assert _jobs_created(srv) - before == 1  # the retried wait resumed the recorded job: no second one

    # wait's first try failed on the planned fault, its retry finished the wait
    logs = llmops(srv, "logs", "llmops_batch_inference", doc["run_id"], "wait", "--try", "1", env=env)
    assert logs.returncode == 0 and FAULT in logs.stdout, logs.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(n)]
    assert all(r["llmops_status"] == "ok" and r["llmops_response"] for r in rows)
    assert (tmp_path / "answers.errors.jsonl").read_text() == ""
