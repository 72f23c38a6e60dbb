"""`llmops runs list | get | wait | clear`: DAG runs on Airflow."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmops_cli.cli.airflow_watch import RUN_COLUMNS, finish_wait, run_row, session, watch_run
from llmops_cli.cli.options import DagArg, JsonOpt, LimitOpt, StateOpt, TimeoutOpt, UrlOpt
from llmops_cli.errors import UsageError

runs_app = typer.Typer(help="Airflow DAG runs: list, get, wait for one, clear its failed tasks.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


RunArg = Annotated[str, typer.Argument(help="DAG run id (see `llmops runs list DAG_ID`).")]
OnlyTaskOpt = Annotated[list[str] | None, typer.Option("--task", help="Only this task id (repeatable).")]
PreviewOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be cleared.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Clear without asking (needed when not on a terminal).")]


@runs_app.command("list", help="Runs of a DAG, newest first.")
def list_runs(
    dag_id: DagArg, state: StateOpt = None, limit: LimitOpt = 25, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, client = session(url, json_out)
    runs = client.list_runs(dag_id, state=[state] if state else None, limit=limit)
    if out.json_mode:
        out.json(runs)
        return
    out.table(RUN_COLUMNS, [run_row(r) for r in runs])
    if not runs:
        out.info(f"no runs of {dag_id}" + (f" in state {state}" if state else ""))


@runs_app.command("get", help="One run: state, dates, conf.")
def get_run(dag_id: DagArg, run_id: RunArg, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, client = session(url, json_out)
    run = client.get_run(dag_id, run_id)
    if out.json_mode:
        out.json(run)
        return
    out.table(RUN_COLUMNS, [run_row(run)])
    if run.get("conf"):
        out.print("conf: " + json.dumps(run["conf"], default=str), markup=False)
    if run.get("note"):
        out.print(f"note: {run['note']}", markup=False)


@runs_app.command(
    "wait",
    help="Wait for a run to end; exit 5 if it failed, 3 if it succeeded partially (skipped inputs, failed rows), "
    "6 on --timeout, 2 if its DAG is paused.",
)
def wait_run(
    dag_id: DagArg, run_id: RunArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, client = session(url, json_out)
    result = watch_run(client, out, dag_id, run_id, timeout_s=timeout)
    finish_wait(client, out, dag_id, run_id, result, timeout_s=timeout)


@runs_app.command("clear", help="Clear the failed tasks of a run so Airflow retries them (shows a preview first).")
def clear_run(
    dag_id: DagArg,
    run_id: RunArg,
    task: OnlyTaskOpt = None,
    dry_run: PreviewOpt = False,
    yes: YesOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out)
    preview = client.clear_failed(dag_id, run_id, dry_run=True, task_ids=task)
    rows = [[t.get("task_id"), t.get("map_index"), t.get("state"), t.get("try_number")] for t in preview]
    if not preview or dry_run:
        if out.json_mode:
            out.json({"dry_run": True, "cleared": False, "task_instances": preview})
        else:
            out.table(["task", "map index", "state", "try"], rows, title="would clear")
            out.info("nothing to clear: no failed task instances" if not preview else "dry run: nothing cleared")
        return
    if not out.json_mode:
        out.table(["task", "map index", "state", "try"], rows, title="will clear")
    if not yes:
        if not (out.err.is_terminal and not out.json_mode):
            raise UsageError(
                f"clearing {len(preview)} task instance(s) needs confirmation",
                hint="add --yes (or --dry-run to only look)",
            )
        if not typer.confirm(f"Clear {len(preview)} task instance(s) of {run_id}?", err=True):
            raise typer.Exit(1)
    cleared = client.clear_failed(dag_id, run_id, dry_run=False, task_ids=task)
    if out.json_mode:
        out.json({"dry_run": False, "cleared": True, "task_instances": cleared})
    else:
        out.info(
            f"cleared {len(cleared)} task instance(s); the run is queued again: `llmops runs wait {dag_id} {run_id}`"
        )
