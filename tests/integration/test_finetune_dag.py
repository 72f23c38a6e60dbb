"""The llmops_finetune DAG on the real Airflow 3 of the test suite, on its cheapest path: a hosted-LLM job at the
test's own OpenAI-compatible fine-tuning server (gather -> train -> evaluate -> gate -> asset). The server answers the
train task's first poll of the job with errors until the client gives up, so Airflow retries the task after the job
was created: the retry must poll that job, not submit (and pay for) a second one."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.integration.test_feedback_dag import ok_json
from tests.integration.test_finetune_llm import chat_rows
from tests.support.finetune_server import FineTuningServer

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]


def _poll_attempts() -> int:
    """How many calls one poll of the job makes before the client gives up (finetune_jobs' retry policy)."""
    from llmops_cli.settings import load_settings

    return max(load_settings(environ={}).settings.llm.max_retries, 4) + 1


def fail_first_polls(srv: FineTuningServer, n: int) -> list[str]:
    """Answer the first ``n`` job retrievals with a 500 (a provider outage while the job runs); returns the paths of
    the failed ones."""
    base = srv._httpd.RequestHandlerClass
    failed: list[str] = []

    class Failing(base):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:  # noqa: N802 (http.server names it)
            if self.path.startswith("/v1/fine_tuning/jobs/"):
                with srv.lock:
                    fail = len(failed) < n
                    if fail:
                        failed.append(self.path)
                if fail:
                    return self._send(500, {"error": {"message": "internal error"}})
            return super().do_GET()

    srv._httpd.RequestHandlerClass = Failing
    return failed


def test_finetune_dag_provider_job_retried_train_resumes_the_job(airflow_server, tmp_path):
    af = airflow_server
    cwd = af.home.parent
    ds = tmp_path / "ft.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in chat_rows()))
    env = {**af.env, "LLMOPS_AIRFLOW_TIMEOUT": "60"}  # a loaded CI machine answers slowly, not never
    deadline = time.monotonic() + 120
    while not any(d["dag_id"] == "llmops_finetune" for d in ok_json(env, cwd, "dags", "list")):
        assert time.monotonic() < deadline, "llmops_finetune was not parsed"
        time.sleep(2)

    with FineTuningServer(polls_to_finish=2) as ft:
        attempts = _poll_attempts()
        failed = fail_first_polls(ft, attempts)
        conf: dict[str, Any] = {
            "provider": ft.url,
            "model": "gpt-tiny",
            "dataset": str(ds),
            "min_examples": 5,
            "poll_s": 0.2,
            "training_cost_per_token": 0.000008,
        }
        doc = ok_json(
            env,
            cwd,
            "trigger-dag",
            "llmops_finetune",
            "--conf",
            json.dumps(conf),
            "--wait",
            "--timeout",
            "300",
            timeout=360,
        )
        assert doc["state"] == "success", doc
        assert len(failed) == attempts  # the first try's poll failed for good: Airflow retried the task
        assert len(ft.submissions) == 1 and len(ft.files) == 1  # the retry polled the job it had, nothing paid twice
        states = {t["task_id"]: t["states"] for t in doc["tasks"]}
        assert states["train"] == {"success": 1} and states["promote"] == {"success": 1}, states
        tis = {ti["task_id"]: ti for ti in ok_json(env, cwd, "tasks", "list", "llmops_finetune", doc["run_id"])}
        assert tis["train"]["try_number"] == 2 and tis["gather"]["try_number"] == 1

    model = "ft:gpt-tiny:llmops:ftjob-1"
    runs = [r for r in ok_json(env, cwd, "finetune", "runs")["runs"] if r["kind"] == "llm-provider"]
    run = next(r for r in runs if r["output"] == model)
    assert run["status"] == "done" and run["provider_job_id"] == "ftjob-1"
    assert ft.submissions[0]["metadata"]["llmops_job_key"] == run["job_key"]
    cost = run["cost"]  # the job's tokens, priced; its time from submission to the end, the failed try's wait included
    assert cost["trained_tokens"] > 0 and cost["cost_usd"] == round(cost["trained_tokens"] * 0.000008, 6)
    assert cost["wall_s"] >= 10 and run["cost_total"]["cost_usd"] == cost["cost_usd"]

    # the gate's decision, as evaluate wrote it
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", doc["run_id"])
    verdict = json.loads((af.data_dir / "airflow-reports" / "llmops_finetune" / f"{name}.json").read_text())
    assert verdict["passed"] is True and verdict["run"] == run["id"] and verdict["model"] == model

    # the tuned model, emitted as an asset by promote
    asset = ok_json(env, cwd, "assets", "show", f"llmops://models/{model}")
    events = [e for e in asset["recent_events"] if e["source_dag_id"] == "llmops_finetune"]
    assert [(e["source_task_id"], e["extra"]["run"], e["extra"]["model"]) for e in events] == [
        ("promote", run["id"], model)
    ], asset
