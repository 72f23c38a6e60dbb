"""`llmops tasks list DAG_ID RUN_ID`: the task instances of a run, each map index of mapped tasks included."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.airflow_watch import public, session
from llmops_cli.cli.options import JsonOpt, TimeoutOpt, UrlOpt

tasks_app = typer.Typer(help="Airflow task instances of a DAG run.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")


@tasks_app.command("list", help="Task instances of a run (mapped instances listed by map index).")
def list_tasks(
    dag_id: Annotated[str, typer.Argument(help="DAG id.")],
    run_id: Annotated[str, typer.Argument(help="DAG run id (see `llmops runs list DAG_ID`).")],
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    tis = client.list_task_instances(dag_id, run_id)
    if out.json_mode:
        out.json(public(tis))
        return
    rows = [
        [
            t.get("task_id"),
            "" if t.get("map_index", -1) < 0 else t.get("map_index"),
            t.get("state") or "none",
            t.get("try_number"),
            str(t.get("start_date") or "").replace("T", " ")[:19],
            f"{t['duration']:.1f}s" if isinstance(t.get("duration"), (int, float)) else "",
        ]
        for t in tis
    ]
    out.table(["task", "map index", "state", "try", "started", "duration"], rows)
