"""`llmops batch`: resumable offline batch inference over a JSONL/CSV/parquet table.

Exit codes: 0 every row answered; 3 (PARTIAL) some rows ended as errors (listed in the errors file); 1 every row
ended as an error (an earlier results file with answers is kept, not overwritten); 2 bad input or flags;
7 the LLM endpoint cannot be reached; 8 credentials rejected; 9 model not found (7, 8, 9 stop the run: re-run the
same command to continue); 130 interrupted (re-run the same command to resume).

``--via provider`` sends the same requests through the provider's Batch API; ``llmops batch status|cancel INPUT
[the run's options]`` and ``llmops batch list`` show and steer the recorded provider jobs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from llmops_cli.cli.options import ConcurrencyOpt, DryRunOpt, JsonOpt, ModelOpt, QuietOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.core.locations import is_url, local_path
from llmops_cli.errors import UsageError

InputArg = Annotated[
    str,
    typer.Argument(
        help="Input table: .jsonl, .csv or .parquet (plain rows, or OpenAI Batch API request rows), a path or a URL "
        "(file://, s3://...). Or status / cancel (then INPUT follows) / list: the recorded provider jobs."
    ),
]
JOB_VERBS = ("status", "cancel", "list")


def _prompt_choice(
    prompt: str | None, prompt_text: str | None, template: str | None, prompt_short: str | None
) -> tuple[str | None, str | None]:
    """(prompt file, prompt text) from --prompt FILE, --prompt-text TEXT and the older spellings (--template FILE;
    --prompt and -p with the text itself). A --prompt value that is no file but reads as a prompt (a {column}
    placeholder or a space) is the text, as it was before --prompt took files; one that reads as a path is refused."""
    given = [v for v in (prompt, prompt_text, template, prompt_short) if v is not None]
    if len(given) > 1:
        raise UsageError("pass one of --prompt FILE and --prompt-text TEXT", hint="they are mutually exclusive")
    if template is not None:
        return template, None
    if prompt_text is not None or prompt_short is not None:
        return None, prompt_text if prompt_text is not None else prompt_short
    if prompt is None or Path(prompt).is_file():
        return prompt, None
    if "{" in prompt or any(c.isspace() for c in prompt):
        return None, prompt
    raise UsageError(
        f"--prompt {prompt}: no such prompt file",
        hint="pass an existing prompt file, or the prompt itself with --prompt-text 'Classify: {text}'",
    )


def batch(
    input_path: InputArg,
    run_input: Annotated[
        str | None, typer.Argument(help="With status or cancel: the run's input (and its options, as when run).")
    ] = None,
    model: ModelOpt = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            help="Prompt file, as eval run --prompt reads them (front matter, [system]/[user] sections), or plain "
            "text (the user part), or YAML/JSON with user and system; {column} placeholders. The run records its "
            "name and content hash.",
        ),
    ] = None,
    prompt_text: Annotated[
        str | None,
        typer.Option("--prompt-text", help="The user prompt itself, with {column} placeholders (instead of --prompt)."),
    ] = None,
    template: Annotated[str | None, typer.Option("--template", "-t", hidden=True)] = None,  # the old --prompt FILE
    prompt_short: Annotated[str | None, typer.Option("-p", hidden=True)] = None,  # the old -p TEXT
    system: Annotated[
        str | None, typer.Option("--system", help="A system prompt (with --prompt-text, or a prompt file without one).")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Results file (.jsonl, .csv, .parquet); default <input>.results.<ext>. Errors go to "
            "<output stem>.errors.jsonl.",
        ),
    ] = None,
    concurrency: ConcurrencyOpt = 16,
    rpm: Annotated[
        float | None, typer.Option("--rpm", help="Client-side limit: requests per minute.", min=0.001)
    ] = None,
    tpm: Annotated[
        float | None, typer.Option("--tpm", help="Client-side limit: tokens per minute (input + max output).", min=1)
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="A JSON schema file every answer must satisfy (sent as response_format)."),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Column holding each row's id (default: a hash of the request)."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM call cache.")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run again the rows a previous run recorded as errors.")
    ] = False,
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", help="Calls per row at most (429, 5xx, timeouts are retried).", min=1, max=50),
    ] = 6,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Per-request timeout in seconds (default: llm.timeout).", min=0.001),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Max output tokens per row (default: llm.max_tokens).", min=1)
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N rows.", min=1)] = None,
    client: Annotated[
        str,
        typer.Option(
            "--client",
            help="auto (a lean HTTP client for openai/<model> with llm.api_base, else litellm), litellm, or http.",
        ),
    ] = "auto",
    run_dir: Annotated[
        str | None, typer.Option("--run-dir", help="Checkpoint folder (default: <data_dir>/batch/<input>-<key>).")
    ] = None,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            help="online (calls, as they come), provider (the provider's Batch API: half price, finished within "
            "24 h; killed and run again, it continues the same jobs) or auto (provider for 1,000+ requests on a "
            "provider with a batch API, else online; says which and why).",
        ),
    ] = "online",
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="--via provider: seconds between status queries (grows).", min=0.01)
    ] = 30.0,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="--via provider: submit (or check) and return; run again to collect (exit 3)."),
    ] = False,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a prompt over every row of a table: resumable (re-run the same command), rate-limited, retried, cached,
    costed."""
    from llmops_cli.entry import batch as batch_entry  # the batch engine: loaded by the command, not by --help

    prompt_file, prompt_text = _prompt_choice(prompt, prompt_text, template, prompt_short)
    if client not in ("auto", "litellm", "http"):
        raise UsageError(f"--client {client!r} is not one of auto, litellm, http")
    if via not in ("online", "provider", "auto"):
        raise UsageError(f"--via {via!r} is not one of online, provider, auto")
    verb = input_path if input_path in JOB_VERBS and not Path(input_path).exists() else None
    if verb is None and run_input is not None:
        raise UsageError(f"unexpected argument {run_input!r}", hint="llmops batch INPUT [options]")
    if verb in ("status", "cancel") and run_input is None:
        raise UsageError(f"llmops batch {verb} needs the run's INPUT", hint=f"llmops batch {verb} INPUT [options]")
    out = Output(json_out, quiet=quiet)
    settings = state().load(flags={"llm.model": model}).settings
    if verb == "list":
        with workspace(settings) as ws:
            _print_jobs(out, {"jobs": batch_entry.batch_jobs_list(ws)})
        return
    remote_output = output if output and is_url(output) and local_path(output) is None else None
    if output and is_url(output) and local_path(output) is not None:
        output = local_path(output)
    source = run_input if verb else input_path
    options: dict[str, Any] = dict(
        model=model,
        template=prompt_file,
        prompt=prompt_text,
        system=system,
        output=output,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        schema=schema,
        id_column=id_column,
        use_cache=not no_cache,
        retry_failed=retry_failed,
        max_attempts=max_attempts,
        timeout=timeout,
        max_tokens=max_tokens,
        limit=limit,
        run_dir=run_dir,
        client=client,
        via=via,
        poll_interval=poll_interval,
    )
    assert source is not None
    source = batch_entry.local_input(source)
    if verb is not None:
        with workspace(settings) as ws:
            fn = batch_entry.batch_provider_status if verb == "status" else batch_entry.batch_provider_cancel
            _print_jobs(
                out, fn(ws, source, **{**options, "output": batch_entry.staged_output(output, check=False) or output})
            )
        return
    if remote_output:
        options["output"] = batch_entry.staged_output(remote_output)
    if dry_run:
        with workspace(settings) as ws:
            est = batch_entry.batch_dry_run(ws, source, **options)
        if out.json_mode:
            out.json(est)
        else:
            _print_estimate(out, est)
        return

    if via == "auto":
        with workspace(settings) as ws:
            via, why = batch_entry.batch_choose_via(ws, source, **options)
        out.info(f"--via auto: {via} ({why})")
        options["via"] = via
    with out.progress("batch", total=None) as bar, workspace(settings) as ws:
        t0 = time.monotonic()

        def progress(done: int, total: int, cost: float) -> None:
            rate = done / max(1e-9, time.monotonic() - t0)
            bar.update(completed=done, total=total, description=f"batch · {rate:.1f} rows/s · ${cost:.4f}")

        if via == "provider":
            report = batch_entry.batch_provider(ws, source, progress=progress, wait=not no_wait, **options)
        else:
            report = batch_entry.batch(ws, source, progress=progress, **options)
        if remote_output:
            report = batch_entry.publish_outputs(report, remote_output)

    if out.json_mode:
        out.json(report.to_dict())
    else:
        _print_report(out, report)
    out.finish(report)


