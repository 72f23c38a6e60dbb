"""Batch entry points, shared by ``llmops batch`` and the ``llmops_batch_inference`` DAG (plan shards -> run each
-> merge): the plan from settings and options, one LLM stack per model from the workspace, the checkpoints from the
workspace's state (the run folder's files, or the shared state database so that shards on several workers merge),
``core.batch`` underneath.

Batch rows reach the answer log: every row that reached the LLM is recorded as kind "batch" (``llmops history
--kind batch``), like eval's calls; a row answered from the LLM cache made no call and is not recorded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core import tracing
from llmops_cli.core.batch.run import BatchOptions, estimate, execute, plan_shards, prepare
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.batch.run import BatchPlan, BatchReport
    from llmops_cli.core.ports import LLM
    from llmops_cli.wiring import Workspace


def _plan(ws: Workspace, input_path: str | Path, options: dict[str, Any]) -> tuple[BatchPlan, str]:
    """The batch plan (requests, checkpoint folder) and the LLM client asked for (``client``: see wiring.CLIENTS)."""
    options = dict(options)
    client = options.pop("client", "auto")
    if options.get("via") == "auto":
        options["via"] = "online"  # chosen by the caller (choose_via); the plan is the same either way
    llm = ws.settings.llm
    defaults = {
        "model": llm.model,
        "timeout": llm.timeout,
        "temperature": llm.temperature,
        "max_tokens": llm.max_tokens,
    }
    for k, v in defaults.items():
        if options.get(k) is None:
            options[k] = v
    try:
        opts = BatchOptions(**{k: v for k, v in options.items() if v is not None})
    except TypeError as e:
        raise UsageError(f"batch: {e}") from None
    return prepare(input_path, opts, ws.settings.data_path), client


class BatchLLMs:
    """The batch's LLM stack per model, built on first use (the engine closes the clients in ``built``)."""

    def __init__(self, ws: Workspace, client: str, concurrency: int):
        self.ws, self.client, self.concurrency = ws, client, concurrency
        self.built: dict[str, LLM] = {}

    def __call__(self, model: str) -> LLM:
        if model not in self.built:
            self.built[model] = self.ws.llm("batch", model=model, client=self.client, concurrency=self.concurrency)
        return self.built[model]


@tracing.traced("llmops batch")  # one root span: the rows' chat spans nest under it, not as traces of their own
def batch(
    ws: Workspace,
    input_path: str | Path,
    *,
    progress: Any = None,
    shard: tuple[int, int] | None = None,
    **options: Any,
) -> BatchReport:
    """Run a batch (or one shard of it) to the end; the report's exit_code is 3 when rows ended as errors.
    ``via="provider"``: through the provider's Batch API instead (``batch_provider``)."""
    if options.get("via") == "provider":
        if shard is not None:
            raise UsageError("--via provider runs the whole input as provider jobs: it takes no shard")
        return batch_provider(ws, input_path, progress=progress, **options)
    plan, client = _plan(ws, input_path, options)
    tracing.annotate(**_span_attributes(plan, shard))
    cache = ws.llm_cache() if plan.options.use_cache else None
    report = execute(
        plan,
        BatchLLMs(ws, client, plan.options.concurrency),
        cache=cache,
        progress=progress,
        shard=shard,
        checkpoints=ws.checkpoints(plan.run_dir),
    )
    tracing.annotate(
        **{
            "llmops.batch.answered": report.answered,
            "llmops.batch.errors": report.errors,
            "llmops.batch.calls": report.calls,
        }
    )
    return report


def _span_attributes(plan: BatchPlan, shard: tuple[int, int] | None) -> dict[str, Any]:
    prompt = plan.prompt or {}
    return {
        "llmops.batch.input": str(plan.input_path),
        "llmops.batch.requests": len(plan.requests),
        "llmops.batch.via": plan.options.via,
        "llmops.batch.shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "llmops.prompt.name": prompt.get("name"),
        "llmops.prompt.sha256": prompt.get("sha256"),
        "gen_ai.request.model": plan.options.model,
    }


