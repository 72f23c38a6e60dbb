"""`llmops runs list | get | wait | clear | cancel | delete | note`: DAG runs on Airflow."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from llmops_cli.cli.airflow_trigger_cmd import parse_iso_datetime
from llmops_cli.cli.airflow_watch import RUN_COLUMNS, finish_wait, public, run_row, session, watch_run
from llmops_cli.cli.options import DagArg, JsonOpt, LimitOpt, StateOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import Output
from llmops_cli.core.orchestration import TERMINAL_RUN_STATES, TERMINAL_TI_STATES
from llmops_cli.errors import LlmopsError, UsageError

runs_app = typer.Typer(
    help="Airflow DAG runs: list, get (with what the run reported), wait for one, clear its failed tasks, cancel, "
    "delete, edit its note.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


RunArg = Annotated[str, typer.Argument(help="DAG run id (see `llmops runs list DAG_ID`).")]
OnlyTaskOpt = Annotated[list[str] | None, typer.Option("--task", help="Only this task id (repeatable).")]
PreviewOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would change.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking (needed when not on a terminal).")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only runs due at or after this ISO 8601 time (their run_after).")
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only runs due at or before this ISO 8601 time.")]


@runs_app.command("list", help="Runs of a DAG (of every DAG without DAG_ID), newest first.")
def list_runs(
    dag_id: Annotated[str | None, typer.Argument(help="DAG id (default: every DAG).")] = None,
    state: StateOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = 25,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    start = parse_iso_datetime(since, "--since") if since else None
    end = parse_iso_datetime(until, "--until") if until else None
    out, client = session(url, json_out, timeout)
    runs = client.list_runs(dag_id, state=[state] if state else None, limit=limit, since=start, until=end)
    if out.json_mode:
        out.json(public(runs))
        return
    if dag_id:
        out.table(RUN_COLUMNS, [run_row(r) for r in runs])
    else:
        out.table(["dag", *RUN_COLUMNS], [[r.get("dag_id"), *run_row(r)] for r in runs])
    if not runs:
        out.info(f"no runs of {dag_id or 'any DAG'}" + (f" in state {state}" if state else ""))


@runs_app.command("get", help="One run: state, dates, conf, note, and the outcome its DAG reported (llmops DAGs).")
def get_run(
    dag_id: DagArg, run_id: RunArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, client = session(url, json_out, timeout)
    run = client.get_run(dag_id, run_id)
    doc = public(run)
    try:  # what the run produced: an llmops DAG's summary ({status, message, summary}); None for other DAGs
        doc["outcome"] = client.get_run_outcome(dag_id, run_id)
    except LlmopsError as e:  # the run is still shown; say why its outcome is missing
        doc["outcome"], doc["outcome_error"] = None, e.message
    if out.json_mode:
        out.json(doc)
        return
    out.table(RUN_COLUMNS, [run_row(run)])
    if run.get("conf"):
        out.print("conf: " + json.dumps(run["conf"], default=str), markup=False)
    if run.get("note"):
        out.print(f"note: {run['note']}", markup=False)
    _print_outcome(out, doc)


def _print_outcome(out: Output, doc: dict[str, Any]) -> None:
    outcome = doc.get("outcome")
    if doc.get("outcome_error"):
        out.warn(f"the run's reported outcome could not be read: {doc['outcome_error']}")
    if not outcome:
        return
    status = outcome.get("status")
    out.print(f"outcome: {status}" + (f" ({outcome['message']})" if outcome.get("message") else ""), markup=False)
    summary = outcome.get("summary")
    if isinstance(summary, dict):
        for k, v in summary.items():
            shown = json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
            out.print(f"  {k}: {shown}"[:300], markup=False)


@runs_app.command(
    "wait",
    help="Wait for a run to end; exit 5 if it failed, 3 if it succeeded partially (skipped inputs, failed rows), "
    "6 on --timeout, 2 if its DAG is paused.",
)
def wait_run(
    dag_id: DagArg, run_id: RunArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, client = session(url, json_out, timeout, wait=True)
    result = watch_run(client, out, dag_id, run_id, timeout_s=timeout)
    finish_wait(client, out, dag_id, run_id, result, timeout_s=timeout)


def _confirm(out: Output, yes: bool, what: str, question: str) -> None:
    """Go on with --yes, or after a yes on a terminal; elsewhere (CI) without --yes: exit 2 saying to add it."""
    if yes:
        return
    if not (out.err.is_terminal and not out.json_mode):
        raise UsageError(f"{what} needs confirmation", hint="add --yes (or --dry-run to only look)")
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)


TI_COLUMNS = ["task", "map index", "state", "try"]


def _ti_rows(tis: list[dict[str, Any]]) -> list[list[Any]]:
    return [[t.get("task_id"), t.get("map_index"), t.get("state") or "none", t.get("try_number")] for t in tis]


@runs_app.command("clear", help="Clear the failed tasks of a run so Airflow retries them (shows a preview first).")
def clear_run(
    dag_id: DagArg,
    run_id: RunArg,
    task: OnlyTaskOpt = None,
    dry_run: PreviewOpt = False,
    yes: YesOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    preview = client.clear_failed(dag_id, run_id, dry_run=True, task_ids=task)
    rows = _ti_rows(preview)
    if not preview or dry_run:
        if out.json_mode:
            out.json({"dry_run": True, "cleared": False, "task_instances": public(preview)})
        else:
            out.table(TI_COLUMNS, rows, title="would clear")
            out.info("nothing to clear: no failed task instances" if not preview else "dry run: nothing cleared")
        return
    if not out.json_mode:
        out.table(TI_COLUMNS, rows, title="will clear")
    _confirm(
        out, yes, f"clearing {len(preview)} task instance(s)", f"Clear {len(preview)} task instance(s) of {run_id}?"
    )
    cleared = client.clear_failed(dag_id, run_id, dry_run=False, task_ids=task)
    if out.json_mode:
        out.json({"dry_run": False, "cleared": True, "task_instances": public(cleared)})
    else:
        out.info(
            f"cleared {len(cleared)} task instance(s); the run is queued again: `llmops runs wait {dag_id} {run_id}`"
        )


@runs_app.command(
    "cancel",
    help="Stop a run: mark it failed; its running tasks are stopped (marked failed), those not started are skipped. "
    "Shows what would stop first.",
)
def cancel_run(
    dag_id: DagArg,
    run_id: RunArg,
    dry_run: PreviewOpt = False,
    yes: YesOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    run = client.get_run(dag_id, run_id)
    if run.get("state") in TERMINAL_RUN_STATES:
        # already over: nothing to stop (not an error, so a cleanup step in CI can always run it)
        if out.json_mode:
            out.json({"cancelled": False, "dry_run": dry_run, "run": public(run), "task_instances": []})
        else:
            out.info(f"run {run_id} of {dag_id} already ended ({run.get('state')}): nothing to cancel")
        return
    stopping = [t for t in client.list_task_instances(dag_id, run_id) if t.get("state") not in TERMINAL_TI_STATES]
    if not out.json_mode:
        out.table(TI_COLUMNS, _ti_rows(stopping), title="would stop" if dry_run else "will stop")
    if dry_run:
        if out.json_mode:
            out.json({"cancelled": False, "dry_run": True, "run": public(run), "task_instances": public(stopping)})
        else:
            out.info(f"dry run: run {run_id} is {run.get('state')}; nothing changed")
        return
    _confirm(out, yes, f"cancelling run {run_id!r}", f"Cancel run {run_id} of {dag_id} (mark it failed)?")
    done = client.patch_run(dag_id, run_id, state="failed")
    if out.json_mode:
        out.json({"cancelled": True, "dry_run": False, "run": public(done), "task_instances": public(stopping)})
    else:
        out.info(
            f"cancelled run {run_id} of {dag_id}: marked failed, {len(stopping)} unfinished task instance(s) stopped "
            f"or skipped; rerun its tasks with `llmops runs clear {dag_id} {run_id}`"
        )


@runs_app.command("delete", help="Delete a run and its task instances from Airflow (shows the run first).")
def delete_run(
    dag_id: DagArg,
    run_id: RunArg,
    dry_run: PreviewOpt = False,
    yes: YesOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    run = client.get_run(dag_id, run_id)
    if not out.json_mode:
        out.table(RUN_COLUMNS, [run_row(run)], title="would delete" if dry_run else "will delete")
    if dry_run:
        if out.json_mode:
            out.json({"deleted": False, "dry_run": True, "run": public(run)})
        else:
            out.info("dry run: nothing deleted")
        return
    if run.get("state") not in TERMINAL_RUN_STATES:
        out.warn(f"run {run_id} is {run.get('state')}: deleting it does not wait for its running tasks")
    _confirm(out, yes, f"deleting run {run_id!r}", f"Delete run {run_id} of {dag_id} and its task instances?")
    client.delete_run(dag_id, run_id)
    if out.json_mode:
        out.json({"deleted": True, "dry_run": False, "run": public(run)})
    else:
        out.info(f"deleted run {run_id} of {dag_id}")


@runs_app.command("note", help="Set (or with '' clear) the note of a run, shown with it in Airflow.")
def note_run(
    dag_id: DagArg,
    run_id: RunArg,
    text: Annotated[str, typer.Argument(help="The note (at most 1000 characters; '' clears it).")],
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    if len(text) > 1000:
        raise UsageError(f"the note is {len(text)} characters; Airflow keeps at most 1000", hint="shorten it")
    out, client = session(url, json_out, timeout)
    run = client.patch_run(dag_id, run_id, note=text)
    if out.json_mode:
        out.json(public(run))
    else:
        out.info(f"note of run {run_id} of {dag_id}: {run.get('note') or '(none)'}")
