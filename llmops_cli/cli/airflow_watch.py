"""Shared by the Airflow command groups: the client for the effective connection (with the command's --timeout as
the budget of all its calls), watching a run or a backfill (live view on a terminal, plain progress lines on stderr
otherwise) with the failed-run report, and the one spelling of a run id in JSON (``run_id``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from llmops_cli import wiring
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state
from llmops_cli.core.orchestration import (
    BackfillUpdate,
    BackfillWaitResult,
    WaitResult,
    WaitUpdate,
    failed_task_instances,
    log_tail,
    summarize_tasks,
    wait_for_backfill,
    wait_for_run,
)
from llmops_cli.errors import LlmopsError, RunFailed, TimeoutExceeded

if TYPE_CHECKING:
    from llmops_cli.adapters.airflow.client import AirflowClient


# a wait's budget runs this much past its --timeout, so the poll at the deadline still gets its answer
WAIT_SLACK_S = 2.0
# calls that report an ended wait (the outcome, log tails of failed tasks) get at least this long
REPORT_GRACE_S = 10.0


def connect(url: str | None = None) -> AirflowClient:
    """The client for --url / --profile / env / config (settings precedence applies)."""
    loaded = state().load(flags={"airflow.url": url})
    return wiring.build_airflow_client(loaded.settings)


def session(
    url: str | None, json_out: bool, timeout: float | None = None, *, wait: bool = False
) -> tuple[Output, AirflowClient]:
    """The preamble of every Airflow command: the output for --json, and the client for the connection, whose calls
    together end within ``timeout`` seconds (--timeout; for a command that waits, a little past it, so the
    last poll is answered)."""
    client = connect(url)
    if timeout is not None:
        client.set_budget(timeout + (WAIT_SLACK_S if wait else 0.0))
    return Output(json_out), client


def public(doc: Any) -> Any:
    """An API document as llmops prints it: a run's id is ``run_id`` in every JSON document (the API says
    ``dag_run_id`` in runs and task instances, ``run_id`` in XComs)."""
    if isinstance(doc, list):
        return [public(d) for d in doc]
    if isinstance(doc, dict) and "dag_run_id" in doc:
        out = {("run_id" if k == "dag_run_id" else k): v for k, v in doc.items()}
        return out
    return doc


def run_row(r: dict[str, Any]) -> list[Any]:
    return [
        r.get("dag_run_id") or r.get("run_id"),
        r.get("state"),
        r.get("run_type"),
        ts(r.get("run_after")),
        ts(r.get("start_date")),
        ts(r.get("end_date")),
        _dur(r.get("duration")),
    ]


RUN_COLUMNS = ["run id", "state", "type", "run after", "started", "ended", "duration"]


def ts(v: Any) -> str:
    """A timestamp as a table shows it (to the second, no T)."""
    return str(v).replace("T", " ")[:19] if v else ""


def _dur(v: Any) -> str:
    return f"{float(v):.1f}s" if isinstance(v, (int, float)) else ""


def watch_run(client: AirflowClient, out: Output, dag_id: str, run_id: str, *, timeout_s: float | None) -> WaitResult:
    """Wait for the run, showing task states (mapped tasks as counts by state) as they change."""
    if out.interactive:
        return _watch_live(client, out, dag_id, run_id, timeout_s)

    outage = {"on": False}

    def plain(u: WaitUpdate) -> None:
        if u.unreachable:
            if not outage["on"]:
                _line(f"[{u.elapsed_s:6.1f}s] API server unreachable, still waiting ({u.unreachable})")
            outage["on"] = True
            return
        if outage["on"]:
            _line(f"[{u.elapsed_s:6.1f}s] API server reachable again")
            outage["on"] = False
        tasks = "; ".join(f"{t.task_id}: {t.label()}" for t in u.tasks) or "no task started yet"
        _line(f"[{u.elapsed_s:6.1f}s] {u.run.get('state') if u.run else '?'} | {tasks}")

    return wait_for_run(client, dag_id, run_id, timeout_s=timeout_s, on_update=plain)


def watch_backfill(
    client: AirflowClient, out: Output, backfill_id: int, *, expected_runs: int | None, timeout_s: float | None
) -> BackfillWaitResult:
    """Wait for a backfill's runs, showing each run's state (a live table on a terminal, lines otherwise)."""
    if out.interactive:
        from rich.live import Live
        from rich.table import Table

        def render(u: BackfillUpdate) -> Any:
            counts = ", ".join(f"{n} {s}" for s, n in u.counts().items()) or "no run yet"
            t = Table(title=f"backfill {backfill_id}: {counts}  {u.elapsed_s:.0f}s", box=None, title_justify="left")
            for col in ("logical date", "run id", "state"):
                t.add_column(col)
            for r in u.runs:
                t.add_row(ts(r.get("logical_date")), r.get("dag_run_id"), r.get("state") or "none")
            if u.unreachable:
                t.caption = f"API server unreachable, still waiting ({u.unreachable})"
            return t

        with Live(console=out.err, refresh_per_second=8, transient=False) as live:

            def update(u: BackfillUpdate) -> None:
                live.update(render(u))
                live.refresh()

            return wait_for_backfill(
                client, backfill_id, expected_runs=expected_runs, timeout_s=timeout_s, on_update=update
            )

    def plain(u: BackfillUpdate) -> None:
        if u.unreachable:
            _line(f"[{u.elapsed_s:6.1f}s] API server unreachable, still waiting ({u.unreachable})")
            return
        counts = ", ".join(f"{n} {s}" for s, n in u.counts().items()) or "no run yet"
        _line(f"[{u.elapsed_s:6.1f}s] backfill {backfill_id}: {counts}")

    return wait_for_backfill(client, backfill_id, expected_runs=expected_runs, timeout_s=timeout_s, on_update=plain)


def finish_backfill(
    client: AirflowClient, out: Output, result: BackfillWaitResult, *, timeout_s: float | None, tail_lines: int = 20
) -> dict[str, Any]:
    """Report the end of a backfill wait with trigger-dag --wait's exit codes: 5 a run failed (its failed tasks named
    with their log tails), 6 --timeout passed, 3 every run succeeded but one reported a partial outcome."""
    client.allow(REPORT_GRACE_S)
    bf = result.backfill
    bid, dag_id = bf.get("id"), bf.get("dag_id")
    runs = []
    for r in result.runs:
        item = {
            "run_id": r.get("dag_run_id"),
            "logical_date": r.get("logical_date"),
            "state": r.get("state"),
            "outcome": result.outcomes.get(r.get("dag_run_id")),
        }
        if r.get("state") == "failed" and len([x for x in runs if x["state"] == "failed"]) < 3:
            item["failed_tasks"] = _failed_with_tails(client, dag_id, r["dag_run_id"], tail_lines)
        runs.append(item)
    doc = {
        "backfill_id": bid,
        "dag_id": dag_id,
        "state": result.state,
        "timed_out": result.timed_out,
        "elapsed_s": round(result.elapsed_s, 3),
        "from_date": bf.get("from_date"),
        "to_date": bf.get("to_date"),
        "completed_at": bf.get("completed_at"),
        "runs": runs,
    }
    if out.json_mode:
        out.json(doc)
    else:
        for r in runs:
            for f in r.get("failed_tasks") or []:
                _line(f"failed: run {r['run_id']}: {_ti_name(f)}, try {f['try_number']} — last log lines:")
                for line in f["log_tail"]:
                    _line("    " + line)
        _line(f"backfill {bid} of {dag_id}: {result.state} after {result.elapsed_s:.1f}s ({len(runs)} run(s))")
    if result.timed_out:
        open_runs = sum(1 for r in runs if r["state"] not in ("success", "failed"))
        raise TimeoutExceeded(
            f"backfill {bid} of {dag_id!r} still has {open_runs} run(s) not ended after {timeout_s:g}s"
            + (f" (last: {result.last_unreachable})" if result.last_unreachable else ""),
            hint=f"it keeps running on Airflow; `llmops backfill get {bid} --wait` waits again",
        )
    if result.failed:
        names = ", ".join(r["dag_run_id"] for r in result.failed)
        raise RunFailed(
            f"backfill {bid} of {dag_id!r}: {len(result.failed)} of {len(runs)} run(s) failed: {names}",
            hint=f"full logs: `llmops logs {dag_id} RUN_ID TASK_ID`; retry a run's failed tasks: "
            f"`llmops runs clear {dag_id} RUN_ID`, or the whole range: `llmops backfill create {dag_id} "
            "--from ... --to ... --reprocess-behavior failed`",
        )
    if result.partial:
        why = "; ".join(f"{r['dag_run_id']}: {result.outcomes[r['dag_run_id']].get('message')}" for r in result.partial)
        _line(f"warning: backfill {bid} of {dag_id!r} succeeded, but partially: {why}")
    out.finish(result)
    return doc


def _failed_with_tails(client: AirflowClient, dag_id: str, run_id: str, tail_lines: int) -> list[dict[str, Any]]:
    try:
        failed = failed_task_instances(client.list_task_instances(dag_id, run_id))
    except LlmopsError:
        return []
    for f in failed:
        try:
            f["log_tail"] = log_tail(client, dag_id, run_id, f, lines=tail_lines)
        except LlmopsError as e:  # the run's verdict matters more than a missing log
            f["log_tail"] = [f"(log unavailable: {e.message})"]
    return failed


def _watch_live(client: AirflowClient, out: Output, dag_id: str, run_id: str, timeout_s: float | None) -> WaitResult:
    from rich.console import Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    colours = {
        "success": "green",
        "failed": "red",
        "upstream_failed": "red",
        "running": "cyan",
        "queued": "blue",
        "scheduled": "blue",
        "up_for_retry": "yellow",
        "skipped": "dim",
    }

    def render(u: WaitUpdate) -> Any:
        state = u.run.get("state") if u.run else "?"
        head = Text.assemble(
            (f"{dag_id} ", "bold"),
            (run_id, "dim"),
            "  ",
            (str(state), colours.get(str(state), "")),
            f"  {u.elapsed_s:.0f}s",
        )
        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        t.add_column("task")
        t.add_column("state")
        for s in u.tasks:
            label = Text()
            for i, (st, n) in enumerate(sorted(s.counts.items(), key=lambda kv: kv[0] != "failed")):
                if i:
                    label.append(", ")
                label.append(f"{n}/{s.total} {st}" if s.mapped else st, style=colours.get(st, ""))
            t.add_row(Text(s.task_id + (" [mapped]" if s.mapped else "")), label)  # Text: "[mapped]" is not markup
        parts: list[Any] = [head, t]
        if u.unreachable:
            parts.append(Text(f"API server unreachable, still waiting ({u.unreachable})", style="yellow"))
        return Group(*parts)

    with Live(console=out.err, refresh_per_second=8, transient=False) as live:

        def update(u: WaitUpdate) -> None:
            live.update(render(u))
            live.refresh()  # show the final state before the view closes

        return wait_for_run(client, dag_id, run_id, timeout_s=timeout_s, on_update=update)


def finish_wait(
    client: AirflowClient,
    out: Output,
    dag_id: str,
    run_id: str,
    result: WaitResult,
    *,
    timeout_s: float | None,
    tail_lines: int = 20,
) -> dict[str, Any]:
    """Report the end of a wait, then end the command: RunFailed (exit 5) or TimeoutExceeded (exit 6) raised, a
    partial success (the run's DAG reported skipped inputs or failed rows) warned about and exit 3 through
    ``Output.finish``, as the local commands end a partial run."""
    client.allow(REPORT_GRACE_S)
    doc: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": result.state,
        "timed_out": result.timed_out,
        "elapsed_s": round(result.elapsed_s, 3),
        "start_date": result.run.get("start_date"),
        "end_date": result.run.get("end_date"),
        "tasks": [t.to_dict() for t in summarize_tasks(result.task_instances)],
    }
    failed = failed_task_instances(result.task_instances) if result.state == "failed" else []
    for f in failed:
        try:
            f["log_tail"] = log_tail(client, dag_id, run_id, f, lines=tail_lines)
        except LlmopsError as e:  # the run's verdict matters more than a missing log
            f["log_tail"] = [f"(log unavailable: {e.message})"]
    doc["failed_tasks"] = failed
    doc["note"] = result.run.get("note")
    if result.outcome_error:  # the run's verdict stands; say that its partial/ok detail could not be read
        _line(f"(the run's reported outcome could not be read: {result.outcome_error})")
    doc["outcome"] = result.outcome
    message = (result.outcome or {}).get("message")
    if out.json_mode:
        out.json(doc)
    else:
        for f in failed:
            _line(f"failed: {_ti_name(f)}, try {f['try_number']} — last log lines:")
            for line in f["log_tail"]:
                _line("    " + line)
        partial = f" (partial: {message})" if result.partial else ""
        _line(f"DAG run {run_id} of {dag_id}: {result.state} after {result.elapsed_s:.1f}s{partial}")
    if result.timed_out:
        raise TimeoutExceeded(
            f"DAG run {run_id!r} of {dag_id!r} is still {result.state} after {timeout_s:g}s"
            + (f" (last: {result.last_unreachable})" if result.last_unreachable else ""),
            hint=f"it keeps running on Airflow; `llmops runs wait {dag_id} {run_id}` waits again",
        )
    if result.state == "failed":
        names = ", ".join(f"{_ti_name(f)} (try {f['try_number']})" for f in failed) or "no task failed itself"
        raise RunFailed(
            f"DAG run {run_id!r} of {dag_id!r} failed: {names}",
            hint=f"full logs: `llmops logs {dag_id} {run_id} TASK_ID [--map-index N]`; "
            f"retry the failed tasks: `llmops runs clear {dag_id} {run_id}`",
        )
    if result.partial:  # a finished run, not an error: a warning line (plain, for CI logs), then exit 3
        _line(
            f"warning: DAG run {run_id!r} of {dag_id!r} succeeded, but partially: {message}; "
            f"the details are in the last task's log (`llmops logs {dag_id} {run_id} TASK_ID`)"
        )
    out.finish(result)
    return doc


def _line(text: str) -> None:
    """A plain diagnostic line on stderr: no markup, no wrapping (CI logs are read and grepped)."""
    print(text, file=sys.stderr, flush=True)


def _ti_name(f: dict[str, Any]) -> str:
    mi = f.get("map_index", -1)
    return f"{f['task_id']}" + (f" [map index {mi}]" if mi is not None and mi >= 0 else "")