def batch_dry_run(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """What a run would do: requests, how many the checkpoint and the cache already answer, an estimated cost."""
    from llmops_cli.adapters.llm.litellm_llm import token_prices

    plan, _client = _plan(ws, input_path, options)
    llm = ws.settings.llm
    prices: tuple[float | None, float | None] = (llm.input_cost_per_token, llm.output_cost_per_token)
    if prices == (None, None) and plan.requests:
        prices = token_prices(plan.requests[0].model)
    cache = ws.llm_cache() if plan.options.use_cache else None
    est = estimate(plan, cache=cache, prices=prices, checkpoints=ws.checkpoints(plan.run_dir))
    cost = est["estimated_cost_usd"]
    # both ways: the provider's Batch API bills price_factor of the online price (and ignores the cache)
    est["estimated_cost_usd_via_provider"] = round(cost * plan.options.price_factor, 6) if cost is not None else None
    est["via"], est["via_reason"] = choose_via(ws, plan, options.get("via") or "online")
    est["prompt"] = plan.prompt
    return est


def batch_choose_via(ws: Workspace, input_path: str | Path, **options: Any) -> tuple[str, str]:
    """``--via auto`` resolved for this input: ("online" | "provider", why)."""
    plan, _client = _plan(ws, input_path, options)
    return choose_via(ws, plan, options.get("via") or "online")


AUTO_PROVIDER_MIN_REQUESTS = 1000
BATCH_API_PROVIDERS = ("openai", "azure", "vertex_ai", "bedrock", "anthropic")


def choose_via(ws: Workspace, plan: BatchPlan, via: str) -> tuple[str, str]:
    """``--via auto``: the provider's Batch API for a large input on a provider that has one (and no
    ``llm.api_base``: a self-hosted endpoint rarely serves /v1/batches), online otherwise; and why."""
    if via != "auto":
        return via, f"--via {via}"
    n = len(plan.requests)
    providers = {r.model.split("/", 1)[0] if "/" in r.model else "openai" for r in plan.requests}
    if ws.settings.llm.api_base:
        return "online", "llm.api_base names an endpoint of its own (its batch API is not assumed)"
    if not providers <= set(BATCH_API_PROVIDERS):
        return "online", f"{', '.join(sorted(providers))} has no batch API llmops uses"
    if n < AUTO_PROVIDER_MIN_REQUESTS:
        return "online", f"{n} requests (fewer than {AUTO_PROVIDER_MIN_REQUESTS}): online is done sooner"
    return "provider", f"{n} requests on {', '.join(sorted(providers))}: the batch API costs half"


def batch_plan_shards(ws: Workspace, input_path: str | Path, num_shards: int, **options: Any) -> list[dict[str, Any]]:
    plan, _client = _plan(ws, input_path, options)
    return plan_shards(plan, num_shards)


def batch_run_shard(
    ws: Workspace, input_path: str | Path, shard_index: int, num_shards: int, **options: Any
) -> dict[str, Any]:
    return batch(ws, input_path, shard=(int(shard_index), int(num_shards)), **options).to_dict()


def batch_merge_shards(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """The shards' results merged into the final outputs (no LLM call)."""
    plan, client = _plan(ws, input_path, options)
    llms = BatchLLMs(ws, client, plan.options.concurrency)
    return execute(plan, llms, call=False, checkpoints=ws.checkpoints(plan.run_dir)).to_dict()


# --- through the provider's Batch API (``--via provider``) ------------------------------------------------------
#
# The DAG's three tasks call, with the same options (they define the run, as for shards):
#   1. ``batch_provider_submit``: submit-or-find; a retried task finds the recorded jobs and creates none again;
#   2. ``batch_provider_poll`` in a sensor (``mode="reschedule"``, or a deferrable trigger calling it): one status
#      query per job, finished jobs read back into the checkpoints; ``done`` ends the wait;
#   3. ``batch_provider_collect``: reads back what is left and writes the output (the report, as ``batch``'s).


def batch_jobs_store(ws: Workspace, *, read_only: bool = False) -> Any:
    """The record of provider jobs (``core.batch.jobs``): the shared state database, or ``<data_dir>/batch/
    jobs.sqlite`` (``read_only`` where there is none yet: an empty one in memory, so looking creates no file).
    Close it (or use ``with``)."""
    from llmops_cli.core.batch.jobs import JOBS_FILE, ProviderJobs
    from llmops_cli.core.state import MEMORY

    state = ws.state()
    if state.shared:
        return ProviderJobs(state.db())
    path = ws.settings.data_path / JOBS_FILE
    return ProviderJobs(MEMORY if read_only and not path.is_file() else path)


class _ProviderSession:
    """A ProviderRun with what it opened (the jobs record, the API client), closed together."""

    def __init__(self, ws: Workspace, input_path: str | Path, options: dict[str, Any], *, read_only: bool = False):
        from llmops_cli.adapters.llm.batch_api import open_batch_api
        from llmops_cli.core.batch.provider import Limits, ProviderRun

        options = {**options, "via": "provider"}
        self.plan, client = _plan(ws, input_path, options)
        opts = self.plan.options
        models = sorted({r.model for r in self.plan.requests}) or [opts.model or ""]
        providers = {m.split("/", 1)[0] if "/" in m else "openai" for m in models}
        if len(providers) > 1:
            raise UsageError(
                f"--via provider: the requests name models of several providers ({', '.join(models)})",
                hint="run one provider's rows at a time",
            )
        ls = ws.settings.llm
        self.api = open_batch_api(
            models[0],
            api_base=ls.api_base,
            api_key=ls.api_key.get_secret_value() if ls.api_key else None,
            timeout=ls.timeout,
            max_retries=ls.max_retries,
            client=client,
        )
        self.jobs = batch_jobs_store(ws, read_only=read_only)
        self.run = ProviderRun(
            self.plan,
            self.api,
            self.jobs,
            ws.checkpoints(self.plan.run_dir),
            limits=Limits(opts.job_max_requests, opts.job_max_bytes),
            prices=_prices(ws, models[0]),
            price_factor=opts.price_factor,
            on_answer=self._on_answer,
        )
        self.ws = ws
        self._logged_ids: dict[str | None, set[str]] = {}

    def _on_answer(self, req: Any, rec: dict[str, Any]) -> None:
        """An answer read back reached the LLM: recorded in the answer log (kind "batch", as online rows are) and
        put in the LLM cache (a later online run of the same request is answered from it)."""
        from llmops_cli.core.feedback.recording import _prompt_of, record_llm_call
        from llmops_cli.core.ports import Completion

        batch_id = rec.get("batch_id")
        if req.id in self._logged(batch_id):
            return  # a collect killed after its answer-log rows and before the job was marked collected: no twice
        prompt, system = _prompt_of(req.messages)
        extra: dict[str, Any] = {"via": "provider", "batch_id": batch_id, "custom_id": req.id}
        if system:
            extra["system"] = system
        self._logged(batch_id).add(req.id)
        record_llm_call(
            self.ws.answer_log(),
            kind="batch",
            prompt=prompt,
            response=rec.get("response") or "",
            model=req.model,
            input_tokens=rec.get("input_tokens") or 0,
            output_tokens=rec.get("output_tokens") or 0,
            cost=rec.get("cost"),
            extra=extra,
        )
        if self.plan.options.use_cache:
            self.ws.llm_cache().put(
                req.request_hash,
                Completion(
                    text=rec.get("response") or "",
                    model=req.model,
                    input_tokens=rec.get("input_tokens") or 0,
                    output_tokens=rec.get("output_tokens") or 0,
                    cost=rec.get("cost"),
                ),
            )

    def _logged(self, batch_id: str | None) -> set[str]:
        """The custom_ids of ``batch_id``'s answers already in the answer log (read once per job): a job read back
        again writes only the rows it has not written. Rows of the job are newer than its record."""
        if batch_id not in self._logged_ids:
            job = next((j for j in self.run.run_jobs() if j.batch_id == batch_id), None)
            since = (job.created_at - 1.0) if job is not None and job.created_at else None
            self._logged_ids[batch_id] = {
                str(r.extra.get("custom_id"))
                for r in self.ws.answer_log().since(since, kind="batch")
                if r.extra.get("batch_id") == batch_id and r.extra.get("custom_id") is not None
            }
        return self._logged_ids[batch_id]

    def close(self) -> None:
        self.api.close()
        self.jobs.close()

    def __enter__(self) -> Any:
        return self.run

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prices(ws: Workspace, model: str) -> tuple[float | None, float | None]:
    from llmops_cli.adapters.llm.litellm_llm import token_prices

    llm = ws.settings.llm
    prices = (llm.input_cost_per_token, llm.output_cost_per_token)
    return prices if prices != (None, None) else token_prices(model)


def _provider_report(ws: Workspace, run: Any, t0: float) -> BatchReport:
    """The output written from the checkpoints (as an online run writes it) and the report of this process."""
    import time

    from llmops_cli.core.batch.provider import summarise

    def no_calls(model: str) -> LLM:
        raise AssertionError("a provider run makes no online call")

    report = execute(run.plan, no_calls, call=False, checkpoints=run.checkpoints)
    u = run.usage_now
    jobs = run.run_jobs()
    report.via = "provider"
    report.jobs = [j.to_dict() for j in jobs]
    report.calls = run.collected_now
    report.from_checkpoint = max(0, report.from_checkpoint - run.collected_now)
    report.input_tokens, report.output_tokens = u["input_tokens"], u["output_tokens"]
    report.cost_usd = round(u["cost"], 8) if (u["cost"] or not u["cost_unknown"]) else None
    report.cost_unknown = u["cost_unknown"]
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    report.requests_per_s = round(run.collected_now / report.elapsed_s, 2) if report.elapsed_s > 0 else 0.0
    if report.pending:
        s = summarise(jobs)
        report.error_samples = report.error_samples or [
            {"id": None, "error": f"{s['jobs'] - s['finished_jobs']} provider jobs still running", "status": None}
        ]
    return report


def batch_provider(
    ws: Workspace, input_path: str | Path, *, progress: Any = None, wait: bool = True, **options: Any
) -> BatchReport:
    """Submit (or find the recorded jobs), wait for the provider with a growing interval (``wait=False``: one poll),
    read the answers back and write the output. Killed at any point, the same call continues the same jobs."""
    import time

    t0 = time.perf_counter()
    with _ProviderSession(ws, input_path, options) as run:
        run.submit()

        def on_poll(jobs: list[Any]) -> None:
            if progress is not None:
                from llmops_cli.core.batch.provider import summarise

                s = summarise(jobs)
                progress(s["completed"] + s["failed"], s["requests"], run.usage_now["cost"])

        if wait:
            run.wait(poll_interval=run.plan.options.poll_interval, on_poll=on_poll)
        else:
            on_poll(run.poll())
            run.collect()
        return _provider_report(ws, run, t0)


def batch_provider_submit(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """DAG task 1: create the jobs no recorded job holds (none on a retry); returns the run's jobs (for XCom)."""
    from llmops_cli.core.batch.provider import summarise

    with _ProviderSession(ws, input_path, options) as run:
        jobs = run.submit()
        return {"run": run.run_key, "created": run.created_now, **summarise(jobs), "jobs": [j.to_dict() for j in jobs]}


def batch_provider_poll(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """DAG task 2 (a sensor's poke): one status query per unfinished job, finished jobs read back; never waits.
    ``done`` is True once every job has finished."""
    from llmops_cli.core.batch.provider import summarise

    with _ProviderSession(ws, input_path, options) as run:
        jobs = run.poll()
        run.collect()
        return {"run": run.run_key, **summarise(jobs)}


def batch_provider_collect(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """DAG task 3: read back what is left, write the output and the errors file; the report (``batch``'s)."""
    import time

    t0 = time.perf_counter()
    with _ProviderSession(ws, input_path, options) as run:
        run.poll()
        run.collect()
        return _provider_report(ws, run, t0).to_dict()


def batch_provider_cancel(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """Cancel the run's unfinished provider jobs; a later run collects what they answered."""
    from llmops_cli.core.batch.provider import summarise

    with _ProviderSession(ws, input_path, options) as run:
        jobs = run.cancel()
        return {"run": run.run_key, **summarise(jobs), "jobs": [j.to_dict() for j in jobs]}


def batch_provider_status(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """The run's jobs, refreshed from the provider (nothing read back, nothing written)."""
    from llmops_cli.core.batch.provider import summarise

    with _ProviderSession(ws, input_path, options, read_only=True) as run:
        jobs = run.poll()
        return {"run": run.run_key, **summarise(jobs), "jobs": [j.to_dict() for j in jobs]}


def batch_jobs_list(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    """Every recorded provider job, newest first (no provider call)."""
    with batch_jobs_store(ws, read_only=True) as jobs:
        return [j.to_dict() for j in jobs.all(limit)]


# --- locations: an input URL, a results location that is never overwritten ---------------------------------------


def local_input(input_path: str) -> str:
    """A readable local path for ``input_path``: itself, a ``file://`` URL's path, or a remote URL's copy (at a
    path named after the URL, so the same command finds the same run)."""
    import tempfile

    from llmops_cli.core.locations import base_name, is_url, local_path, staging_key

    if not is_url(input_path):
        return input_path
    local = local_path(input_path)
    if local is not None:
        return local
    from llmops_cli.adapters.storage import fetch_file

    base = Path(tempfile.gettempdir()) / "llmops-inputs"
    return str(fetch_file(input_path, base / staging_key(input_path) / base_name(input_path)))


def staged_output(output: str | None, *, check: bool = True) -> str | None:
    """For a remote results location (``s3://...``): the local file the run writes before ``publish_outputs``;
    None for a local path. With ``check``, a location that exists already is refused before any call (results are
    never replaced); without, only the path (``status`` and ``cancel`` name a run that may have published)."""
    from llmops_cli.core.locations import is_url, local_path

    if output is None or not is_url(output):
        return None
    if local_path(output) is not None:
        return None
    from llmops_cli.adapters.storage import exists
    from llmops_cli.entry.dag_support import sibling, staging_output

    if not check:
        return staging_output(output)
    errors = sibling(output, Path(staging_output(output)).stem + ".errors.jsonl")
    for where in (output, errors):
        if exists(where):
            from llmops_cli.errors import ConflictError

            raise ConflictError(
                f"{where} exists already: llmops never replaces an earlier result",
                hint="pass another --output (the answers stay in the run's checkpoint: nothing is asked again)",
            )
    return staging_output(output)


def publish_outputs(report: BatchReport, output: str) -> BatchReport:
    """Put the report's files at the remote ``output`` (the errors file first: the results' presence says the run
    published), with the DAGs' no-clobber rule; the report then names the locations."""
    from llmops_cli.entry.dag_support import publish_result, sibling

    if report.output is None or report.errors_file is None:
        return report
    errors = sibling(output, Path(report.errors_file).name)
    publish_result(report.errors_file, errors)
    publish_result(report.output, output)
    report.output, report.errors_file = output, errors
    return report
