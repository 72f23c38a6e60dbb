"""`llmops backfill create | list | get | pause | unpause | cancel`: Airflow 3 backfills (runs of a scheduled DAG over
a range of logical dates), with trigger-dag --wait's live view and exit codes: 0 every run succeeded, 5 a run failed,
3 every run succeeded but one reported a partial outcome, 6 --timeout passed, 2 a paused DAG or backfill."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmops_cli.cli.airflow_trigger_cmd import (
    AllowUnknownOpt,
    ConfFileOpt,
    ConfOpt,
    ParamOpt,
    build_conf,
    check_params,
    parse_iso_datetime,
)
from llmops_cli.cli.airflow_watch import finish_backfill, session, ts, watch_backfill
from llmops_cli.cli.options import DagArg, JsonOpt, LimitOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import Output
from llmops_cli.core.orchestration import paused_error
from llmops_cli.errors import UsageError

backfill_app = typer.Typer(
    help="Airflow backfills: run a scheduled DAG over a range of logical dates, and follow, pause or cancel it.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(backfill_app, name="backfill")


BackfillArg = Annotated[int, typer.Argument(help="Backfill id (see `llmops backfill list DAG_ID`).", min=0)]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait for every run to end, showing their states.")]
REPROCESS = ("none", "failed", "completed")
COLUMNS = ["id", "dag", "from", "to", "reprocess", "max active", "paused", "created", "completed"]


def _row(b: dict[str, Any]) -> list[Any]:
    return [
        b.get("id"),
        b.get("dag_id"),
        ts(b.get("from_date")),
        ts(b.get("to_date")),
        b.get("reprocess_behavior"),
        b.get("max_active_runs"),
        "yes" if b.get("is_paused") else "no",
        ts(b.get("created_at")),
        ts(b.get("completed_at")),
    ]


def _show(out: Output, backfill: dict[str, Any], title: str | None = None) -> None:
    if out.json_mode:
        out.json(backfill)
    else:
        out.table(COLUMNS, [_row(backfill)], title=title)


@backfill_app.command(
    "create",
    help="Create runs of DAG_ID for each logical date from --from to --to (the DAG's schedule decides the dates); "
    "--wait follows them and exits like trigger-dag --wait.",
)
def create(
    dag_id: DagArg,
    start: Annotated[str, typer.Option("--from", help="First logical date, ISO 8601.")],
    end: Annotated[str, typer.Option("--to", help="Last logical date, ISO 8601.")],
    reprocess_behavior: Annotated[
        str | None,
        typer.Option(
            "--reprocess-behavior",
            help="Dates that already have a run: none (leave them, the default), failed (rerun failed ones), "
            "completed (rerun every one).",
        ),
    ] = None,
    max_active_runs: Annotated[
        int | None, typer.Option("--max-active-runs", help="At most this many runs at once (default 10).", min=1)
    ] = None,
    run_backwards: Annotated[bool, typer.Option("--run-backwards", help="Newest logical date first.")] = False,
    conf: ConfOpt = None,
    conf_file: ConfFileOpt = None,
    param: ParamOpt = None,
    allow_unknown_params: AllowUnknownOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the logical dates it would run.")] = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    if reprocess_behavior is not None and reprocess_behavior not in REPROCESS:
        raise UsageError(
            f"--reprocess-behavior {reprocess_behavior!r} is not one of {', '.join(REPROCESS)}",
            hint="none leaves dates that have a run; failed reruns the failed ones; completed reruns every one",
        )
    first, last = parse_iso_datetime(start, "--from"), parse_iso_datetime(end, "--to")
    if last < first:
        raise UsageError(f"--to {end} is before --from {start}", hint="swap them (--run-backwards runs newest first)")
    body = build_conf(conf, conf_file, param)
    out, client = session(url, json_out, timeout, wait=wait)
    dag = client.get_dag(dag_id)
    check_params(dag_id, body, dag, allow_unknown_params)
    if wait and dag.get("is_paused"):  # its runs would stay queued: refuse before creating them
        raise paused_error(dag_id)
    kw: dict[str, Any] = {
        "reprocess": reprocess_behavior,
        "max_active_runs": max_active_runs,
        "conf": body,
        "backwards": run_backwards,
    }
    dates = [d.get("logical_date") for d in client.backfill_dry_run(dag_id, first, last, **kw)]
    if dry_run or not dates:
        if out.json_mode:
            out.json({"dag_id": dag_id, "dry_run": True, "created": False, "logical_dates": dates})
        else:
            out.table(["logical date"], [[ts(d)] for d in dates], title="would run")
            out.info(
                "dry run: nothing created"
                if dates
                else f"nothing to backfill: no logical date of {dag_id} from {start} to {end} lacks a run"
                + ("" if reprocess_behavior else " (--reprocess-behavior failed|completed reruns dates that have one)")
            )
        return
    backfill = client.create_backfill(dag_id, first, last, **kw)
    bid = int(backfill["id"])
    if not wait:
        if out.json_mode:
            out.json({"backfill_id": bid, **backfill, "logical_dates": dates})  # backfill_id as after --wait
        else:
            out.print(str(bid), markup=False)
            out.info(
                f"backfill {bid} of {dag_id}: {len(dates)} run(s); follow it with `llmops backfill get {bid} --wait`"
            )
            if dag.get("is_paused"):
                out.warn(f"{dag_id} is paused: its runs stay queued until `llmops dags unpause {dag_id}`")
        return
    if not out.json_mode:
        out.print(str(bid), markup=False)
    result = watch_backfill(client, out, bid, expected_runs=len(dates), timeout_s=timeout)
    finish_backfill(client, out, result, timeout_s=timeout)


@backfill_app.command("list", help="Backfills of a DAG, newest first.")
def list_backfills(
    dag_id: DagArg, limit: LimitOpt = 25, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, client = session(url, json_out, timeout)
    backfills = client.list_backfills(dag_id, limit=limit)
    if out.json_mode:
        out.json(backfills)
        return
    out.table(COLUMNS, [_row(b) for b in backfills])
    if not backfills:
        out.info(f"no backfills of {dag_id}")


@backfill_app.command("get", help="One backfill and its runs; --wait follows them (exit codes as create --wait).")
def get_backfill(
    backfill_id: BackfillArg,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout, wait=wait)
    if wait:
        result = watch_backfill(client, out, backfill_id, expected_runs=None, timeout_s=timeout)
        finish_backfill(client, out, result, timeout_s=timeout)
        return
    backfill = client.backfill_action(backfill_id, "get")
    runs = client.backfill_runs(backfill)
    if out.json_mode:
        out.json(
            {
                **backfill,
                "runs": [
                    {"run_id": r.get("dag_run_id"), "logical_date": r.get("logical_date"), "state": r.get("state")}
                    for r in runs
                ],
            }
        )
        return
    out.table(COLUMNS, [_row(backfill)])
    out.table(
        ["logical date", "run id", "state"],
        [[ts(r.get("logical_date")), r.get("dag_run_id"), r.get("state")] for r in runs],
        title="runs",
    )


def _action(backfill_id: int, action: str, done: str, timeout: float | None, url: str | None, json_out: bool) -> None:
    out, client = session(url, json_out, timeout)
    backfill = client.backfill_action(backfill_id, action)
    _show(out, backfill)
    if not out.json_mode:
        out.info(f"backfill {backfill_id} of {backfill.get('dag_id')}: {done}")


@backfill_app.command("pause", help="Start no further runs of a backfill (running ones go on).")
def pause(backfill_id: BackfillArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    _action(backfill_id, "pause", "paused; `llmops backfill unpause` resumes it", timeout, url, json_out)


@backfill_app.command("unpause", help="Resume a paused backfill.")
def unpause(
    backfill_id: BackfillArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    _action(backfill_id, "unpause", "resumed", timeout, url, json_out)


@backfill_app.command("cancel", help="Cancel a backfill: its queued runs are marked failed; running ones finish.")
def cancel(backfill_id: BackfillArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    _action(backfill_id, "cancel", "cancelled (queued runs marked failed)", timeout, url, json_out)
