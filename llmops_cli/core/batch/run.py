"""A batch run: plan (rows -> requests, run folder), execute the requests not done yet, write the output.

The run folder (``<data_dir>/batch/<input stem>-<run key>``, or ``--run-dir``) holds ``run.json`` and the
checkpoint files. The run key hashes what defines the run (input and output paths, model, prompt, schema,
parameters), so the same command finds the same folder and resumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.batch.requests import (
    BatchRequest,
    Template,
    build_requests,
    is_openai_batch_rows,
    load_batch_prompt,
    shard_of,
)
from llmops_cli.core.locations import check_output_file
from llmops_cli.errors import ExitCode, InputError, LlmopsError, UsageError

if TYPE_CHECKING:
    from llmops_cli.core.batch.checkpoint import Checkpoints
    from llmops_cli.core.llm_cache import LLMCache
    from llmops_cli.core.ports import LLM

ProgressFn = Callable[[int, int, float], None]  # (requests finished, requests to run, cost so far in USD)


@dataclass
class BatchOptions:
    model: str | None = None
    template: str | None = None  # a template file
    prompt: str | None = None  # or the user prompt itself
    system: str | None = None
    output: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    schema: str | None = None  # a JSON schema file
    id_column: str | None = None
    use_cache: bool = True
    retry_failed: bool = False
    max_attempts: int = 6
    timeout: float = 60.0  # per request
    temperature: float | None = 0.0
    max_tokens: int | None = None
    limit: int | None = None
    run_dir: str | None = None
    # --via provider: the provider's Batch API instead of online calls
    via: str = "online"
    poll_interval: float = 30.0  # seconds before the first status query of a wait; grows up to 10x
    job_max_requests: int = 50_000  # per provider job (OpenAI's limit)
    job_max_bytes: int = 190 * 1024 * 1024  # per provider job input file (OpenAI's limit is 200 MB)
    price_factor: float = 0.5  # the batch price: this share of the online price per token

    def __post_init__(self) -> None:
        if self.via not in ("online", "provider"):
            raise UsageError(f"--via {self.via!r} is not one of online, provider")
        if self.poll_interval <= 0 or self.job_max_requests < 1 or self.job_max_bytes < 1:
            raise UsageError("--poll-interval and the per-job limits must be positive")
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        for name in ("rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UsageError(f"--{name} must be positive (got {v})")
        if self.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")


@dataclass
class BatchPlan:
    input_path: Path
    rows: list[dict[str, Any]]
    requests: list[BatchRequest]
    run_dir: Path
    output: Path
    errors_path: Path
    openai_format: bool
    schema: dict[str, Any] | None
    options: BatchOptions
    prompt: dict[str, Any] | None = None  # the prompt's name, sha256 and source (None: OpenAI Batch request rows)


@dataclass
class BatchReport:
    input: str
    output: str | None
    errors_file: str | None
    run_dir: str
    rows: int
    requests: int
    answered: int  # requests with an answer (this run, earlier runs, or the cache)
    errors: int
    pending: int  # not done (a shard run, or an interrupted one)
    from_checkpoint: int  # done by an earlier run, skipped
    cache_hits: int
    calls: int  # provider calls this run, retries included
    retries: int
    input_tokens: int  # this run's calls
    output_tokens: int
    cost_usd: float | None  # this run's calls; None when no price is known
    cost_total_usd: float | None  # every answer in the output, earlier runs included
    cost_unknown: int
    elapsed_s: float
    requests_per_s: float
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    shard: str | None = None
    output_kept: str | None = None  # an earlier results file left as it was: this run answered no row
    via: str = "online"
    prompt: dict[str, Any] | None = None  # the prompt's name, sha256 and source (None: OpenAI Batch request rows)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # --via provider: the run's provider jobs

    @property
    def exit_code(self) -> ExitCode:
        if self.errors and not self.answered:
            return ExitCode.FAILURE  # every row failed: nothing was produced, not a partial success
        return ExitCode.PARTIAL if self.errors or self.pending else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = int(self.exit_code)
        return d


def _run_key(input_path: Path, output: Path, opts: BatchOptions, template: Template | None, schema: dict | None) -> str:
    blob = json.dumps(
        {
            "input": str(input_path),
            "output": str(output),
            "model": opts.model,
            "template": asdict(template) if template else None,
            "schema": schema,
            "id_column": opts.id_column,
            "temperature": opts.temperature,
            "max_tokens": opts.max_tokens,
        },
        sort_keys=True,
        default=str,
    )  # not --limit: a trial on the first rows is resumed by the full run
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check_request_rows(rows: list[dict[str, Any]]) -> None:
    """Rows meant as OpenAI Batch requests (the first has a ``custom_id`` or a body object) of which one is not:
    name it, rather than say the file is not in the request format at all."""
    if not ("custom_id" in rows[0] or isinstance(rows[0].get("body"), dict)):  # a CSV "body" column is text
        return
    for n, r in enumerate(rows, 1):
        missing = [k for k in ("custom_id", "body") if k not in r]
        if missing or not isinstance(r["body"], dict):
            what = (
                f"has no {' and no '.join(missing)}" if missing else f"has a body that is a {type(r['body']).__name__}"
            )
            raise InputError(
                f"row {n} is not an OpenAI Batch request: it {what}",
                hint='every row needs a custom_id and a body object ({"messages": [...]}), '
                "or pass --prompt-text 'Summarise: {text}' to fill a prompt from columns",
            )


def prepare(input_path: str | Path, opts: BatchOptions, data_path: Path) -> BatchPlan:
    """Read the input and build the requests; validates everything before any call is made."""
    # the readers, the engine and its parts are imported where used: `llmops --help` imports this module
    # (through the batch command), and they add ~10% to its start-up
    from llmops_cli.core.batch.inputs import read_rows, table_format
    from llmops_cli.core.batch.validation import load_schema, response_format_for

    src = Path(input_path).expanduser().resolve()
    rows = read_rows(src)
    if opts.limit:
        rows = rows[: opts.limit]
    openai_format = is_openai_batch_rows(rows) and not (opts.template or opts.prompt)
    if not openai_format and not (opts.template or opts.prompt):
        _check_request_rows(rows)
    template, prompt_ref = (None, None) if openai_format else load_batch_prompt(opts.template, opts.prompt, opts.system)
    schema = load_schema(opts.schema) if opts.schema else None
    params: dict[str, Any] = {}
    if opts.temperature is not None:
        params["temperature"] = opts.temperature
    if opts.max_tokens:
        params["max_tokens"] = opts.max_tokens
    if schema is not None:
        params["response_format"] = response_format_for(schema)
    requests = build_requests(rows, model=opts.model, params=params, template=template, id_column=opts.id_column)

    if opts.output:
        output = Path(opts.output).expanduser().resolve()
    else:
        ext = ".jsonl" if openai_format else src.suffix
        output = src.with_name(f"{src.stem}.results{ext}")
    if table_format(output) != "jsonl" and openai_format:
        raise InputError(f"--output {output.name}: OpenAI Batch results are JSONL", hint="use a .jsonl output file")
    if output == src:
        raise UsageError(f"--output {output} is the input file", hint="write the results to another file")
    table_format(output)
    errors_path = output.with_name(f"{output.stem}.errors.jsonl")
    if errors_path == src:  # it is always rewritten: the input would be emptied (a rerun of an errors file)
        raise UsageError(
            f"the errors file of --output {output.name} would be the input file {src}",
            hint="pass another --output (its errors file is <output stem>.errors.jsonl, always rewritten)",
        )
    # the answers would stay in the checkpoint, the output unwritten
    for path, what in ((output, "--output"), (errors_path, "the errors file")):
        check_output_file(path, what, hint="pass an --output file name (.jsonl, .csv or .parquet)")
    run_dir = (
        Path(opts.run_dir).expanduser().resolve()
        if opts.run_dir
        else data_path / "batch" / f"{src.stem}-{_run_key(src, output, opts, template, schema)}"
    )
    return BatchPlan(src, rows, requests, run_dir, output, errors_path, openai_format, schema, opts, prompt_ref)


def checkpoints_of(plan: BatchPlan, checkpoints: Checkpoints | None = None) -> Checkpoints:
    """``checkpoints`` if given (the state database's, ``DbCheckpoints``), else the run folder's files."""
    from llmops_cli.core.batch.checkpoint import FileCheckpoints

    return checkpoints if checkpoints is not None else FileCheckpoints(plan.run_dir)


def load_done(plan: BatchPlan, checkpoints: Checkpoints | None = None) -> dict[str, dict[str, Any]]:
    """Checkpoint records that belong to this plan's requests (same id AND same request hash)."""
    wanted = {r.id: r.request_hash for r in plan.requests}
    records = checkpoints_of(plan, checkpoints).load()
    return {rid: rec for rid, rec in records.items() if wanted.get(rid) == rec.get("request_hash")}


def execute(
    plan: BatchPlan,
    llm_for: Callable[[str], LLM],
    *,
    cache: LLMCache | None = None,
    progress: ProgressFn | None = None,
    shard: tuple[int, int] | None = None,
    write_output: bool = True,
    call: bool = True,
    checkpoints: Checkpoints | None = None,
) -> BatchReport:
    """Run what is not done yet (only ``shard`` = (index, count) of it, if given), then write the output.

    ``call=False`` makes no calls: rows without a record are reported as pending (for merging shards).
    ``checkpoints``: where finished requests are kept (default: files in the run folder).
    """
    from llmops_cli.core.batch.engine import Engine
    from llmops_cli.core.batch.outputs import has_answers, write_outputs
    from llmops_cli.core.batch.ratelimit import RateLimiter
    from llmops_cli.core.batch.retry import RetryPolicy
    from llmops_cli.core.batch.validation import SchemaValidator

    opts = plan.options
    t0 = time.perf_counter()
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_json(plan)
    checkpoints = checkpoints_of(plan, checkpoints)
    done = load_done(plan, checkpoints)
    mine = [r for r in plan.requests if shard is None or shard_of(r.id, shard[1]) == shard[0]]

    def needs_call(r: BatchRequest) -> bool:
        rec = done.get(r.id)
        return rec is None or (opts.retry_failed and rec.get("status") != "ok")

    todo = [r for r in mine if needs_call(r)] if call else []
    skipped = sum(1 for r in mine if r.id in done and not needs_call(r))

    finished = 0
    cost_so_far = 0.0
    engine = Engine(
        llm_for=llm_for,
        concurrency=opts.concurrency,
        retry=RetryPolicy(max_attempts=opts.max_attempts),
        limiter=RateLimiter(opts.rpm, opts.tpm),  # also without limits: a 429 with Retry-After pauses every worker
        cache=cache if opts.use_cache else None,
        validator=SchemaValidator(plan.schema) if plan.schema is not None else None,
        timeout_s=opts.timeout,
    )
    if todo:
        name = f"shard-{shard[0]:05d}-of-{shard[1]:05d}" if shard else "all"
        with checkpoints.writer(name) as writer:

            def on_record(rec: dict[str, Any]) -> None:
                nonlocal finished, cost_so_far
                writer.append(rec)
                done[rec["id"]] = rec
                finished += 1
                cost_so_far += rec.get("cost") or 0.0
                if progress is not None:
                    progress(finished, len(todo), cost_so_far)

            engine.on_record = on_record
            asyncio.run(engine.run(todo))

    stats = engine.stats
    in_scope = {r.id for r in mine}
    scoped = {rid: rec for rid, rec in done.items() if rid in in_scope}
    answered = sum(1 for rec in scoped.values() if rec.get("status") == "ok")
    errors = sum(1 for rec in scoped.values() if rec.get("status") != "ok")
    pending = len(mine) - answered - errors
    output = errors_file = kept = None
    if write_output and pending == 0 and shard is None:
        # a run that answered nothing never replaces results that hold answers (e.g. an earlier good run's)
        keep = answered == 0 and errors > 0 and has_answers(plan.output, openai_format=plan.openai_format)
        try:
            write_outputs(
                plan.output,
                plan.errors_path,
                plan.rows,
                plan.requests,
                done,
                openai_format=plan.openai_format,
                with_parsed=plan.schema is not None,
                results=not keep,
            )
        except OSError as e:  # e.g. a full disk, or a folder that could not be made: the answers are checkpointed
            raise LlmopsError(
                f"could not write the results to {plan.output}: {e.strerror or e}",
                hint="the answers are kept in the run's checkpoint: fix the location and run the same command again, "
                f"or add another --output and --run-dir {plan.run_dir}; nothing is asked again",
            ) from e
        output, errors_file, kept = (
            (None if keep else str(plan.output)),
            str(plan.errors_path),
            (str(plan.output) if keep else None),
        )
    costs = [rec.get("cost") for rec in scoped.values() if rec.get("status") == "ok" and not rec.get("cached")]
    known = [c for c in costs if c is not None]
    by_kind: dict[str, int] = {}
    for rec in scoped.values():
        if rec.get("status") != "ok":
            k = str(rec.get("error_kind") or "error")
            by_kind[k] = by_kind.get(k, 0) + 1
    samples = [
        {"id": rec["id"], "error": rec.get("error"), "status": rec.get("error_status")}
        for rec in scoped.values()
        if rec.get("status") != "ok"
    ][:5]
    elapsed = time.perf_counter() - t0
    rows_in_scope = sum(len(r.rows) for r in mine)
    return BatchReport(
        input=str(plan.input_path),
        output=output,
        errors_file=errors_file,
        run_dir=str(plan.run_dir),
        rows=rows_in_scope,
        requests=len(mine),
        answered=answered,
        errors=errors,
        pending=pending,
        from_checkpoint=skipped,
        cache_hits=stats.cache_hits,
        calls=stats.calls,
        retries=stats.retries,
        input_tokens=stats.input_tokens,
        output_tokens=stats.output_tokens,
        cost_usd=round(stats.cost, 8) if (stats.cost or not stats.cost_unknown) else None,
        cost_total_usd=round(sum(known), 8) if known or not costs else None,
        cost_unknown=stats.cost_unknown,
        elapsed_s=round(elapsed, 3),
        requests_per_s=round(len(todo) / elapsed, 2) if elapsed > 0 else 0.0,
        errors_by_kind=by_kind,
        error_samples=samples,
        shard=f"{shard[0]}/{shard[1]}" if shard else None,
        output_kept=kept,
        prompt=plan.prompt,
    )


def _write_run_json(plan: BatchPlan) -> None:
    doc = {
        "input": str(plan.input_path),
        "output": str(plan.output),
        "rows": len(plan.rows),
        "requests": len(plan.requests),
        "prompt": plan.prompt,
        "options": {k: v for k, v in asdict(plan.options).items() if v is not None},
    }
    path = plan.run_dir / "run.json"
    tmp = path.with_name(f".run.json.{os.getpid()}.{threading.get_ident()}.tmp")  # shards write it concurrently
    tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def estimate(
    plan: BatchPlan,
    *,
    cache: LLMCache | None = None,
    prices: tuple[float | None, float | None] | None = None,
    show: int = 3,
    checkpoints: Checkpoints | None = None,
) -> dict[str, Any]:
    """What ``--dry-run`` shows: first rendered prompts, counts, estimated tokens and (upper bound) cost."""
    done = load_done(plan, checkpoints)
    todo = [
        r for r in plan.requests if r.id not in done or (plan.options.retry_failed and done[r.id].get("status") != "ok")
    ]
    cached = sum(
        1 for r in todo if cache is not None and plan.options.use_cache and cache.get(r.request_hash) is not None
    )
    tin = sum(r.estimated_input_tokens() for r in todo)
    tout_max = sum(int(r.params.get("max_tokens") or 0) for r in todo) or None
    cost = None
    if prices and (prices[0] is not None or prices[1] is not None):
        cost = tin * (prices[0] or 0.0) + (tout_max or 0) * (prices[1] or 0.0)
    return {
        "input": str(plan.input_path),
        "format": "openai-batch" if plan.openai_format else "rows",
        "rows": len(plan.rows),
        "requests": len(plan.requests),
        "done_already": len(plan.requests) - len(todo),
        "to_run": len(todo),
        "cached": cached,
        "estimated_input_tokens": tin,
        "max_output_tokens": tout_max,
        "estimated_cost_usd": round(cost, 6) if cost is not None else None,
        "cost_note": "input tokens ~ characters / 4; output at most max_tokens per request"
        if cost is not None
        else "price unknown: set llm.input_cost_per_token and llm.output_cost_per_token",
        "models": sorted({r.model for r in plan.requests}),
        "output": str(plan.output),
        "run_dir": str(plan.run_dir),
        "first_prompts": [{"id": r.id, "messages": r.messages} for r in plan.requests[:show]],
    }


def plan_shards(plan: BatchPlan, num_shards: int) -> list[dict[str, Any]]:
    """One entry per shard (for Airflow's ``expand``): index, count and how many requests it holds."""
    if num_shards < 1:
        raise UsageError("the number of shards must be at least 1")
    sizes = [0] * num_shards
    for r in plan.requests:
        sizes[shard_of(r.id, num_shards)] += 1
    return [{"shard_index": i, "num_shards": num_shards, "requests": n} for i, n in enumerate(sizes)]
