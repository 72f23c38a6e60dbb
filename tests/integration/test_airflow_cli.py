"""The Airflow control plane against a real Airflow 3.3 on 127.0.0.1: every command as a subprocess.

One server per session (the ``airflow_server`` fixture). Each command must exit with its documented code and
never print a traceback or the password.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAIL_MARKER = "LLMOPS-TEST-FAILURE-MARKER"  # printed by llmops_test_fail (tests/integration/airflow_dags)
pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / ".." / "shared" / "corpora" / "airflow-docs").resolve()


def _llmops_cmd() -> list[str]:
    script = Path(sys.executable).parent / "llmops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]


def llmops(srv, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [*_llmops_cmd(), *args],
        env=env or srv.env,
        cwd=srv.home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    both = r.stdout + r.stderr
    assert "Traceback" not in both, both
    assert srv.server.password not in both, "the password was printed"
    return r


def ok_json(srv, *args: str, **kw):
    r = llmops(srv, *args, "--json", **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_dags_list_shows_the_shipped_dags_without_import_errors(airflow_server):
    r = llmops(airflow_server, "dags", "list", "--json")
    assert r.returncode == 0 and "does not import" not in r.stderr, (
        r.stderr
    )  # no DAG file (ours or a test one) is broken
    dags = {d["dag_id"]: d for d in json.loads(r.stdout)}
    for dag_id in ("llmops_ingest", "llmops_eval", "llmops_batch_inference"):
        assert dag_id in dags
        assert not dags[dag_id]["has_import_errors"]
        assert not dags[dag_id]["is_paused"]
    shown = ok_json(airflow_server, "dags", "show", "llmops_ingest")
    assert {"sources", "collection", "chunk_size", "cleanup"} <= set(shown["params"])
    assert any(t["task_id"] == "ingest_shard" and t.get("is_mapped") for t in shown["tasks"])
    path = ok_json(airflow_server, "dags", "path")
    assert Path(path["path"], "llmops_ingest.py").is_file()


def test_trigger_wait_success_lists_mapped_instances_and_their_logs(airflow_server):
    srv = airflow_server
    doc = ok_json(srv, "trigger-dag", "llmops_test_quick", "--wait", "--timeout", "120", "--note", "from the tests")
    assert doc["state"] == "success" and not doc["failed_tasks"]
    square = next(t for t in doc["tasks"] if t["task_id"] == "square")
    assert square["mapped"] and square["total"] == 4 and square["states"] == {"success": 4}
    run_id = doc["run_id"]

    tis = ok_json(srv, "tasks", "list", "llmops_test_quick", run_id)
    assert sorted(t["map_index"] for t in tis if t["task_id"] == "square") == [0, 1, 2, 3]

    log = ok_json(srv, "logs", "llmops_test_quick", run_id, "square", "--map-index", "2")
    assert any("squaring 3" in str(e.get("event")) for e in log["events"])
    human = llmops(srv, "logs", "llmops_test_quick", run_id, "total")
    assert human.returncode == 0 and "total 30" in human.stdout

    runs = ok_json(srv, "runs", "list", "llmops_test_quick", "--state", "success")
    assert run_id in [r["run_id"] for r in runs]
    got = ok_json(srv, "runs", "get", "llmops_test_quick", run_id)
    assert got["state"] == "success" and got["note"] == "from the tests"
    again = ok_json(srv, "runs", "wait", "llmops_test_quick", run_id)
    assert again["state"] == "success"


def test_failed_run_exits_5_names_the_task_and_shows_its_log_then_clear_reruns_it(airflow_server):
    srv = airflow_server
    r = llmops(srv, "trigger-dag", "llmops_test_fail", "--wait", "--timeout", "120")
    assert r.returncode == 5, r.stderr
    assert "work [map index 1]" in r.stderr and "try 1" in r.stderr
    assert FAIL_MARKER in r.stderr  # the tail of the failing task's log
    run_id = r.stdout.strip().splitlines()[0]

    preview = ok_json(srv, "runs", "clear", "llmops_test_fail", run_id, "--dry-run")
    assert not preview["cleared"]
    assert [(t["task_id"], t["map_index"]) for t in preview["task_instances"] if t["task_id"] == "work"] == [
        ("work", 1)
    ]
    no_yes = llmops(srv, "runs", "clear", "llmops_test_fail", run_id)
    assert no_yes.returncode == 2 and "--yes" in no_yes.stderr  # not a terminal: no silent clear
    cleared = ok_json(srv, "runs", "clear", "llmops_test_fail", run_id, "--yes")
    assert cleared["cleared"]
    r2 = llmops(srv, "runs", "wait", "llmops_test_fail", run_id, "--timeout", "120")
    assert r2.returncode == 5 and "try 2" in r2.stderr


def test_bad_conf_is_rejected_with_the_servers_message(airflow_server):
    r = llmops(airflow_server, "trigger-dag", "llmops_test_params", "-p", "n=50")
    assert r.returncode == 2
    assert "param n" in r.stderr and "maximum" in r.stderr
    r = llmops(
        airflow_server, "trigger-dag", "llmops_ingest", "--conf", json.dumps({"sources": [], "cleanup": "sometimes"})
    )
    assert r.returncode == 2 and "Invalid input for param" in r.stderr


def test_wrong_password_unknown_dag_existing_run_id_unreachable(airflow_server):
    srv = airflow_server
    bad = dict(srv.env, LLMOPS_AIRFLOW_PASSWORD="not-the-password")
    r = llmops(srv, "dags", "list", env=bad)
    assert r.returncode == 8 and "rejected the credentials" in r.stderr and "not-the-password" not in r.stderr

    r = llmops(srv, "trigger-dag", "no_such_dag")
    assert r.returncode == 9 and "llmops dags list" in r.stderr

    rid = f"fixed-{time.time_ns()}"
    assert llmops(srv, "trigger-dag", "llmops_test_params", "--run-id", rid).returncode == 0
    r = llmops(srv, "trigger-dag", "llmops_test_params", "--run-id", rid)
    assert r.returncode == 10 and rid in r.stderr

    down = dict(srv.env, LLMOPS_AIRFLOW_URL="http://127.0.0.1:9")
    r = llmops(srv, "dags", "list", env=down)
    assert r.returncode == 7 and "is the API server running at http://127.0.0.1:9" in r.stderr


def test_timeout_exits_6(airflow_server):
    r = llmops(airflow_server, "trigger-dag", "llmops_test_slow", "-p", "seconds=5", "--wait", "--timeout", "1")
    assert r.returncode == 6, r.stderr
    assert "runs wait" in r.stderr


def test_asset_event_starts_the_scheduled_dag(airflow_server):
    srv = airflow_server
    before = len(ok_json(srv, "runs", "list", "llmops_test_asset_consumer"))
    ev = ok_json(srv, "assets", "event", "llmops://test/ci-signal", "--extra", '{"by": "ci"}')
    assert ev["extra"].get("by") == "ci"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(ok_json(srv, "runs", "list", "llmops_test_asset_consumer")) > before:
            break
        time.sleep(1)
    else:
        pytest.fail("the asset event did not start llmops_test_asset_consumer")
    r = llmops(srv, "assets", "event", "llmops://test/no-such-asset")
    assert r.returncode == 9


def test_wait_survives_an_api_server_restart(airflow_server):
    from llmops_cli.devstack.airflow import restart_component

    srv = airflow_server
    run = ok_json(srv, "trigger-dag", "llmops_test_slow", "-p", "seconds=12")
    waiter = subprocess.Popen(
        [*_llmops_cmd(), "runs", "wait", "llmops_test_slow", run["run_id"], "--timeout", "180"],
        env=srv.env,
        cwd=srv.home.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = waiter.stderr.readline()  # the waiter is polling: now take the API server away under it
    assert "running" in first or "queued" in first, first
    restart_component(srv.home, "api-server", down_s=4)
    out, err = waiter.communicate(timeout=200)
    err = first + err
    assert "Traceback" not in out + err
    assert "API server unreachable, still waiting" in err
    assert "reachable again" in err
    # the waiter outlives the outage and reports the run's real verdict. (The running task itself may fail:
    # Airflow 3 tasks report to the execution API on the same server; that is Airflow's call, not the waiter's.)
    final = ok_json(srv, "runs", "get", "llmops_test_slow", run["run_id"])
    assert final["state"] in ("success", "failed")
    assert waiter.returncode == (0 if final["state"] == "success" else 5), err


@pytest.mark.corpus
def test_ingest_dag_writes_the_store_that_llmops_query_reads(airflow_server, tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent")
    srv = airflow_server
    conf = {"sources": [str(CORPUS)], "collection": "airflow-docs-dag", "shards": 3, "cleanup": "full"}
    doc = ok_json(
        srv, "trigger-dag", "llmops_ingest", "--conf", json.dumps(conf), "--wait", "--timeout", "780", timeout=800
    )
    assert doc["state"] == "success", doc
    shards = next(t for t in doc["tasks"] if t["task_id"] == "ingest_shard")
    assert shards["mapped"] and shards["total"] == 3 and shards["states"] == {"success": 3}

    tis = ok_json(srv, "tasks", "list", "llmops_ingest", doc["run_id"])
    assert sorted(t["map_index"] for t in tis if t["task_id"] == "ingest_shard") == [0, 1, 2]

    hits = ok_json(srv, "query", "How do I set the number of retries of a task?", "--collection", "airflow-docs-dag")[
        "hits"
    ]
    assert hits, "no hits from the collection the DAG wrote"
    assert any("retr" in h["text"].lower() for h in hits)

    # finalize emitted the collection's asset (through the alias), so it is registered and CI can signal it
    ev = ok_json(srv, "assets", "event", "llmops://collections/airflow-docs-dag")
    assert (
        ev["asset_id"]
        and ev.get("uri", "llmops://collections/airflow-docs-dag") == "llmops://collections/airflow-docs-dag"
    )

    # the eval DAG on that collection: summary in XCom, report file in the data dir
    q = ["How do I set the number of retries of a task?", "What is dynamic task mapping?"]
    ev = ok_json(
        srv,
        "trigger-dag",
        "llmops_eval",
        "--conf",
        json.dumps({"collection": "airflow-docs-dag", "questions": q}),
        "--wait",
        "--timeout",
        "300",
    )
    assert ev["state"] == "success", ev
    report = (
        srv.data_dir / "airflow-reports" / "llmops_eval" / (ev["run_id"].replace(":", "_").replace("+", "_") + ".json")
    )
    summary = json.loads(report.read_text())
    assert summary["collection"] == "airflow-docs-dag" and summary["questions"] == 2 and summary["hit_rate"] == 1.0

    # with a question set: the full evaluation (the same as `llmops eval`); an unmet gate fails the run (exit 5)
    dataset = tmp_path / "questions.jsonl"
    dataset.write_text(
        json.dumps(
            {
                "question": "How does dynamic task mapping expand a task over a list?",
                "relevant_sources": ["airflow-docs/authoring-and-scheduling/dynamic-task-mapping.rst"],
            }
        )
        + "\n"
        # a question no document answers: hit@5 = 0.5, so a 0.9 gate fails (a gate over 1 is refused up front)
        + json.dumps({"question": "What is the capital of France?", "relevant_sources": ["no-such-page.rst"]})
        + "\n"
    )
    conf = {"collection": "airflow-docs-dag", "dataset": str(dataset), "metrics": ["retrieval"]}
    ev = ok_json(srv, "trigger-dag", "llmops_eval", "--conf", json.dumps(conf), "--wait", "--timeout", "300")
    assert ev["state"] == "success", ev
    r = llmops(srv, "trigger-dag", "llmops_eval", "--conf", json.dumps({**conf, "fail_under": ["hit@5=0.9"]}), "--wait")
    assert r.returncode == 5 and "quality gate(s) failed: hit@5" in r.stderr, r.stderr


def test_batch_inference_dag_maps_over_shards_of_the_table(airflow_server, tmp_path):
    srv = airflow_server
    src = tmp_path / "questions.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "q": f"question {i}"}) + "\n" for i in range(12)))
    out = tmp_path / "answers.jsonl"
    conf = {"input": str(src), "prompt": "Answer: {q}", "shards": 3, "output": str(out), "id_column": "id"}
    doc = ok_json(
        srv, "trigger-dag", "llmops_batch_inference", "--conf", json.dumps(conf), "--wait", "--timeout", "300"
    )
    assert doc["state"] == "success", doc
    shards = next(t for t in doc["tasks"] if t["task_id"] == "run_shard")
    assert shards["mapped"] and shards["states"] == {"success": shards["total"]} and shards["total"] >= 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(12))


def test_logs_follow_streams_a_running_task_to_its_end(airflow_server):
    srv = airflow_server
    run = ok_json(srv, "trigger-dag", "llmops_test_slow", "-p", "seconds=4")
    r = llmops(srv, "logs", "llmops_test_slow", run["run_id"], "sleep", "--follow", timeout=180)
    assert r.returncode == 0, r.stderr
    assert all(f"tick {i}" in r.stdout for i in range(4))
