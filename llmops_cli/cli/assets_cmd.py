"""`llmops assets list | show | event`: the assets Airflow knows, what each schedules and has queued, and emitting an
event, so asset-scheduled DAGs can be started from CI."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.airflow_watch import session, ts
from llmops_cli.cli.ops_cmd import parse_extra
from llmops_cli.cli.options import JsonOpt, TimeoutOpt, UrlOpt

assets_app = typer.Typer(
    help="Airflow assets: list, show (scheduled DAGs, queued events), emit an event (starts the DAGs scheduled on the "
    "asset).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")


@assets_app.command("event", help="Emit an event for the asset with this URI (e.g. llmops://collections/docs).")
def event(
    uri: Annotated[str, typer.Argument(help="Asset URI, exactly as the DAGs declare it.")],
    extra: Annotated[str | None, typer.Option("--extra", help="Extra JSON object stored with the event.")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    payload = parse_extra(extra, '{"reason": "ci"}')
    out, client = session(url, json_out, timeout)
    ev = client.create_asset_event(uri, extra=payload)
    if out.json_mode:
        out.json(ev)
    else:
        out.info(f"asset event {ev.get('id')} for {uri} (asset id {ev.get('asset_id')}) at {ev.get('timestamp')}")


UriArg = Annotated[str, typer.Argument(help="Asset URI (e.g. llmops://collections/docs) or its numeric id.")]


def _dag_ids(items: object) -> str:
    return ", ".join(str(d.get("dag_id")) for d in items or [] if isinstance(d, dict))  # type: ignore[union-attr]


@assets_app.command("list", help="Assets with the DAGs they schedule and their latest event.")
def list_assets(timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.adapters.airflow.ops import AirflowOps

    out, client = session(url, json_out, timeout)
    assets = AirflowOps(client).assets()
    if out.json_mode:
        out.json(assets)
        return
    out.table(
        ["id", "uri", "schedules", "produced by", "last event"],
        [
            [
                a.get("id"),
                a.get("uri"),
                _dag_ids(a.get("scheduled_dags")),
                ", ".join(f"{t.get('dag_id')}.{t.get('task_id')}" for t in a.get("producing_tasks") or []),
                ts((a.get("last_asset_event") or {}).get("timestamp")),
            ]
            for a in assets
        ],
    )


@assets_app.command("show", help="One asset: the DAGs it schedules, its queued events, its latest events.")
def show_asset(
    uri: UriArg,
    events: Annotated[int, typer.Option("--events", help="How many of its latest events to show.", min=0)] = 5,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.adapters.airflow.ops import AirflowOps

    out, client = session(url, json_out, timeout)
    a = AirflowOps(client).asset(uri, events=events)
    if out.json_mode:
        out.json(a)
        return
    out.print(f"[bold]{a.get('uri')}[/bold]  id: {a.get('id')}  group: {a.get('group') or '-'}")
    out.print(f"schedules: {_dag_ids(a.get('scheduled_dags')) or '-'}", markup=False)
    if a["queued_events"]:
        out.table(
            ["queued for dag", "since"],
            [[q.get("dag_id"), ts(q.get("created_at"))] for q in a["queued_events"]],
            title="queued events (DAGs waiting for their other assets)",
        )
    else:
        out.print("queued events: none", markup=False)
    if not a["recent_events"]:
        out.print("events: none yet", markup=False)
        return
    out.table(
        ["event", "at", "from"],
        [
            [
                e.get("id"),
                ts(e.get("timestamp")),
                f"{e.get('source_dag_id')}.{e.get('source_task_id')}" if e.get("source_dag_id") else "api",
            ]
            for e in a["recent_events"]
        ],
        title="latest events",
    )
