"""Task groups for the common shapes, so a DAG that uses llmops is a few lines:

- ``ingest_group``: plan -> mapped shards (retried; one at a time on an embedded store) -> finalize;
- ``batch_group``: plan -> mapped shards (checkpointed, retried) -> merge and publish;
- ``eval_group``: evaluate (report published, summary in XCom) -> gates (fail without retry when one is not met);
- ``temporary_collection``: setup/teardown tasks around work on a collection that must not outlive the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup

from llmops_cli.airflow.operators import (
    LlmopsBatchMergeOperator,
    LlmopsBatchPlanOperator,
    LlmopsBatchShardOperator,
    LlmopsCheckGatesOperator,
    LlmopsDropCollectionOperator,
    LlmopsEvalOperator,
    LlmopsIngestFinalizeOperator,
    LlmopsIngestPlanOperator,
    LlmopsIngestShardOperator,
    LlmopsPrepareCollectionOperator,
)
from llmops_cli.entry.dag_support import writer_task_args


def ingest_group(
    group_id: str = "ingest",
    *,
    sources: Sequence[str] | str,
    shards: int = 4,
    glob: Sequence[str] | None = None,
    cleanup: str = "incremental",
    retries: int = 2,
    retry_delay: timedelta = timedelta(seconds=5),
    outlets: Sequence[Any] | None = None,
    embedded: bool | None = None,
    **common: Any,
) -> TaskGroup:
    """``common``: collection, llmops_conn_id, config, settings (every task of the group gets them); ``outlets``:
    the finalize task's (e.g. the collection's asset, to start the DAGs scheduled on it). ``embedded``: whether the
    store is the embedded one, whose writers run one at a time (default: what the settings say when the DAG file is
    parsed; pass False when a connection points the tasks at a server store, so the shards write in parallel)."""
    writer_args = writer_task_args(embedded)
    with TaskGroup(group_id) as group:
        plan = LlmopsIngestPlanOperator(task_id="plan", sources=sources, shards=shards, glob=glob, **common)
        shard = LlmopsIngestShardOperator.partial(
            task_id="ingest_shard",
            sources=sources,
            glob=glob,
            retries=retries,
            retry_delay=retry_delay,
            **writer_args,
            **common,
        ).expand(source_ids=plan.output)
        LlmopsIngestFinalizeOperator(
            task_id="finalize",
            sources=sources,
            shards=plan.output,
            reports=shard.output,
            plan_task_id=plan.task_id,
            cleanup=cleanup,
            outlets=list(outlets or []),
            **writer_args,
            **common,
        )
    return group


def batch_group(
    group_id: str = "batch",
    *,
    input: str,
    output: str,
    shards: int = 4,
    options: Mapping[str, Any] | None = None,
    retries: int = 2,
    retry_delay: timedelta = timedelta(seconds=10),
    **common: Any,
) -> TaskGroup:
    args = {"input": input, "output": output, "options": dict(options or {}), **common}
    with TaskGroup(group_id) as group:
        plan = LlmopsBatchPlanOperator(task_id="plan", shards=shards, **args)
        runs = LlmopsBatchShardOperator.partial(
            task_id="run_shard", retries=retries, retry_delay=retry_delay, **args
        ).expand(shard=plan.output)
        LlmopsBatchMergeOperator(task_id="merge", reports=runs.output, **args)
    return group


def eval_group(
    group_id: str = "eval",
    *,
    dataset: str,
    fail_under: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    output: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    **common: Any,
) -> TaskGroup:
    with TaskGroup(group_id) as group:
        ev = LlmopsEvalOperator(
            task_id="evaluate",
            dataset=dataset,
            fail_under=fail_under,
            metrics=metrics,
            output=output,
            k=k,
            mode=mode,
            fail_on_gates=False,
            **common,
        )
        ev >> LlmopsCheckGatesOperator(task_id="gates", summary=ev.output)
    return group


def temporary_collection(collection: str, *, task_prefix: str = "collection", **common: Any):
    """(setup, teardown) tasks for a collection that lives only for the run: ``setup >> work >> teardown``; the
    teardown runs whatever happened to the work (Airflow's setup/teardown semantics)."""
    setup = LlmopsPrepareCollectionOperator(task_id=f"{task_prefix}_setup", collection=collection, **common)
    teardown = LlmopsDropCollectionOperator(task_id=f"{task_prefix}_teardown", collection=collection, **common)
    return setup.as_setup(), teardown.as_teardown(setups=setup)
