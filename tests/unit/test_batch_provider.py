"""The pure parts of ``--via provider`` (core/batch/provider.py, core/batch/jobs.py) with an in-memory Batch API:
splitting within limits, idempotency keys, reading output and error files back, and a process that dies between
any two steps of a submission leaving a record the next run continues without a second job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.core.batch.checkpoint import FileCheckpoints
from llmops_cli.core.batch.jobs import Job, ProviderJobs
from llmops_cli.core.batch.provider import (
    Limits,
    ProviderRun,
    job_key,
    records_from_files,
    request_line,
    split_jobs,
    summarise,
    to_submit,
)
from llmops_cli.core.batch.run import BatchOptions, load_done, prepare
from llmops_cli.core.ports import LLMCallError
from llmops_cli.errors import ConflictError


class Died(Exception):
    """The process was killed here."""


class FakeBatchAPI:
    """A provider in memory: jobs finish when ``finish()`` is called; ``die_after`` kills the caller right after the
    named call reached the provider (its effect kept, its answer lost)."""

    provider = "openai"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.die_after: str | None = None
        self.fail_ids: set[str] = set()
        self.create_faults: list[bool] = []  # False: a create refused before the job was made
        self.lose_create_answer = False  # the job is made, its answer lost (a timeout)

    def _maybe_die(self, name: str) -> None:
        self.calls.append(name)
        if self.die_after == name:
            self.die_after = None
            raise Died(name)

    def upload(self, data: bytes, filename: str) -> str:
        fid = f"file-{len(self.files)}"
        self.files[fid] = data
        self._maybe_die("upload")
        return fid

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        if self.create_faults:
            made = self.create_faults.pop(0)
            if not made:  # refused before the job was made
                raise LLMCallError("503 (test)", status=503, retryable=True)
        bid = f"batch-{len(self.jobs)}"
        lines = [json.loads(x) for x in self.files[file_id].decode().splitlines()]
        self.jobs[bid] = {"id": bid, "status": "in_progress", "metadata": metadata, "lines": lines, "created_at": 0}
        if self.lose_create_answer:
            self.lose_create_answer = False
            raise LLMCallError("timeout (test)", status=408, retryable=True)
        self._maybe_die("create")
        return self._public(bid)

    def _public(self, bid: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[bid].items() if k != "lines"}

    def finish(self) -> None:
        for j in self.jobs.values():
            if j["status"] != "in_progress":
                continue
            out, err = [], []
            for line in j["lines"]:
                cid = line["custom_id"]
                text = line["body"]["messages"][-1]["content"]
                if cid in self.fail_ids:
                    err.append(
                        {"custom_id": cid, "response": {"status_code": 500, "body": {"error": {"message": "x"}}}}
                    )
                    continue
                body = {
                    "choices": [{"message": {"content": f"re: {text}"}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 4},
                }
                out.append({"custom_id": cid, "response": {"status_code": 200, "body": body}})
            j["output_file_id"] = self.upload("".join(json.dumps(x) + "\n" for x in out).encode(), "o") if out else None
            j["error_file_id"] = self.upload("".join(json.dumps(x) + "\n" for x in err).encode(), "e") if err else None
            j["status"] = "completed"
            j["request_counts"] = {"total": len(j["lines"]), "completed": len(out), "failed": len(err)}

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        self.calls.append("retrieve")
        return self._public(batch_id)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        self.calls.append("cancel")
        self.jobs[batch_id]["status"] = "cancelled"
        return self._public(batch_id)

    def content(self, file_id: str) -> bytes:
        self.calls.append("content")
        return self.files[file_id]

    def find(self, key: str, since: float) -> dict[str, Any] | None:
        self.calls.append("find")
        for bid, j in self.jobs.items():
            if j["metadata"].get("llmops_key") == key:
                return self._public(bid)
        return None


def _plan(tmp_path: Path, n: int = 6, **opts: Any):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"q": f"q{i}"}) + "\n" for i in range(n)))
    return prepare(src, BatchOptions(model="openai/m", prompt="say {q}", **opts), tmp_path / "data")


def _run(tmp_path: Path, api: FakeBatchAPI, plan: Any = None, **kw: Any) -> ProviderRun:
    plan = plan or _plan(tmp_path)
    jobs = ProviderJobs(tmp_path / "data" / "batch" / "jobs.sqlite")
    return ProviderRun(plan, api, jobs, FileCheckpoints(plan.run_dir), prices=(1e-6, 2e-6), **kw)


def test_requests_split_within_the_limits_one_model_per_job(tmp_path):
    plan = _plan(tmp_path, 7)
    size = len(request_line(plan.requests[0]))
    groups = split_jobs(plan.requests, Limits(max_requests=3, max_bytes=10**9))
    assert [len(g) for g in groups] == [3, 3, 1]
    groups = split_jobs(plan.requests, Limits(max_requests=100, max_bytes=2 * size + 1))
    assert [len(g) for g in groups] == [2, 2, 2, 1]
    line = json.loads(request_line(plan.requests[0]))
    assert line["custom_id"] == plan.requests[0].id and line["body"]["model"] == "m"
    assert line["url"] == "/v1/chat/completions" and line["body"]["messages"][-1]["content"] == "say q0"


def test_a_job_key_depends_on_run_ids_and_position_only():
    assert job_key("run", ["a", "b"], 0) == job_key("run", ["a", "b"], 0)
    assert len({job_key("run", ["a", "b"], 0), job_key("run", ["a"], 0), job_key("run", ["a", "b"], 1)}) == 3
    assert job_key("other", ["a", "b"], 0) != job_key("run", ["a", "b"], 0)


def test_a_whole_run_answers_every_row_at_the_batch_price(tmp_path):
    api = FakeBatchAPI()
    run = _run(tmp_path, api)
    (job,) = run.submit()
    assert job.batch_id == "batch-0" and job.status == "in_progress" and len(job.request_ids) == 6
    assert run.collect() == 0  # not finished: nothing read back
    api.finish()
    jobs = run.wait(poll_interval=0.01, sleep=lambda s: None)
    assert jobs[0].collected and summarise(jobs)["done"]
    done = load_done(run.plan, run.checkpoints)
    assert len(done) == 6 and all(r["status"] == "ok" and r["response"].startswith("re: say q") for r in done.values())
    assert all(r["cost"] == pytest.approx((10 * 1e-6 + 4 * 2e-6) * 0.5) for r in done.values())
    assert run.submit()[0].key == job.key and api.calls.count("upload") == 2  # input + output file; nothing new


@pytest.mark.parametrize("dies_after", ["record", "upload", "create"])
def test_a_run_killed_between_two_steps_creates_no_second_job(tmp_path, dies_after):
    api = FakeBatchAPI()
    plan = _plan(tmp_path)
    first = _run(tmp_path, api, plan)
    if dies_after == "record":  # the intent is recorded, nothing sent yet
        orig = first.jobs.record_intent

        def record_then_die(job: Job) -> Job:
            orig(job)
            raise Died("record")

        first.jobs.record_intent = record_then_die  # type: ignore[method-assign]
    else:
        api.die_after = dies_after
    with pytest.raises(Died):
        first.submit()
    first.jobs.close()
    (job,) = ProviderJobs(tmp_path / "data" / "batch" / "jobs.sqlite").for_run(plan.run_dir.name)
    assert job.batch_id is None and job.status == "intent"

    again = _run(tmp_path, api, plan)
    (job,) = again.submit()
    assert len(api.jobs) == 1 and job.batch_id == "batch-0"  # found by its key, or created once
    assert ("find" in api.calls) and again.created_now == (0 if dies_after == "create" else 1)
    api.finish()
    again.wait(poll_interval=0.01, sleep=lambda s: None)
    assert len(load_done(plan, again.checkpoints)) == 6


def test_failed_rows_are_errors_and_go_again_alone_with_retry_failed(tmp_path):
    api = FakeBatchAPI()
    plan = _plan(tmp_path)
    api.fail_ids = {plan.requests[2].id}
    run = _run(tmp_path, api, plan)
    run.submit()
    api.finish()
    run.wait(poll_interval=0.01, sleep=lambda s: None)
    done = load_done(plan, run.checkpoints)
    bad = done[plan.requests[2].id]
    assert bad["status"] == "error" and bad["error_status"] == 500 and bad["error_kind"] == "http 500"
    assert to_submit(plan, done, run.run_jobs(), retry_failed=False) == []
    assert run.submit() and len(api.jobs) == 1  # without --retry-failed: nothing goes again

    retry_plan = _plan(tmp_path, retry_failed=True)
    api.fail_ids = set()
    retry = _run(tmp_path, api, retry_plan)
    jobs = retry.submit()
    assert len(api.jobs) == 2 and jobs[-1].request_ids == [plan.requests[2].id]
    api.finish()
    retry.wait(poll_interval=0.01, sleep=lambda s: None)
    assert all(r["status"] == "ok" for r in load_done(plan, retry.checkpoints).values())


def test_rows_missing_from_an_expired_job_are_expired_errors(tmp_path):
    plan = _plan(tmp_path, 3)
    reqs = {r.id: r for r in plan.requests}
    ids = [r.id for r in plan.requests]
    job = Job(key="k", run_key="r", provider="openai", model="openai/m", request_ids=ids, status="expired")
    ok = {"status_code": 200, "body": {"choices": [{"message": {"content": "{}"}}], "usage": {}}}
    out = json.dumps({"custom_id": ids[0], "response": ok}) + "\n"
    err = json.dumps({"custom_id": ids[1], "response": None, "error": {"code": "batch_expired", "message": "late"}})
    recs = records_from_files(job, reqs, out.encode(), err.encode(), prices=(None, None), price_factor=0.5)
    assert [r["status"] for r in recs] == ["ok", "error", "error"]
    assert recs[0]["cost"] is None and recs[1]["error_kind"] == "expired" and recs[2]["error_kind"] == "expired"


def test_cancel_stops_live_jobs_and_two_submitters_exclude_each_other(tmp_path):
    api = FakeBatchAPI()
    run = _run(tmp_path, api)
    run.submit()
    lock = f"llmops-batch-provider:{run.run_key}"
    other = ProviderJobs(tmp_path / "data" / "batch" / "jobs.sqlite")
    assert other.db.try_lock(lock)
    try:
        with pytest.raises(ConflictError, match="another llmops batch"):
            _run(tmp_path, api).submit()
    finally:
        other.db.unlock(lock)
        other.close()
    (job,) = run.cancel()
    assert job.status == "cancelled" and api.jobs["batch-0"]["status"] == "cancelled"
    run.collect()
    done = load_done(run.plan, run.checkpoints)
    assert {r["error_kind"] for r in done.values()} == {"cancelled"}


def test_via_auto_chooses_the_batch_api_for_large_inputs_on_providers_that_have_one(tmp_path):
    from types import SimpleNamespace

    from llmops_cli.entry.batch import AUTO_PROVIDER_MIN_REQUESTS, choose_via

    def ws(api_base=None):
        return SimpleNamespace(settings=SimpleNamespace(llm=SimpleNamespace(api_base=api_base)))

    small = _plan(tmp_path, 3)
    assert choose_via(ws(), small, "provider") == ("provider", "--via provider")
    assert choose_via(ws(), small, "auto")[0] == "online" and "fewer than" in choose_via(ws(), small, "auto")[1]
    big = _plan(tmp_path, AUTO_PROVIDER_MIN_REQUESTS)
    assert choose_via(ws(), big, "auto")[0] == "provider"
    assert choose_via(ws("http://127.0.0.1:8000/v1"), big, "auto")[0] == "online"
    big.requests[0].model = "ollama/llama3"
    via, why = choose_via(ws(), big, "auto")
    assert via == "online" and "ollama" in why


def test_a_failed_create_is_retried_only_after_asking_whether_it_made_the_job(tmp_path):
    api = FakeBatchAPI()
    api.lose_create_answer = True  # made at the provider, the answer lost: a blind retry would make a second job
    slept: list[float] = []
    run = _run(tmp_path, api, sleep=slept.append)
    (job,) = run.submit()
    assert len(api.jobs) == 1 and job.batch_id == "batch-0" and api.calls.count("find") == 1 and not slept

    api2 = FakeBatchAPI()
    api2.create_faults = [False, False]  # refused twice before anything was made: retried after a wait
    (tmp_path / "b").mkdir()
    run2 = _run(tmp_path / "b", api2, sleep=slept.append)
    (job2,) = run2.submit()
    assert len(api2.jobs) == 1 and job2.batch_id == "batch-0" and api2.calls.count("find") == 2 and len(slept) == 2


def test_a_collect_killed_while_writing_the_answer_log_writes_no_row_twice(tmp_path, monkeypatch):
    """Killed after some of a job's answer-log rows (the job not yet marked collected), the re-run reads the job
    back again and writes only the rows missing: one row per request, keyed by job and custom_id."""
    import llmops_cli.adapters.llm.batch_api as batch_api
    from llmops_cli.core.feedback import recording
    from llmops_cli.entry import batch as batch_entry
    from llmops_cli.settings import LLMSettings, Settings
    from tests.support.fakes import run_step

    api = FakeBatchAPI()
    api.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(batch_api, "open_batch_api", lambda *a, **kw: api)
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        tracing={"enabled": False},
        llm=LLMSettings(model="openai/m", input_cost_per_token=1e-6, output_cost_per_token=2e-6),
    )
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"q": f"q{i}"}) + "\n" for i in range(6)))
    opts = {"prompt": "say {q}", "output": str(tmp_path / "out.jsonl")}
    run_step(batch_entry.batch_provider_submit, settings, str(src), **opts)
    api.finish()

    real, written = recording.record_llm_call, []

    def record_three_then_die(*a: Any, **kw: Any) -> str:
        if len(written) == 3:
            raise Died("answer log")
        written.append(kw["extra"]["custom_id"])
        return real(*a, **kw)

    monkeypatch.setattr(recording, "record_llm_call", record_three_then_die)
    with pytest.raises(Died):
        run_step(batch_entry.batch_provider_collect, settings, str(src), **opts)
    monkeypatch.setattr(recording, "record_llm_call", real)
    report = run_step(batch_entry.batch_provider_collect, settings, str(src), **opts)
    assert report["answered"] == 6
    from llmops_cli.core.feedback.log import AnswerLog

    with AnswerLog.for_data_dir(tmp_path / "data") as log:
        rows = log.since(None, kind="batch")
    ids = [r.extra["custom_id"] for r in rows]
    assert len(ids) == 6 and len(set(ids)) == 6 and {r.extra["batch_id"] for r in rows} == {"batch-0"}
