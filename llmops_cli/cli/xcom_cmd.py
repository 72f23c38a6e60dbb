"""`llmops xcom get DAG_ID RUN_ID TASK_ID`: what a task pushed (its return value, or any key), for any DAG."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from llmops_cli.cli.airflow_watch import session
from llmops_cli.cli.options import DagArg, JsonOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import safe_text

xcom_app = typer.Typer(help="Airflow XComs: what a task of a run pushed.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(xcom_app, name="xcom")


@xcom_app.command(
    "get",
    help="The value a task pushed (its return value by default; llmops DAGs push their summary under "
    "--key llmops_outcome). Prints the value as JSON; --json prints the whole entry.",
)
def get_xcom(
    dag_id: DagArg,
    run_id: Annotated[str, typer.Argument(help="DAG run id (see `llmops runs list DAG_ID`).")],
    task_id: Annotated[str, typer.Argument(help="Task id (see `llmops tasks list DAG_ID RUN_ID`).")],
    key: Annotated[str, typer.Option("--key", help="XCom key.")] = "return_value",
    map_index: Annotated[
        int | None, typer.Option("--map-index", help="Map index of a mapped task instance.", min=0)
    ] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    entry = client.get_xcom(dag_id, run_id, task_id, key=key, map_index=map_index)
    if out.json_mode:
        out.json(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "map_index": entry.get("map_index", -1 if map_index is None else map_index),
                "key": key,
                "timestamp": entry.get("timestamp"),
                "value": entry.get("value"),
            }
        )
        return
    value = entry.get("value")
    # the value alone on stdout, unwrapped, as JSON (a script can pipe it to jq); text as it is
    sys.stdout.write(safe_text(value if isinstance(value, str) else json.dumps(value, indent=2, default=str)) + "\n")
