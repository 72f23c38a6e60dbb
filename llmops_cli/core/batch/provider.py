"""``llmops batch --via provider``: the same requests, sent through a provider's Batch API (files + batch jobs) at its
batch price, with no duplicate job however often a run is killed and run again.

The steps, each safe to repeat:

1. ``submit``: the requests neither answered (checkpoint) nor held by a recorded job are split into jobs within the
   provider's limits (requests and bytes per job). Each job's row is recorded (``jobs.ProviderJobs``) BEFORE the
   upload, then its file id, then its provider job id. A recorded job without a job id (the process died around
   ``create``) is looked up at the provider by its key (``metadata.llmops_key``) before anything is created again.
2. ``poll``: one status query per unfinished job (no waiting here: a DAG sensor or the CLI's loop waits).
3. ``collect``: each finished job's output and error files become checkpoint records (one per request: answered,
   or an error with the provider's status and message; a request in neither file, e.g. of an expired or cancelled
   job, is an error of that kind), then the job is marked collected. Rows that ended as errors are resubmitted,
   alone, by a run with ``retry_failed``.

The output is then written by ``run.execute(call=False)`` from the checkpoints, exactly as an online run writes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llmops_cli.core.batch.jobs import TERMINAL, Job, ProviderJobs
from llmops_cli.errors import ConflictError

if TYPE_CHECKING:
    from llmops_cli.core.batch.checkpoint import Checkpoints
    from llmops_cli.core.batch.requests import BatchRequest
    from llmops_cli.core.batch.run import BatchPlan

BATCH_PRICE_FACTOR = 0.5  # the providers' batch APIs (OpenAI, Azure, Anthropic, Vertex, Bedrock) bill half
ENDPOINT = "/v1/chat/completions"
# OpenAI's limits per batch job: 50,000 requests and a 200 MB input file (kept a little under)
MAX_REQUESTS_PER_JOB = 50_000
MAX_BYTES_PER_JOB = 190 * 1024 * 1024

CREATE_ATTEMPTS = 5
FIND_MARGIN_S = 3600.0  # a job is looked for among those created since its intent, less this (clock skew)

PollFn = Callable[[list[Job]], None]  # after each poll: the run's jobs with their counts (progress bars)


class BatchAPI(Protocol):
    """A provider's Batch API (files + jobs); jobs are dicts in OpenAI's shape (``id``, ``status``,
    ``request_counts``, ``output_file_id``, ``error_file_id``, ``metadata``, ``errors``). Errors are LlmopsErrors
    (``LLMCallError`` for a failed call, retried by the adapter already)."""

    provider: str

    def upload(self, data: bytes, filename: str) -> str: ...

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """One attempt, never retried by the adapter (a failed try may have made the job: see ``_create``)."""
        ...

    def retrieve(self, batch_id: str) -> dict[str, Any]: ...

    def cancel(self, batch_id: str) -> dict[str, Any]: ...

    def content(self, file_id: str) -> bytes: ...

    def find(self, key: str, since: float) -> dict[str, Any] | None:
        """The job created since ``since`` (epoch s) whose ``metadata.llmops_key`` is ``key``, if any."""
        ...


@dataclass(frozen=True)
class Limits:
    max_requests: int = MAX_REQUESTS_PER_JOB
    max_bytes: int = MAX_BYTES_PER_JOB


# --- pure parts ---------------------------------------------------------------------------------------------------


def provider_model(model: str) -> str:
    """The model name the provider knows: litellm's ``provider/`` prefix dropped (``openai/gpt-4o-mini``)."""
    return model.split("/", 1)[1] if "/" in model else model


