"""llmops_batch_inference: offline LLM inference over an input table, mapped over shards of its rows.

Thin by design: ``llmops_cli.airflow.steps`` (the steps of its ``batch_group``) over the ``llmops_cli.entry.batch``
entry points, the same ones as ``llmops batch``.

- ``plan`` validates the input and the prompt and splits the requests into shards (by a stable hash of the row id);
- ``run_shard`` is mapped (``.expand``) over the shards; each appends to its own checkpoint, so a retried task or
  a re-triggered run resumes where it stopped (rows that end as errors are recorded, not raised);
- ``merge`` joins the checkpoints to the input, writes the results and the errors file to a local staging folder,
  then publishes them at ``output`` and ``<output stem>.errors.jsonl`` beside it, and puts the summary in XCom and
  a JSON report under ``<data_dir>/airflow-reports/llmops_batch_inference/``. When every request failed the task
  fails and publishes nothing (so the run fails: ``trigger-dag --wait`` exits 5); when some failed, the outcome is
  ``partial`` (``trigger-dag --wait`` exits 3, like ``llmops batch``).

``via="provider"`` sends the requests through the provider's Batch API instead (half the price, its own limits):

- ``submit`` creates the provider jobs, each recorded in the state database before it is created, so a retried
  ``submit`` finds the recorded jobs and creates none again;
- ``wait`` is a sensor in ``mode="reschedule"``: each poke is one status query (finished jobs are read back into the
  run's checkpoint) and between pokes the task gives its worker slot back, so a job that takes hours holds no slot;
  the interval grows from ``poke_interval`` to ten minutes; a retried ``wait`` polls the same recorded jobs;
- ``collect`` writes and publishes the results as ``merge`` does (same files, same outcome).

Locations: ``input``, ``output``, ``template``, ``schema`` and ``config`` are absolute paths or URLs every worker
can reach (``/srv/in.jsonl``, ``file:///srv/in.jsonl``, ``s3://bucket/in.jsonl``); a relative path is refused when
the run is triggered. ``output`` is required (never beside the input by default) and an earlier result is never
replaced: a run whose ``output`` (or its errors file) exists already fails in ``merge`` with exit 10's message
(the answers stay in the run's checkpoint: trigger again with another ``output`` and the same ``run_dir`` to publish
them without calling the LLM again). ``run_dir`` is an absolute path of a folder the workers share.

The workers must share ``data_dir`` (or pass the same ``run_dir``). ``rpm`` / ``tpm`` apply per shard task.
Params are validated when the run is triggered. LLM settings (model, api_base, key) come from the config
file / LLMOPS_LLM_* env of the workers unless ``model`` is given.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, PokeReturnValue, dag, task

from llmops_cli.airflow import steps
from llmops_cli.entry.dag_support import (
    OUTCOME_XCOM_KEY,
    batch_outcome,
    location_schema,
    resolve_params,
    settings_from_params,
    write_report,
)

OPT_STR = ["null", "string"]
OPT_NUM = ["null", "number"]
OPT_INT = ["null", "integer"]

# params passed through to the batch options (None = the default)
OPTION_PARAMS = (
    "model",
    "template",
    "prompt",
    "system",
    "output",
    "concurrency",
    "rpm",
    "tpm",
    "schema",
    "id_column",
    "max_attempts",
    "temperature",
    "max_tokens",
    "limit",
    "run_dir",
)


@dag(
    dag_id="llmops_batch_inference",
    schedule=None,
    catchup=False,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "input": Param(type="string", minLength=1, **location_schema("Input table (.jsonl, .csv or .parquet).")),
        "output": Param(
            type="string",
            minLength=1,
            **location_schema(
                "Results file (.jsonl, .csv or .parquet; the errors go to <stem>.errors.jsonl beside it); "
                "never replaced: a run whose output exists already fails."
            ),
        ),
        "via": Param(
            "online",
            enum=["online", "provider"],
            description="online: one call per row, mapped over shards; provider: the provider's Batch API "
            "(submit, a rescheduling wait, collect).",
        ),
        "shards": Param(4, type="integer", minimum=1, maximum=256, description="How many mapped tasks (online)."),
        "model": Param(None, type=OPT_STR, description="litellm model string (default: llm.model)."),
        "template": Param(None, type=OPT_STR, **location_schema("Prompt template file.")),
        "prompt": Param(None, type=OPT_STR, description="Or the user prompt itself ({column} placeholders)."),
        "system": Param(None, type=OPT_STR, description="System prompt."),
        "concurrency": Param(None, type=OPT_INT, minimum=1, maximum=512, description="Concurrent calls per shard."),
        "rpm": Param(None, type=OPT_NUM, exclusiveMinimum=0, description="Requests per minute, per shard."),
        "tpm": Param(None, type=OPT_NUM, exclusiveMinimum=0, description="Tokens per minute, per shard."),
        "schema": Param(None, type=OPT_STR, **location_schema("JSON schema file the answers must match.")),
        "id_column": Param(None, type=OPT_STR, description="Column with row ids (default: generated, stable)."),
        "max_attempts": Param(None, type=OPT_INT, minimum=1, maximum=20, description="Attempts per request."),
        "temperature": Param(None, type=OPT_NUM, minimum=0, maximum=2),
        "max_tokens": Param(None, type=OPT_INT, minimum=1),
        "limit": Param(None, type=OPT_INT, minimum=1, description="Only the first N rows."),
        "run_dir": Param(
            None,
            type=OPT_STR,
            pattern="^/",
            description="Run folder shared by the workers, an absolute path (default: under data_dir).",
        ),
        "config": Param(
            None, type=OPT_STR, **location_schema("llmops config file for the tasks (default: $LLMOPS_CONFIG).")
        ),
    },
)
def llmops_batch_inference():
    # llmops_cli.airflow's steps (batch_group's plan -> run_shard -> merge), over the entry points of `llmops batch`
    def run(params) -> tuple:
        """(settings, input, output, the batch options) of a run; the results are staged locally, then published."""
        params = resolve_params(params)
        opts = {k: params[k] for k in OPTION_PARAMS if params.get(k) is not None and k != "output"}
        return settings_from_params(params), params["input"], params["output"], opts

    @task
    def plan(params=None) -> list[dict]:
        settings, input_, output, opts = run(params)
        shards = steps.batch_plan(settings, input_, output, params["shards"], **opts)
        print(f"{sum(s['requests'] for s in shards)} requests in {len(shards)} shard(s)")
        return shards

    @task(retries=2, retry_delay=timedelta(seconds=10))
    def run_shard(shard: dict, params=None) -> dict:
        settings, input_, output, opts = run(params)
        report = steps.batch_shard(settings, input_, output, shard, **opts)
        print(f"shard {shard['shard_index']}/{shard['num_shards']}: {report}")
        return report

    @task
    def merge(reports, params=None, run_id=None, ti=None) -> dict:
        settings, input_, output, opts = run(params)
        summary = steps.batch_merged(settings, input_, output, list(reports), **opts)  # staged: nothing published
        try:
            result = batch_outcome(summary)  # raises when every request failed: the run fails, publishing nothing
        finally:
            print(f"report: {write_report(settings, 'llmops_batch_inference', run_id, summary)}")
        summary = steps.publish_batch(summary, output)  # the errors file first, never replacing a result
        print(f"results: {output}")
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value={**result, "summary": summary})
        if result["status"] == "partial":
            print(f"PARTIAL: {result['message']}")
        return summary

    def provider_step(step: str, params) -> dict:
        settings, input_, output, opts = run(params)
        return steps.batch_provider(step, settings, input_, output, **opts)

    @task.branch
    def route(params=None) -> str:
        return "submit" if params.get("via") == "provider" else "plan"

    @task(retries=2, retry_delay=timedelta(seconds=10))
    def submit(params=None) -> dict:
        jobs = provider_step("submit", params)
        print(f"{jobs['requests']} requests in {jobs['jobs']} provider job(s), {jobs['created']} created now")
        return {k: v for k, v in jobs.items() if k != "jobs"}

    @task.sensor(
        mode="reschedule",
        poke_interval=5,
        exponential_backoff=True,
        max_wait=timedelta(minutes=10),
        timeout=timedelta(hours=30),  # the provider's window is 24 h
        retries=3,
        retry_delay=timedelta(seconds=5),
    )
    def wait(submitted: dict, params=None) -> PokeReturnValue:
        state = provider_step("poll", params)
        print(
            f"jobs {state['statuses']}: {state['completed']} completed, {state['failed']} failed of {state['requests']}"
        )
        return PokeReturnValue(is_done=bool(state["done"]), xcom_value=state)

    @task
    def collect(waited: dict, params=None, run_id=None, ti=None) -> dict:
        settings, _input, output, _opts = run(params)
        summary = provider_step("collect", params)  # staged: nothing published yet
        if summary.get("output_kept"):  # the staging copy of the earlier results: name the location
            summary["output_kept"] = output
        try:
            result = batch_outcome(summary)
        finally:
            print(f"report: {write_report(settings, 'llmops_batch_inference', run_id, summary)}")
        summary = steps.publish_batch(summary, output)
        print(f"results: {output}")
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value={**result, "summary": summary})
        if result["status"] == "partial":
            print(f"PARTIAL: {result['message']}")
        return summary

    planned, submitted = plan(), submit()
    route() >> [planned, submitted]
    merge(run_shard.expand(shard=planned))
    collect(wait(submitted))


llmops_batch_inference()