def _print_jobs(out: Any, doc: dict[str, Any]) -> None:
    if out.json_mode:
        out.json(doc)
        return
    rows = [
        (
            j["batch_id"] or "(not created)",
            j["status"],
            j["requests"],
            f"{(j.get('counts') or {}).get('completed', 0)} / {(j.get('counts') or {}).get('failed', 0)}",
            "yes" if j["collected"] else "no",
            j["run"],  # the input's stem, printed as written by Output.table ("[draft]" vanished)
        )
        for j in doc["jobs"]
    ]
    out.table(["job", "status", "requests", "completed / failed", "collected", "run"], rows, title="provider jobs")
    if not rows:
        out.info("no provider job is recorded (llmops batch INPUT --via provider submits some)")


def _money(v: float | None) -> str:
    return "unknown" if v is None else f"${v:.4f}"


def _print_estimate(out: Any, est: dict[str, Any]) -> None:
    for p in est["first_prompts"]:
        out.print(f"[bold]{escape(p['id'])}[/bold]")
        for m in p["messages"]:
            content = m.get("content") if isinstance(m.get("content"), str) else str(m.get("content"))
            out.print(f"  [dim]{m.get('role')}:[/dim] {escape(content[:500])}")
    cost = _money(est["estimated_cost_usd"])
    out.table(
        ["", ""],
        [
            ("rows", est["rows"]),
            ("requests (distinct)", est["requests"]),
            ("done already", est["done_already"]),
            ("to run", est["to_run"]),
            ("answered from cache", est["cached"]),
            ("input tokens (est.)", f"~{est['estimated_input_tokens']:,}"),
            ("output tokens (max)", est["max_output_tokens"]),
            ("cost (upper bound)", cost),
            ("  via provider (batch price)", _money(est.get("estimated_cost_usd_via_provider"))),
            ("model", ", ".join(est["models"])),
            ("via", f"{est.get('via')} ({est.get('via_reason')})"),
            ("output", est["output"]),  # printed as written: "[draft].results.csv" showed ".results.csv"
        ],
        title="dry run: nothing was called",
        show_header=False,
    )
    if est["estimated_cost_usd"] is None:
        out.info(est["cost_note"])


