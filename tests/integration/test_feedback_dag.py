"""The llmops_feedback DAG on a real Airflow 3 (loopback): answers recorded by `llmops ask` are reviewed by the judge
(the local OpenAI-compatible server, real HTTP) in mapped batches and promoted into the collection, where a later
`llmops query` finds them; the one judged not public is not promoted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_feedback_loop import FAKE_KEY, Q_BACKUP, Q_ROTATE, Q_SCALE, responder, write_corpus
from tests.support.openai_server import TEST_API_KEY, TEST_MODEL

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]

COLLECTION = "feedback-dag"


def llmops(env: dict[str, str], cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "llmops"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]
    r = subprocess.run([*cmd, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r


def ok_json(env, cwd, *args, **kw):
    r = llmops(env, cwd, *args, "--json", **kw)
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


def test_feedback_dag_reviews_in_mapped_batches_and_promotes(airflow_server, openai_server, tmp_path):
    srv = airflow_server
    openai_server.responder = responder
    cwd = srv.home.parent
    llm_env = {
        "LLMOPS_LLM_MODEL": TEST_MODEL,
        "LLMOPS_LLM_API_BASE": openai_server.base_url,
        "LLMOPS_LLM_API_KEY": TEST_API_KEY,
        "LLMOPS_LLM_REWORDINGS": "0",
        "LLMOPS_STORE_COLLECTION": COLLECTION,
    }
    env = {**srv.env, **llm_env}

    ok_json(env, cwd, "ingest", str(write_corpus(tmp_path)))
    ids = {q: ok_json(env, cwd, "ask", q)["answer_id"] for q in (Q_ROTATE, Q_SCALE, Q_BACKUP)}
    ok_json(env, cwd, "feedback", ids[Q_ROTATE], "up")

    # the tasks' environment (fixed when the server started) points llm.* at the session's LLM server; the judge is
    # configured apart (feedback.judge_*), in a config file the run names
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text(
        f"feedback:\n  judge_model: {TEST_MODEL}\n  judge_api_base: {openai_server.base_url}\n"
        f"  judge_api_key: {TEST_API_KEY}\n"
    )
    deadline = time.monotonic() + 120
    while not any(d["dag_id"] == "llmops_feedback" for d in ok_json(srv.env, cwd, "dags", "list")):
        assert time.monotonic() < deadline, "llmops_feedback was not parsed"
        time.sleep(2)

    # retry_errors: the hourly schedule may have started a run as the DAG appeared; it judged with the session's LLM
    # server (replies that are not verdicts: review errors), and this run, queued behind it, reviews those again
    conf = {"config": str(cfg), "collection": COLLECTION, "batch_size": 2, "retry_errors": True}
    judge_calls = len(openai_server.records())
    doc = ok_json(
        srv.env,
        cwd,
        "trigger-dag",
        "llmops_feedback",
        "--conf",
        json.dumps(conf),
        "--wait",
        "--timeout",
        "600",
        timeout=660,
    )
    assert doc["state"] == "success", doc
    batches = next(t for t in doc["tasks"] if t["task_id"] == "review_batch")
    assert batches["mapped"] and batches["total"] == 2 and batches["states"] == {"success": 2}  # 3 answers, 2 per batch
    assert len(openai_server.records()) - judge_calls == 3

    hits = ok_json(env, cwd, "query", Q_ROTATE)["hits"]
    assert hits[0]["metadata"]["kind"] == "promoted_answer" and hits[0]["metadata"]["answer_id"] == ids[Q_ROTATE]
    top = ok_json(env, cwd, "query", Q_SCALE)["hits"][0]
    assert top["metadata"].get("answer_id") == ids[Q_SCALE]
    assert FAKE_KEY not in top["text"] and "[REDACTED_API_KEY]" in top["text"]

    shown = ok_json(env, cwd, "history", "show", ids[Q_BACKUP])  # judged not public: reviewed, never promoted
    assert shown["review"]["public"] is False and shown["promotion"] is None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", doc["run_id"])  # as dag_support.write_report names it
    report = json.loads((srv.data_dir / "airflow-reports" / "llmops_feedback" / f"{name}.json").read_text())
    assert (report["answers"], report["reviewed"], report["promoted"], report["batches"]) == (3, 3, 2, 2)
