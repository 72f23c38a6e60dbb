"""The models x prompts matrix on the real Airflow (the session's ``airflow_server``): `llmops trigger-dag llmops_eval`
with 2 models and 2 prompt files plans once (one search and one rewording per question), maps one task per
combination (4 mapped task instances succeed) and reduces the recorded runs to the leaderboard `llmops eval run
--model A --model B --prompt p1 --prompt p2` computes locally on the same question set (its own history and LLM
cache, so neither run answers from the other's cache). The tasks' LLM is the session's local OpenAI-compatible
server (real HTTP): its replies are derived from the prompt, so the prompts' answers differ."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.test_airflow_cli import llmops, ok_json

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]

COLLECTION = "eval-matrix-dag"
PAGES = {
    "retries.md": "# Retries\n\nSet retries=3 on a task to retry it three times after a failure.\n",
    "pools.md": "# Pools\n\nPools limit how many tasks run at once against one resource, such as a database.\n",
    "sensors.md": "# Sensors\n\nA sensor waits for something to happen, such as a file landing, before going on.\n",
}
QUESTIONS = [
    ("How do I retry a failed task?", "retries.md", "set retries on the task"),
    ("What limits how many tasks hit a database at once?", "pools.md", "pools"),
    ("How does a task wait for a file?", "sensors.md", "a sensor waits for it"),
]
TERSE = (
    "---\nname: terse\nkind: answer\n---\n[system]\nAnswer in one short sentence.\n[user]\n{context}\n\nQ: {question}\n"
)
# what can differ between two runs of the same matrix: when they ran and how long the calls took
VOLATILE = {"run_id", "latency_p50_s", "latency_p95_s"}


def _board(doc):
    rows = [{k: v for k, v in r.items() if k not in VOLATILE} for r in doc["leaderboard"]["rows"]]
    return {**doc["leaderboard"], "rows": rows}


def test_matrix_dag_maps_the_combinations_and_ranks_them_as_the_cli_does(airflow_server, tmp_path):
    srv = airflow_server
    env = {**srv.env, "LLMOPS_STORE_COLLECTION": COLLECTION, "LLMOPS_LLM_REWORDINGS": "1"}
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PAGES.items():
        (docs / name).write_text(text)
    assert ok_json(srv, "ingest", str(docs), env=env)["chunks_added"] >= 3
    dataset = tmp_path / "qs.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"id": f"q{n}", "question": q, "relevant_sources": [src], "reference_answer": ref}) + "\n"
            for n, (q, src, ref) in enumerate(QUESTIONS)
        )
    )
    (tmp_path / "terse.md").write_text(TERSE)
    prompts = [str(_repo() / "configs" / "prompts" / "answer.md"), str(tmp_path / "terse.md")]
    models = ["openai/good-model", "openai/cheap-model"]
    metrics = ["retrieval", "token_f1", "exact_match"]

    t0 = time.monotonic()
    calls_before = _llm_calls(srv)
    conf = {
        "collection": COLLECTION,
        "dataset": str(dataset),
        "metrics": metrics,
        "k": 2,
        "models": models,
        "prompts": prompts,
        "config": str(_config(tmp_path)),
    }
    doc = ok_json(srv, "trigger-dag", "llmops_eval", "--conf", json.dumps(conf), "--wait", "--timeout", "400")
    assert doc["state"] == "success" and not doc["failed_tasks"], doc
    tasks = {t["task_id"]: t for t in doc["tasks"]}
    mapped = tasks["evaluate_combination"]
    assert mapped["mapped"] and mapped["total"] == 4 and mapped["states"] == {"success": 4}
    assert tasks["evaluate"]["states"] == {"skipped": 1} and tasks["leaderboard"]["states"] == {"success": 1}
    summary = doc["outcome"]["summary"]
    assert doc["outcome"]["status"] == "ok" and summary["kind"] == "matrix" and len(summary["runs"]) == 4
    # one rewording per question, made by the plan: 3 rewordings + 4 x 3 answers reached the LLM in all
    assert _llm_calls(srv) - calls_before == 3 + 4 * 3
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", doc["run_id"])
    report = json.loads((srv.data_dir / "airflow-reports" / "llmops_eval" / f"{name}.json").read_text())
    assert report["kind"] == "matrix" and report["runs"] == summary["runs"]
    assert report["context_usage"]["calls"] == 3

    t1 = time.monotonic()
    # the CLI on the same question set, with its own history and LLM cache
    local = {**env, "LLMOPS_DATA_DIR": str(tmp_path / "cli-data")}
    args = ["eval", "run", str(dataset), "--collection", COLLECTION, "--metrics", ",".join(metrics), "-k", "2"]
    for m in models:
        args += ["--model", m]
    for p in prompts:
        args += ["--prompt", p]
    r = llmops(srv, *args, "--json", env=local)
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    print(f"DAG run {t1 - t0:.1f} s, CLI matrix {time.monotonic() - t1:.1f} s")
    assert _board(report) == _board(cli)
    assert [q["answers"] for q in report["questions"]] == [q["answers"] for q in cli["questions"]]
    answers = {a["answer"] for q in cli["questions"] for a in q["answers"]}
    assert len(answers) == 2 * 3  # per question, one answer per prompt (the server answers from the prompt)


def _repo() -> Path:
    return Path(__file__).resolve().parents[2]


def _config(tmp_path):
    """The run's config file: concurrency 2 (two answer calls at a time per task on the 2-core CI machine)."""
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text("eval:\n  concurrency: 2\n")
    return cfg


def _llm_calls(srv) -> int:
    import urllib.request

    base = srv.env["LLMOPS_LLM_API_BASE"].removesuffix("/v1")  # the tasks' LLM server
    with urllib.request.urlopen(f"{base}/_stats", timeout=10) as r:
        stats = json.loads(r.read())
    return int(stats["successes"])
