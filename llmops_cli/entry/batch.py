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


def batch(
    ws: Workspace,
    input_path: str | Path,
    *,
    progress: Any = None,
    shard: tuple[int, int] | None = None,
    **options: Any,
) -> BatchReport:
    """Run a batch (or one shard of it) to the end; the report's exit_code is 3 when rows ended as errors."""
    plan, client = _plan(ws, input_path, options)
    cache = ws.llm_cache() if plan.options.use_cache else None
    return execute(
        plan,
        BatchLLMs(ws, client, plan.options.concurrency),
        cache=cache,
        progress=progress,
        shard=shard,
        checkpoints=ws.checkpoints(plan.run_dir),
    )


def batch_dry_run(ws: Workspace, input_path: str | Path, **options: Any) -> dict[str, Any]:
    """What a run would do: requests, how many the checkpoint and the cache already answer, an estimated cost."""
    from llmops_cli.adapters.llm.litellm_llm import token_prices

    plan, _client = _plan(ws, input_path, options)
    llm = ws.settings.llm
    prices: tuple[float | None, float | None] = (llm.input_cost_per_token, llm.output_cost_per_token)
    if prices == (None, None) and plan.requests:
        prices = token_prices(plan.requests[0].model)
    cache = ws.llm_cache() if plan.options.use_cache else None
    return estimate(plan, cache=cache, prices=prices, checkpoints=ws.checkpoints(plan.run_dir))


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
