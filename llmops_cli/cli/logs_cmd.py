"""`llmops logs DAG_ID RUN_ID TASK_ID`: a task instance's full structured log; --follow a running one."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from llmops_cli.cli.airflow_watch import session
from llmops_cli.cli.options import JsonOpt, TimeoutOpt, UrlOpt
from llmops_cli.core.orchestration import find_log_try, format_event, stream_log


def register(app: typer.Typer) -> None:
    app.command("logs", help="A task's log (latest try by default); --follow streams a running task until it ends.")(
        logs
    )


TaskArg = Annotated[str, typer.Argument(help="Task id (see `llmops tasks list DAG_ID RUN_ID`).")]
TryOpt = Annotated[int | None, typer.Option("--try", help="Try number (default: the latest).", min=1)]
MapIndexOpt = Annotated[int | None, typer.Option("--map-index", help="Map index of a mapped task instance.", min=0)]
FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the task ends.")]


def logs(
    dag_id: Annotated[str, typer.Argument(help="DAG id.")],
    run_id: Annotated[str, typer.Argument(help="DAG run id.")],
    task_id: TaskArg,
    try_number: TryOpt = None,
    map_index: MapIndexOpt = None,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, client = session(url, json_out, timeout)
    ti, task = find_log_try(
        client, dag_id, run_id, task_id, try_number=try_number, map_index=map_index, wait_for_start=follow
    )
    events: list[dict[str, Any]] = []
    for batch in stream_log(client, task, follow=follow):
        if out.json_mode:
            events.extend(batch)
            continue
        for e in batch:  # plain lines, never wrapped: logs get grepped
            sys.stdout.write(format_event(e) + "\n")
        sys.stdout.flush()
    if out.json_mode:
        out.json(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "map_index": task.map_index,
                "try_number": task.try_number,
                "state": ti.get("state"),
                "events": events,
            }
        )
