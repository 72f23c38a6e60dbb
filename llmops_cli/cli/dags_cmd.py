"""`llmops dags list | show | pause | unpause | errors | versions | path`: the DAGs an Airflow server knows (with their
import errors, warnings and versions), and where ours ship."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import llmops_cli
from llmops_cli.cli.airflow_watch import session, ts
from llmops_cli.cli.options import DagArg, JsonOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import Output
from llmops_cli.errors import ExitCode

dags_app = typer.Typer(
    help="Airflow DAGs: list, show, pause, unpause, import errors, versions, and the folder of the DAGs shipped "
    "with llmops.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dags_app, name="dags")


@dags_app.command("list", help="DAGs on the server (paused state, schedule, tags).")
def list_dags(
    paused: Annotated[
        bool | None, typer.Option("--paused/--active", help="Only paused (or only active) DAGs.", show_default=False)
    ] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    dags = client.list_dags(paused=paused)
    broken = client.list_import_errors()
    for e in broken:  # a DAG file that does not import is invisible in the list: say so
        last = (e.get("stack_trace") or "").strip().splitlines()[-1:] or [""]
        out.warn(f"DAG file {e.get('filename')} (bundle {e.get('bundle_name')}) does not import: {last[0]}")
    if out.json_mode:
        out.json(dags)
        return
    rows = [
        [
            d.get("dag_id"),
            "yes" if d.get("is_paused") else "no",
            d.get("timetable_summary") or "",
            ", ".join(t.get("name", "") if isinstance(t, dict) else str(t) for t in d.get("tags") or []),
            "yes" if d.get("has_import_errors") else "",
        ]
        for d in dags
    ]
    out.table(["dag id", "paused", "schedule", "tags", "import errors"], rows)
    if not dags:
        out.info(
            "no DAGs yet (new DAG files take a few seconds to be parsed); `llmops dags path` shows the shipped ones"
        )


@dags_app.command("show", help="One DAG: schedule, params (what --conf / -p accept), tasks.")
def show_dag(dag_id: DagArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, client = session(url, json_out, timeout)
    dag = client.get_dag(dag_id)
    tasks = client.list_tasks(dag_id)
    if out.json_mode:
        out.json({**dag, "tasks": tasks})
        return
    paused = "yes" if dag.get("is_paused") else "no"
    out.print(f"[bold]{dag_id}[/bold]  paused: {paused}  schedule: {dag.get('timetable_summary') or '-'}")
    if dag.get("description"):
        out.print(dag["description"], markup=False)
    params = dag.get("params") or {}
    if params:
        out.table(
            ["param", "default", "type", "description"], [_param_row(n, p) for n, p in params.items()], title="params"
        )
    out.table(
        ["task", "operator", "mapped", "retries"],
        [
            [
                t.get("task_id"),
                t.get("operator_name") or t.get("class_ref", {}).get("class_name", ""),
                "yes" if t.get("is_mapped") else "",
                _whole(t.get("retries")),
            ]
            for t in tasks
        ],
        title="tasks",
    )


def _whole(value: object) -> object:
    """A count Airflow sends as a float (a task's retries: 2.0) shown as the whole number it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _param_row(name: str, p: object) -> list[str]:
    """One DAG param as [name, default, type (with its enum), description]."""
    p = p if isinstance(p, dict) else {"value": p}
    schema = p.get("schema") or {}
    typ = schema.get("type", "")
    typ = " | ".join(map(str, typ)) if isinstance(typ, list) else str(typ)
    if schema.get("enum"):
        typ += f" ({', '.join(str(v) for v in schema['enum'] if v is not None)})"
    return [name, _short(p.get("value")), typ, p.get("description") or schema.get("description") or ""]


def _short(v: object) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


def _set_paused(dag_id: str, paused: bool, url: str | None, json_out: bool, timeout: float | None) -> None:
    out, client = session(url, json_out, timeout)
    dag = client.set_paused(dag_id, paused)
    if out.json_mode:
        out.json(dag)
    else:
        out.info(f"{dag_id}: {'paused' if dag.get('is_paused') else 'active (unpaused)'}")


@dags_app.command("pause", help="Pause a DAG (no new scheduled runs).")
def pause(dag_id: DagArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    _set_paused(dag_id, True, url, json_out, timeout)


@dags_app.command("unpause", help="Unpause a DAG.")
def unpause(dag_id: DagArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    _set_paused(dag_id, False, url, json_out, timeout)


@dags_app.command(
    "path", help="The folder of the DAGs shipped with llmops (add it to Airflow's DAGs folder or a DAG bundle)."
)
def path(json_out: JsonOpt = False) -> None:
    folder = Path(llmops_cli.__file__).resolve().parent / "dags"
    out = Output(json_out)
    if out.json_mode:
        out.json({"path": str(folder), "dags": sorted(p.stem for p in folder.glob("llmops_*.py"))})
    else:
        out.print(str(folder), markup=False)


@dags_app.command(
    "errors", help="DAG files that fail to import, and DAG warnings; with --strict exit 1 when a file fails to import."
)
def errors(
    dag_id: Annotated[str | None, typer.Option("--dag", help="Only the warnings of this DAG.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any DAG file fails to import.")] = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.adapters.airflow.ops import AirflowOps

    out, client = session(url, json_out, timeout)
    ops = AirflowOps(client)
    broken, warnings = ops.import_errors(), ops.dag_warnings(dag_id)
    if out.json_mode:
        out.json({"import_errors": broken, "dag_warnings": warnings})
    else:
        if broken:
            out.table(
                ["file", "bundle", "error", "since"],
                [
                    [
                        e.get("filename"),
                        e.get("bundle_name") or "",
                        _last_line(e.get("stack_trace")),
                        ts(e.get("timestamp")),
                    ]
                    for e in broken
                ],
                title="import errors",
            )
        if warnings:
            out.table(
                ["dag id", "type", "message", "since"],
                [[w.get("dag_id"), w.get("warning_type"), w.get("message"), ts(w.get("timestamp"))] for w in warnings],
                title="DAG warnings",
            )
        out.info(f"{len(broken)} import error(s), {len(warnings)} DAG warning(s)")
    out.finish(
        ExitCode.FAILURE if strict and broken else ExitCode.OK, warning=f"{len(broken)} DAG file(s) do not import"
    )


@dags_app.command("versions", help="Versions of a DAG (newest first) and the bundle each came from.")
def versions(dag_id: DagArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.adapters.airflow.ops import AirflowOps

    out, client = session(url, json_out, timeout)
    items = AirflowOps(client).dag_versions(dag_id)
    if out.json_mode:
        out.json(items)
        return
    out.table(
        ["version", "bundle", "bundle version", "created"],
        [
            [
                v.get("version_number"),
                v.get("bundle_name") or "",
                v.get("bundle_version") or "",
                ts(v.get("created_at")),
            ]
            for v in items
        ],
    )


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""