def request_line(req: BatchRequest) -> bytes:
    """One line of the provider's input file: the request under its id (``custom_id`` = the row id)."""
    body = {"model": provider_model(req.model), "messages": req.messages, **req.params}
    line = {"custom_id": req.id, "method": "POST", "url": ENDPOINT, "body": body}
    return (json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def split_jobs(requests: list[BatchRequest], limits: Limits) -> list[list[BatchRequest]]:
    """Consecutive groups within the limits of one job, one model per job (a provider's input file holds one
    model); a single request over the byte limit is a job alone."""
    groups: list[list[BatchRequest]] = []
    cur: list[BatchRequest] = []
    size = 0
    for r in sorted(requests, key=lambda r: r.model):  # stable: the input's order within a model
        n = len(request_line(r))
        if cur and (len(cur) >= limits.max_requests or size + n > limits.max_bytes or cur[0].model != r.model):
            groups.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += n
    if cur:
        groups.append(cur)
    return groups


def job_key(run_key: str, request_ids: list[str], position: int) -> str:
    """The idempotency key of a job: the same run, the same requests at the same position -> the same key."""
    blob = json.dumps({"run": run_key, "ids": request_ids, "position": position}, sort_keys=True)
    return "llmops-" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def held_ids(jobs: list[Job]) -> set[str]:
    """Requests a job holds that has not been collected yet (live, or finished but not read back)."""
    return {rid for j in jobs if not j.collected and j.status != "abandoned" for rid in j.request_ids}


def to_submit(plan: BatchPlan, done: dict[str, dict[str, Any]], jobs: list[Job], retry_failed: bool) -> list:
    """The requests a new job must carry: not answered, not held by a recorded job, and (unless ``retry_failed``)
    not recorded as an error either."""
    held = held_ids(jobs)
    out = []
    for r in plan.requests:
        if r.id in held:
            continue
        rec = done.get(r.id)
        if rec is None or (retry_failed and rec.get("status") != "ok"):
            out.append(r)
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def records_from_files(
    job: Job,
    requests: dict[str, BatchRequest],
    output: bytes,
    errors: bytes,
    *,
    prices: tuple[float | None, float | None],
    price_factor: float,
    validator: Any = None,
    job_error: str | None = None,
) -> list[dict[str, Any]]:
    """One checkpoint record per request of ``job`` from its output and error files (the OpenAI Batch output
    format); a request in neither file is an error named after the job's status."""
    from llmops_cli.core.batch.validation import AnswerInvalid

    lines: dict[str, dict[str, Any]] = {}
    for blob in (errors, output):  # an answer in the output file wins over an error line for the same id
        for raw in blob.decode("utf-8", errors="replace").splitlines():
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict) and isinstance(d.get("custom_id"), str):
                lines[d["custom_id"]] = d
    out: list[dict[str, Any]] = []
    for rid in job.request_ids:
        req = requests.get(rid)
        if req is None:
            continue
        base = {"id": rid, "request_hash": req.request_hash, "model": req.model, "attempts": 1, "cached": False}
        base.update({"batch_id": job.batch_id, "finished_at": _now(), "via": "provider"})
        line = lines.get(rid)
        resp = (line or {}).get("response") or {}
        status = resp.get("status_code")
        if line is not None and status == 200 and isinstance(resp.get("body"), dict):
            body = resp["body"]
            choices = body.get("choices") or [{}]
            text = ((choices[0] or {}).get("message") or {}).get("content") or ""
            usage = body.get("usage") or {}
            tin, tout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            cost = None
            if prices[0] is not None or prices[1] is not None:
                cost = (tin * (prices[0] or 0.0) + tout * (prices[1] or 0.0)) * price_factor
            rec = {**base, "status": "ok", "response": text, "input_tokens": tin, "output_tokens": tout, "cost": cost}
            if validator is not None:
                try:
                    rec["parsed"] = validator.parse(text)
                except AnswerInvalid as e:
                    rec.update(status="error", error=str(e), error_kind="invalid", error_status=None)
            out.append(rec)
            continue
        if line is not None:
            err = line.get("error") or {}
            body_err = (resp.get("body") or {}).get("error") if isinstance(resp.get("body"), dict) else None
            message = (body_err or {}).get("message") or err.get("message") or f"HTTP {status}"
            kind = str(err.get("code") or (f"http {status}" if status else "error"))
            if kind == "batch_expired":
                kind = "expired"
        else:
            kind = job.status if job.status in ("expired", "cancelled", "failed") else "not returned"
            message = job_error or f"the provider's job {job.batch_id} ended {job.status} without this request"
        out.append(
            {
                **base,
                "status": "error",
                "error": message,
                "error_status": status,
                "error_kind": kind,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost": None,
            }
        )
    return out


def job_errors(batch: dict[str, Any]) -> str | None:
    """A failed job's reason (``errors.data[].message``), if it gives one."""
    errs = batch.get("errors") or {}
    data = errs.get("data") if isinstance(errs, dict) else None
    msgs = [str(d.get("message")) for d in data or [] if isinstance(d, dict) and d.get("message")]
    return "; ".join(msgs)[:500] or None


# --- the steps ----------------------------------------------------------------------------------------------------


