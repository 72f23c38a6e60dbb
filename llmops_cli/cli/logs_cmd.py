"""`llmops logs DAG_ID RUN_ID TASK_ID`: a task instance's full structured log; --follow a running one."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.options import JsonOpt, UrlOpt


def register(app: typer.Typer) -> None:
    app.command("logs", help="A task's log (latest try by default); --follow streams a running task until it ends.")(
        logs
    )


def logs(
    dag_id: Annotated[str, typer.Argument(help="DAG id.")],
    run_id: Annotated[str, typer.Argument(help="DAG run id.")],
    task_id: Annotated[str, typer.Argument(help="Task id (see `llmops tasks list DAG_ID RUN_ID`).")],
    try_number: Annotated[int | None, typer.Option("--try", help="Try number (default: the latest).", min=1)] = None,
    map_index: Annotated[
        int | None, typer.Option("--map-index", help="Map index of a mapped task instance.", min=0)
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the task ends.")
    ] = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    import sys
    import time

    from llmops_cli.adapters.airflow.client import TERMINAL_TI_STATES, WRITING_TI_STATES
    from llmops_cli.cli.airflow_watch import session
    from llmops_cli.core.orchestration import format_event, without_source_header
    from llmops_cli.errors import UsageError

    out, client = session(url, json_out)
    ti = client.get_task_instance(dag_id, run_id, task_id, map_index)
    if (
        map_index is None and ti.get("map_index", -1) >= 0
    ):  # pragma: no cover - the API 404s mapped ones without an index
        raise UsageError(f"task {task_id!r} is mapped", hint="pass --map-index N (see `llmops tasks list`)")
    # --follow on a task that is not running yet: wait for it to start (or end) before reading its log.
    # (Airflow counts the try when the task is queued, so try_number alone does not say it started.)
    while follow and not try_number and ti.get("state") not in WRITING_TI_STATES | TERMINAL_TI_STATES:
        time.sleep(1.0)
        ti = client.get_task_instance(dag_id, run_id, task_id, map_index)
    tries = try_number or ti.get("try_number") or 0
    if tries < 1:
        raise UsageError(
            f"task {task_id!r} has no log: it never ran (state {ti.get('state') or 'none'})",
            hint=None if follow else "add --follow to wait for it to start",
        )
    events: list[dict] = []
    token = None

    def emit(batch: list[dict]) -> None:
        if out.json_mode:
            events.extend(batch)
            return
        for e in batch:  # plain lines, never wrapped: logs get grepped
            sys.stdout.write(format_event(e) + "\n")
        sys.stdout.flush()

    shown = 0  # events shown so far: a re-read from the start (no token) skips them
    while True:
        batch, nxt = client.get_log(dag_id, run_id, task_id, tries, map_index=map_index, token=token)
        if token is None:
            batch = batch[shown:]
        elif shown:
            batch = without_source_header(batch)
        emit(batch)
        shown += len(batch)
        if not follow:
            break
        if nxt is None:  # the server says end of log: done if the try is over, else read again from the start
            state = client.get_task_instance(dag_id, run_id, task_id, map_index).get("state")
            if state not in WRITING_TI_STATES:
                break
        token = nxt
        if not batch or nxt is None:
            time.sleep(1.0)
    if out.json_mode:
        out.json(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "map_index": map_index if map_index is not None else -1,
                "try_number": tries,
                "state": ti.get("state"),
                "events": events,
            }
        )
