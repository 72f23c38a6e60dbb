"""What a DAG run's verdict means, against a real Airflow 3.3 on 127.0.0.1 (the session's ``airflow_server``):
partial outcomes of every llmops DAG (exit 3 through the DAG path, as the local command), all-failed outcomes,
missing sources, paused DAGs, rejected tokens."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_airflow_cli import llmops, ok_json

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]


def _write_kb(folder, *, broken: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "retries.md").write_text("# Retries\n\nSet `retries=3` on a task to retry it three times.\n" * 20)
    (folder / "pools.md").write_text("# Pools\n\nPools limit how many tasks run at once against a resource.\n" * 20)
    if broken:
        (folder / "broken.pdf").write_bytes(b"this is not a PDF at all")


def test_a_skipped_file_makes_the_ingest_run_partial(airflow_server):
    srv = airflow_server
    _write_kb(srv.project / "kb", broken=True)
    kb = json.dumps([str(srv.project / "kb")])
    r = llmops(
        srv,
        "trigger-dag",
        "llmops_ingest",
        "-p",
        f"sources={kb}",
        "-p",
        "collection=outcome-kb",
        "-p",
        "shards=2",
        "--wait",
        "--timeout",
        "300",
        "--json",
        timeout=330,
    )
    assert r.returncode == 3, r.stderr  # like `llmops ingest`: finished, some inputs skipped
    doc = json.loads(r.stdout)
    assert doc["state"] == "success" and doc["outcome"]["status"] == "partial"
    assert "broken.pdf" in doc["outcome"]["message"] and "broken.pdf" in r.stderr
    summary = doc["outcome"]["summary"]
    # the summary is the store's truth: every chunk of the run's sources is counted, and the collection holds them
    cols = {c["name"]: c for c in ok_json(srv, "collections", "list")["collections"]}
    assert summary["sources_in_store"] == 2 and summary["skipped"] == 1
    assert summary["chunks_added"] == summary["chunks"] == summary["chunks_total"] == cols["outcome-kb"]["chunks"] > 0
    assert ok_json(srv, "query", "how do I retry a task", "--collection", "outcome-kb")["hits"]

    # the same again: nothing new, and the summary says so (not a sum of what each shard did)
    (srv.project / "kb" / "broken.pdf").unlink()
    again = ok_json(
        srv,
        "trigger-dag",
        "llmops_ingest",
        "-p",
        f"sources={kb}",
        "-p",
        "collection=outcome-kb",
        "--wait",
        "--timeout",
        "300",
        timeout=330,
    )
    assert again["outcome"]["status"] == "ok"
    assert (
        again["outcome"]["summary"]["chunks_added"] == 0 and again["outcome"]["summary"]["chunks"] == summary["chunks"]
    )


def test_a_missing_source_fails_naming_the_path(airflow_server):
    srv = airflow_server
    missing = str(srv.project / "no-such-folder")
    r = llmops(
        srv, "trigger-dag", "llmops_ingest", "-p", f"sources={json.dumps([missing])}", "--wait", "--timeout", "120"
    )
    assert r.returncode == 5, r.stderr
    assert missing in r.stderr and "not found" in r.stderr


def test_a_batch_run_where_every_row_failed_fails_and_keeps_the_good_results(airflow_server, tmp_path):
    srv = airflow_server
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "q": f"question {i}"}) + "\n" for i in range(6)))
    out = tmp_path / "rows.results.jsonl"
    conf = {"input": str(src), "prompt": "Answer: {q}", "shards": 2, "output": str(out), "id_column": "id"}
    good = ok_json(
        srv, "trigger-dag", "llmops_batch_inference", "--conf", json.dumps(conf), "--wait", "--timeout", "300"
    )
    assert good["state"] == "success" and good["outcome"]["status"] == "ok"
    before = out.read_text()
    # every answer fails validation: the test LLM answers "reply-<hash>", never the JSON the schema asks for
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]})
    )
    bad = {**conf, "schema": str(schema), "max_attempts": 1}
    r = llmops(srv, "trigger-dag", "llmops_batch_inference", "--conf", json.dumps(bad), "--wait", "--timeout", "300")
    assert r.returncode == 5, r.stderr
    assert "merge" in r.stderr and "all 6 request(s) failed" in r.stderr
    assert out.read_text() == before  # the earlier good results file is not overwritten by an all-failed run


def test_trigger_wait_on_a_paused_dag_says_so_at_once(airflow_server):
    srv = airflow_server
    assert llmops(srv, "dags", "pause", "llmops_test_quick").returncode == 0
    try:
        runs_before = len(ok_json(srv, "runs", "list", "llmops_test_quick", "--limit", "100"))
        start = time.monotonic()
        r = llmops(srv, "trigger-dag", "llmops_test_quick", "--wait", "--timeout", "60")
        assert r.returncode == 2, r.stderr
        assert time.monotonic() - start < 15 and "is paused" in r.stderr and "--unpause" in r.stderr
        assert len(ok_json(srv, "runs", "list", "llmops_test_quick", "--limit", "100")) == runs_before
        doc = ok_json(srv, "trigger-dag", "llmops_test_quick", "--unpause", "--wait", "--timeout", "120")
        assert doc["state"] == "success"
    finally:
        llmops(srv, "dags", "unpause", "llmops_test_quick")


def test_an_invalid_token_is_rejected_credentials(airflow_server):
    srv = airflow_server
    env = {k: v for k, v in srv.env.items() if k not in ("LLMOPS_AIRFLOW_USERNAME", "LLMOPS_AIRFLOW_PASSWORD")}
    for token in ("not-a-jwt", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ"):
        r = llmops(srv, "dags", "list", env={**env, "LLMOPS_AIRFLOW_TOKEN": token})
        assert r.returncode == 8, r.stderr
        assert "rejected the credentials" in r.stderr and "LLMOPS_AIRFLOW_TOKEN" in r.stderr
        assert "permission" not in r.stderr and token not in r.stderr


def _api(srv, method: str, path: str, body: dict | None = None) -> dict:
    """A raw REST call (what llmops has no command for: marking a task instance failed)."""
    import urllib.request

    def call(method, url, data, headers):
        req = urllib.request.Request(
            url,
            data=json.dumps(data).encode() if data is not None else None,
            headers={"Content-Type": "application/json", **headers},
            method=method,
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    token = call("POST", f"{srv.url}/auth/token", {"username": "admin", "password": srv.server.password}, {})[
        "access_token"
    ]
    return call(method, f"{srv.url}/api/v2{path}", body, {"Authorization": f"Bearer {token}"})


def test_a_shard_retry_that_redoes_nothing_keeps_the_summary_true(airflow_server):
    # what an API-server restart does to a shard: its try wrote everything, then the task was marked failed and retried;
    # the retry finds every source unchanged (0 added). The summary must still say what the run added.
    srv = airflow_server
    _write_kb(srv.project / "kb-retry", broken=False)
    first = ok_json(
        srv,
        "trigger-dag",
        "llmops_ingest",
        "-p",
        f"sources={json.dumps([str(srv.project / 'kb-retry')])}",
        "-p",
        "collection=outcome-retry",
        "-p",
        "shards=1",
        "--wait",
        "--timeout",
        "300",
        timeout=330,
    )
    added = first["outcome"]["summary"]["chunks_added"]
    assert added > 0 and added == first["outcome"]["summary"]["chunks_total"]
    run_id = first["run_id"]
    _api(srv, "PATCH", f"/dags/llmops_ingest/dagRuns/{run_id}/taskInstances/ingest_shard/0", {"new_state": "failed"})
    assert ok_json(srv, "runs", "clear", "llmops_ingest", run_id, "--yes")["cleared"]
    again = ok_json(srv, "runs", "wait", "llmops_ingest", run_id, "--timeout", "300", timeout=330)
    assert again["state"] == "success"
    summary = again["outcome"]["summary"]
    assert summary["chunks_added"] == added == summary["chunks_total"], summary  # was: the retry's 0


def test_eval_and_feedback_runs_report_their_outcome_and_partial_is_exit_3(airflow_server, tmp_path):
    srv = airflow_server
    _write_kb(srv.project / "kb-fb", broken=False)
    # the collection, and two logged answers to review, made locally: the tasks share the store and the answer log
    r = llmops(srv, "ingest", str(srv.project / "kb-fb"), "--collection", "outcome-fb")
    assert r.returncode == 0, r.stderr
    for q in ("How do I retry a task?", "What do pools limit?"):
        assert llmops(srv, "ask", q, "--collection", "outcome-fb").returncode == 0

    # eval with a judged metric: the test LLM's verdicts are not the JSON the judge asks for, so every question has
    # an error for it (retrieval metrics still scored): partial, exit 3, like `llmops eval`
    dataset = tmp_path / "questions.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"question": q, "relevant_sources": ["retries.md"]}) + "\n"
            for q in ("How do I retry a task?", "How many retries?")
        )
    )
    conf = {"collection": "outcome-fb", "dataset": str(dataset), "metrics": ["retrieval", "faithfulness"]}
    r = llmops(srv, "trigger-dag", "llmops_eval", "--conf", json.dumps(conf), "--wait", "--timeout", "300", "--json")
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert doc["outcome"]["status"] == "partial" and "2 of 2 questions had errors" in doc["outcome"]["message"]
    summary = doc["outcome"]["summary"]
    assert summary["kind"] == "evaluation" and summary["collection"] == "outcome-fb" and summary["questions"] == 2
    assert "hit@5" in summary["metrics"] and summary["report"].endswith(".json")
    assert json.loads(open(summary["report"]).read())["config"]["collection"] == "outcome-fb"
    got = ok_json(srv, "runs", "get", "llmops_eval", doc["run_id"])  # the same outcome read back later
    assert got["outcome"] == doc["outcome"]

    # feedback: the judge's verdicts are unusable, so the answers stay unreviewed: partial, exit 3, like
    # `llmops feedback review`; the summary says what was reviewed, promoted and removed
    r = llmops(
        srv, "trigger-dag", "llmops_feedback", "-p", "collection=outcome-fb", "--wait", "--timeout", "300", "--json"
    )
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    fb = doc["outcome"]["summary"]
    assert doc["outcome"]["status"] == "partial" and fb["planned"] == 2 and fb["promoted"] == 0
    assert {"reviewed", "promoted", "removed", "report"} <= set(fb) and "left unreviewed" in doc["outcome"]["message"]
    xcom = ok_json(srv, "xcom", "get", "llmops_feedback", doc["run_id"], "reconcile", "--key", "llmops_outcome")
    assert xcom["value"] == doc["outcome"]