class ProviderRun:
    """One ``--via provider`` run over a plan: the jobs store, the API and the checkpoints together."""

    def __init__(
        self,
        plan: BatchPlan,
        api: BatchAPI,
        jobs: ProviderJobs,
        checkpoints: Checkpoints,
        *,
        limits: Limits = Limits(),
        prices: tuple[float | None, float | None] = (None, None),
        price_factor: float = BATCH_PRICE_FACTOR,
        on_answer: Callable[[BatchRequest, dict[str, Any]], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """``on_answer(request, record)``: called once per answered request read back (the answer log, the LLM
        cache), before its job is marked collected: a kill in between calls it again for that job's rows."""
        self.plan, self.api, self.jobs, self.checkpoints = plan, api, jobs, checkpoints
        self.on_answer = on_answer
        self.sleep = sleep
        self.limits, self.prices, self.price_factor = limits, prices, price_factor
        self.run_key = plan.run_dir.name
        self.requests = {r.id: r for r in plan.requests}
        self.created_now = 0  # jobs this process created at the provider
        self.collected_now = 0  # requests read back by this process
        self.usage_now = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0, "cost_unknown": 0}

    def _lock(self) -> Any:
        """One submitter/collector per run at a time (a lock of the state database, gone with its process)."""
        name = f"llmops-batch-provider:{self.run_key}"
        db = self.jobs.db
        if not db.try_lock(name):
            raise ConflictError(
                f"another llmops batch is submitting or collecting the run {self.run_key}",
                hint="wait for it to finish (or stop it); the same command continues afterwards",
            )
        return name

    def run_jobs(self) -> list[Job]:
        return self.jobs.for_run(self.run_key)

    def submit(self) -> list[Job]:
        """Continue every recorded job not yet at the provider, then create jobs for what no job holds."""
        from llmops_cli.core.batch.run import load_done

        lock = self._lock()
        try:
            for job in self.run_jobs():
                if job.batch_id is None and job.status == "intent":
                    self._send(job, resumed=True)
            done = load_done(self.plan, self.checkpoints)
            jobs = self.run_jobs()
            todo = to_submit(self.plan, done, jobs, self.plan.options.retry_failed)
            position = len(jobs)
            for group in split_jobs(todo, self.limits):
                ids = [r.id for r in group]
                job = Job(
                    key=job_key(self.run_key, ids, position),
                    run_key=self.run_key,
                    provider=self.api.provider,
                    model=group[0].model,
                    request_ids=ids,
                    input_path=str(self.plan.input_path),
                )
                position += 1
                job = self.jobs.record_intent(job)  # durable before anything is sent
                self._send(job, resumed=False)
        finally:
            self.jobs.db.unlock(lock)
        return self.run_jobs()

    def _send(self, job: Job, *, resumed: bool) -> None:
        if not any(rid in self.requests for rid in job.request_ids):
            # recorded for an input that has changed since: nothing of it is asked any more
            self.jobs.update(job.key, status="abandoned", collected=True)
            return
        if resumed:
            # the process that recorded this intent may have died after ``create`` reached the provider
            found = self.api.find(job.key, since=job.created_at - FIND_MARGIN_S)
            if found is not None:
                self._record_batch(job, found)
                return
        if job.file_id is None:
            data = b"".join(request_line(self.requests[rid]) for rid in job.request_ids if rid in self.requests)
            file_id = self.api.upload(data, f"{job.key}.jsonl")
            self.jobs.update(job.key, file_id=file_id)
            job.file_id = file_id
        self._record_batch(job, self._create(job))

    def _create(self, job: Job) -> dict[str, Any]:
        """``create``, retried only after the provider was asked whether the failed try created the job anyway (a
        timeout or a 5xx may come after the job exists): a retry never makes a second job."""
        from llmops_cli.core.ports import LLMCallError

        attempt = 0
        while True:
            attempt += 1
            try:
                batch = self.api.create(job.file_id or "", {"llmops_key": job.key, "llmops_run": self.run_key})
                self.created_now += 1
                return batch
            except LLMCallError as e:
                if not e.retryable or attempt >= CREATE_ATTEMPTS:
                    raise
                found = self.api.find(job.key, since=job.created_at - FIND_MARGIN_S)
                if found is not None:
                    self.created_now += 1
                    return found
                self.sleep(e.retry_after if e.retry_after is not None else min(30.0, 2.0**attempt))

    def _record_batch(self, job: Job, batch: dict[str, Any]) -> None:
        job.batch_id, job.status = str(batch["id"]), str(batch.get("status") or "validating")
        self.jobs.update(job.key, batch_id=job.batch_id, status=job.status, counts=batch.get("request_counts") or {})

    def poll(self) -> list[Job]:
        """One status query per job that is at the provider and not finished; returns the run's jobs."""
        for job in self.run_jobs():
            if job.batch_id is None or job.terminal:
                continue
            b = self.api.retrieve(job.batch_id)
            self.jobs.update(
                job.key,
                status=str(b.get("status")),
                counts=b.get("request_counts") or {},
                output_file_id=b.get("output_file_id"),
                error_file_id=b.get("error_file_id"),
            )
        return self.run_jobs()

    def collect(self) -> int:
        """Read back every finished job not collected yet into the checkpoints; returns how many requests."""
        from llmops_cli.core.batch.validation import SchemaValidator

        pending = [j for j in self.run_jobs() if j.terminal and not j.collected]
        if not pending:
            return 0
        validator = SchemaValidator(self.plan.schema) if self.plan.schema is not None else None
        lock = self._lock()
        n = 0
        try:
            for job in pending:
                output = self.api.content(job.output_file_id) if job.output_file_id else b""
                errors = self.api.content(job.error_file_id) if job.error_file_id else b""
                why = job_errors(self.api.retrieve(job.batch_id)) if job.status == "failed" and job.batch_id else None
                recs = records_from_files(
                    job,
                    self.requests,
                    output,
                    errors,
                    prices=self.prices,
                    price_factor=self.price_factor,
                    validator=validator,
                    job_error=why,
                )
                # a kill between these records and ``collected`` reads the job again: records are idempotent
                with self.checkpoints.writer(f"provider-{job.key[-16:]}") as w:
                    for rec in recs:
                        w.append(rec)
                        self._count(rec)
                if self.on_answer is not None:
                    for rec in recs:
                        if rec["status"] == "ok":
                            self.on_answer(self.requests[rec["id"]], rec)
                self.jobs.update(job.key, collected=True)
                n += len(recs)
        finally:
            self.jobs.db.unlock(lock)
        self.collected_now += n
        return n

    def _count(self, rec: dict[str, Any]) -> None:
        u = self.usage_now
        u["input_tokens"] += rec.get("input_tokens") or 0
        u["output_tokens"] += rec.get("output_tokens") or 0
        if rec.get("cost") is not None:
            u["cost"] += rec["cost"]
        elif rec.get("status") == "ok":
            u["cost_unknown"] += 1

    def cancel(self) -> list[Job]:
        """Cancel the run's unfinished jobs at the provider (their answers so far are collected afterwards)."""
        for job in self.run_jobs():
            if job.batch_id is not None and not job.terminal:
                b = self.api.cancel(job.batch_id)
                self.jobs.update(job.key, status=str(b.get("status") or "cancelling"))
            elif job.batch_id is None and job.status == "intent":
                found = self.api.find(job.key, since=job.created_at - FIND_MARGIN_S)
                if found is not None:
                    b = self.api.cancel(str(found["id"]))
                    self._record_batch(job, b)
                else:
                    self.jobs.update(job.key, status="abandoned", collected=True)
        return self.run_jobs()

    def wait(
        self,
        *,
        poll_interval: float,
        on_poll: PollFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_interval: float | None = None,
    ) -> list[Job]:
        """Poll until every job is finished, with a growing interval (``poll_interval`` doubled up to
        ``max_interval``, default 10x), collecting each job as it finishes."""
        interval = poll_interval
        ceiling = max_interval if max_interval is not None else poll_interval * 10
        while True:
            jobs = self.poll()
            self.collect()
            if on_poll is not None:
                on_poll(jobs)
            if all(j.terminal or j.status == "abandoned" for j in jobs):
                return self.run_jobs()
            sleep(interval)
            interval = min(ceiling, interval * 1.5)


def summarise(jobs: list[Job]) -> dict[str, Any]:
    """Counts over the run's jobs (for progress bars and status)."""
    total = sum(len(j.request_ids) for j in jobs if j.status != "abandoned")
    completed = sum(int((j.counts or {}).get("completed") or 0) for j in jobs)
    failed = sum(int((j.counts or {}).get("failed") or 0) for j in jobs)
    return {
        "jobs": len(jobs),
        "finished_jobs": sum(1 for j in jobs if j.status in TERMINAL),
        "requests": total,
        "completed": completed,
        "failed": failed,
        "statuses": sorted({j.status for j in jobs}),
        "done": all(j.status in TERMINAL or j.status == "abandoned" for j in jobs),
    }
