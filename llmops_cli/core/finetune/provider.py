"""A fine-tuning job at an OpenAI-compatible provider, submitted once: the job id is recorded in the run (found by
its job key) before anything waits on it, so a retried task or command polls the job it already paid for instead of
submitting a second one."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from llmops_cli.core.finetune.runs import FinetuneRuns
from llmops_cli.core.redaction import mask_url_password
from llmops_cli.errors import RunFailed, TimeoutExceeded

FINAL = ("succeeded", "failed", "cancelled")


class FineTuningAPI(Protocol):
    api_base: str

    def upload_training_file(self, data: bytes, filename: str) -> str: ...

    def create_job(self, model: str, training_file: str, **kw: Any) -> dict[str, Any]: ...

    def retrieve_job(self, job_id: str) -> dict[str, Any]: ...


def job_key(api_base: str, model: str, data: bytes, params: dict[str, Any], label: str = "") -> str:
    """What makes two submissions the same job: provider, base model, training data, hyperparameters (and a label
    such as a DAG run id, so a new run of the same data is a new job while its retries are not)."""
    h = hashlib.sha256()
    for part in (api_base, model, repr(sorted(params.items())), label):
        h.update(part.encode() + b"\0")
    h.update(data)
    return "provider:" + h.hexdigest()[:24]


def run_provider_job(
    api: FineTuningAPI,
    runs: FinetuneRuns,
    *,
    model: str,
    data: bytes,
    filename: str = "train.jsonl",
    hyperparameters: dict[str, Any] | None = None,
    label: str = "",
    poll_s: float = 10.0,
    timeout_s: float | None = None,
    cost_per_token: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Submit (or resume) the job and wait for it to end; returns the run's record with ``resumed`` and ``job``.
    ``cost_per_token``: the provider's training price per trained token, when known (the API does not say): the
    run's cost then holds the job's price besides its tokens and time."""
    say = progress or (lambda _m: None)
    params = dict(hyperparameters or {})
    key = job_key(api.api_base, model, data, params, label)
    run = runs.by_job_key(key)
    resumed = run is not None and bool(run["provider_job_id"])
    if run is not None and run["status"] == "done":
        return {**run, "resumed": True, "job": None}
    if run is None or not run["provider_job_id"]:
        run_id = (
            run["id"]
            if run
            # the URL as shown, never its password or ?api_key=: `finetune runs --json` prints the params
            else runs.start(
                "llm-provider", model, params={**params, "api_base": mask_url_password(api.api_base)}, job_key=key
            )
        )
        file_id = api.upload_training_file(data, filename)
        job = api.create_job(model, file_id, hyperparameters=params or None, metadata={"llmops_job_key": key})
        runs.update(run_id, provider_job_id=str(job["id"]), data={"training_file": file_id, "bytes": len(data)})
        say(f"submitted fine-tuning job {job['id']}")
    else:
        run_id = run["id"]
        say(f"resuming fine-tuning job {run['provider_job_id']} (not submitted again)")
    job_id = runs.get(run_id)["provider_job_id"]
    started, cpu0 = time.monotonic(), time.process_time()
    while True:
        job = api.retrieve_job(job_id)
        status = str(job.get("status"))
        if status in FINAL:
            break
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutExceeded(
                f"fine-tuning job {job_id} is still {status} after {timeout_s:g} s",
                hint="run the same command again: it resumes this job instead of submitting another",
            )
        say(f"job {job_id}: {status}")
        sleep(poll_s)
    cost = job_cost(job, api.api_base, cost_per_token, runs.get(run_id)["created_at"])
    cost["wait"] = {"wall_s": round(time.monotonic() - started, 2), "cpu_s": round(time.process_time() - cpu0, 2)}
    if status != "succeeded":
        runs.update(run_id, status="failed", cost=cost)
        err = (job.get("error") or {}).get("message") if isinstance(job.get("error"), dict) else job.get("error")
        raise RunFailed(f"fine-tuning job {job_id} ended {status}" + (f": {err}" if err else ""))
    runs.update(run_id, status="done", output=str(job.get("fine_tuned_model") or ""), cost=cost)
    return {**runs.get(run_id), "resumed": resumed, "job": job}


def job_cost(job: dict[str, Any], provider: str, cost_per_token: float | None, submitted_at: float) -> dict[str, Any]:
    """What a finished job cost: trained tokens, their price when one is known (else None, never a guess), and the
    job's wall seconds from submission to its end (the provider's own timestamps when it gives them; else from when
    the run was recorded to now, across every retry that waited on it)."""
    tokens = job.get("trained_tokens")
    created, finished = job.get("created_at"), job.get("finished_at")
    if isinstance(created, int | float) and isinstance(finished, int | float) and finished >= created:
        wall = float(finished - created)
    else:
        wall = time.time() - submitted_at
    price = None
    if cost_per_token is not None and isinstance(tokens, int | float):
        price = round(tokens * cost_per_token, 6)
    return {
        "trained_tokens": tokens,
        "provider": mask_url_password(provider),  # printed by finetune runs --json
        "cost_per_token": cost_per_token,
        "cost_usd": price,
        "wall_s": round(wall, 2),
    }


__all__ = ["FINAL", "FineTuningAPI", "job_cost", "job_key", "run_provider_job"]
