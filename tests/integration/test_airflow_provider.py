"""llmops inside a user's own DAG, on the session's real Airflow 3.3 (``airflow_server``): a DAG file written here
(tests/support/user_dag.py, never shipped) composes the operators, a TaskFlow decorator and the task groups of
``llmops_cli.airflow``: Markdown docs (ingest_group: plan -> mapped shards -> finalize) and GitHub issues passed as
records from an upstream task into one collection that only the ``llmops`` Airflow connection names, an eval group
with a gate that holds, a batch group over a small table, a temporary collection (setup/teardown); and a
gate that fails and a task whose connection does not exist: both fail on their first try although they have
retries. OpenLineage events (file transport, switched on for this test by restarting the scheduler with it)
carry each task's inputs and outputs. One DAG run for all of it: its branches run in parallel."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request

import pytest

from llmops_cli.devstack import airflow as local_airflow
from tests.integration.test_airflow_cli import llmops, ok_json
from tests.support.airflow_servers import TEST_DAGS
from tests.support.openai_server import TEST_API_KEY
from tests.support.user_dag import dag_source, write_inputs

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]
OL_ENV = "AIRFLOW__OPENLINEAGE__TRANSPORT"


def _api(af, method: str, path: str, body: dict) -> None:
    req = urllib.request.Request(
        f"{af.url}/api/v2/{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {local_airflow.token(af)}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=30):
        pass


def _set_scheduler_env(srv, key: str, value: str | None) -> None:
    """The LocalExecutor's tasks inherit the scheduler's environment: restart it with ``key`` set (None: unset)."""
    af = local_airflow.LocalAirflow.load(srv.home)
    if value is None:
        af.task_env.pop(key, None)
    else:
        af.task_env[key] = value
    af.save()
    local_airflow.restart_component(srv.home, "scheduler")


def _events(path) -> dict[str, dict]:
    """The COMPLETE/FAIL event of each task (job name without the DAG id) from the OpenLineage file transport."""
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        ev = json.loads(line)
        if ev.get("eventType") in ("COMPLETE", "FAIL") and "." in ev["job"]["name"]:
            dag_id, _, task = ev["job"]["name"].partition(".")
            out[f"{dag_id}/{task}"] = {
                "inputs": sorted((d["namespace"], d["name"]) for d in ev.get("inputs", [])),
                "outputs": sorted((d["namespace"], d["name"]) for d in ev.get("outputs", [])),
            }
    return out


def test_a_user_dag_composed_of_the_operators_runs_with_lineage_gates_and_no_retry_on_permanent_errors(
    airflow_server,
):
    srv = airflow_server
    af = srv.server
    tag = f"u{os.getpid()}"
    base = srv.project / f"userdag-{tag}"
    write_inputs(base)
    collection, conn_id = f"user-kb-{tag}", f"llmops_{tag}"
    # the llmops connection is the only place the collection is named; the password is the LLM key
    _api(
        af,
        "POST",
        "connections",
        {
            "connection_id": conn_id,
            "conn_type": "llmops",
            "password": TEST_API_KEY,
            "extra": json.dumps({"collection": collection, "settings": {"retrieval.k": 5}}),
        },
    )
    lineage_file = srv.home.parent / f"openlineage-{tag}.jsonl"
    dag_file = TEST_DAGS / f"llmops_test_user_{tag}.py"
    _set_scheduler_env(srv, OL_ENV, json.dumps({"type": "file", "log_file_path": str(lineage_file), "append": True}))
    try:
        dag_file.write_text(dag_source(base, prefix=tag, conn_id=conn_id, guard_home=str(srv.home)))
        local_airflow.wait_for_dags(af, [f"{tag}_pipeline"])
        local_airflow.unpause(af, [f"{tag}_pipeline"])
        run = llmops(srv, "trigger-dag", f"{tag}_pipeline", "--wait", "--timeout", "400", "--json", timeout=430)
        assert run.returncode == 5, run.stderr  # the two tasks meant to fail fail the run
        run_id = json.loads(run.stdout)["run_id"]
    finally:
        dag_file.unlink(missing_ok=True)
        _set_scheduler_env(srv, OL_ENV, None)

    # both source kinds are in the one collection the connection named
    cols = {c["name"]: c for c in ok_json(srv, "collections", "list")["collections"]}
    assert cols[collection]["chunks"] > 0 and f"{tag}-scratch" not in cols  # the teardown dropped the scratch one
    hits = ok_json(srv, "query", "scheduler heartbeat stops after failover", "--collection", collection)["hits"]
    assert "github-issues" in hits[0]["source"]
    hits = ok_json(srv, "query", "how do I retry a task", "--collection", collection)["hits"]
    assert hits[0]["source"].endswith("retries.md")
    # the eval report and the batch results were published where the DAG said
    (report,) = (base / "out").glob("eval-*.json")
    assert json.loads(report.read_text())["config"]["collection"] == collection
    (answers,) = [p for p in (base / "out").glob("answers-*.jsonl") if not p.name.endswith(".errors.jsonl")]
    assert len(answers.read_text().splitlines()) == 4

    tis = {}
    for t in local_airflow.task_placements(af, f"{tag}_pipeline", run_id):
        tis.setdefault(t["task_id"], []).append(t)
    failed = {task for task, ts in tis.items() if any(t["state"] != "success" for t in ts)}
    assert failed == {"impossible_gate", "no_such_connection"}, {k: [t["state"] for t in v] for k, v in tis.items()}
    assert len(tis["docs.ingest_shard"]) == 2 and len(tis["answers.run_shard"]) == 2  # mapped over 2 shards each
    # a failed gate and a missing connection are permanent: failed on the first try, though retries=2
    for task in ("impossible_gate", "no_such_connection"):
        assert [(t["state"], t["try_number"]) for t in tis[task]] == [("failed", 1)]

    # OpenLineage: sources -> collection, collection + dataset -> eval report, input table -> batch output
    events = _events(lineage_file)
    store = f"llmops://{srv.store_path}"
    p = f"{tag}_pipeline"
    assert events[f"{p}/docs.finalize"] == {"inputs": [("file", str(base / "docs"))], "outputs": [(store, collection)]}
    assert events[f"{p}/github_issues"] == {
        "inputs": [("llmops-records", "github-issues")],
        "outputs": [(store, collection)],
    }
    assert events[f"{p}/quality.evaluate"] == {
        "inputs": sorted([(store, collection), ("file", str(base / "golden.jsonl"))]),
        "outputs": [("file", str(report))],
    }
    assert events[f"{p}/answers.merge"] == {
        "inputs": [("file", str(base / "table.jsonl"))],
        "outputs": [("file", str(answers))],
    }
    assert events[f"{p}/impossible_gate"]["inputs"]  # a failed eval (its gate) reports its lineage too