def _n(count: int, noun: str) -> str:
    """'1 row', '2 rows'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _print_report(out: Any, r: Any) -> None:
    rows = [
        ("rows / requests", f"{r.rows} / {r.requests}"),
        ("answered", r.answered),
        ("errors", r.errors),
        ("done by an earlier run", r.from_checkpoint),
        ("from cache", r.cache_hits),
        ("read back from the provider", r.calls)
        if r.via == "provider"
        else ("calls (retries)", f"{r.calls} ({r.retries})"),
        ("tokens in / out", f"{r.input_tokens:,} / {r.output_tokens:,}"),
        ("cost this run", _money(r.cost_usd)),
        ("cost of all answers", _money(r.cost_total_usd)),
        ("time", f"{r.elapsed_s:.1f} s ({r.requests_per_s:.1f} requests/s)"),
    ]
    if r.pending:
        rows.insert(3, ("pending", r.pending))
    out.table(["", ""], rows, title="batch", show_header=False)
    if r.cost_unknown:
        out.info(
            f"the price of {_n(r.cost_unknown, 'answer')} is unknown: set llm.input_cost_per_token and "
            "llm.output_cost_per_token"
        )
    if r.output:
        out.info(f"wrote {r.output}")
    if r.output_kept:
        out.warn(f"no row was answered: kept the earlier results in {r.output_kept} (not overwritten)")
    if r.via == "provider" and r.jobs:
        states = ", ".join(f"{j['batch_id'] or '(not created)'} {j['status']}" for j in r.jobs[-5:])
        out.info(f"provider jobs ({len(r.jobs)}): {states}; cost at the batch price")
    if r.pending and r.via == "provider":
        are = "is" if r.pending == 1 else "are"
        out.warn(
            f"{_n(r.pending, 'request')} {are} still with the provider: run the same command again to collect them"
        )
    if r.errors:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r.errors_by_kind.items()))
        out.warn(
            f"{_n(r.errors, 'row')} ended as errors ({kinds}); see {r.errors_file}; re-run with --retry-failed to try "
            f"{'it' if r.errors == 1 else 'them'} again"
        )
        for e in r.error_samples:
            out.info(f"  {e['id']}: {e['error']}")
    out.info(f"checkpoint: {r.run_dir}")


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
