"""`llmops assets event URI`: emit an asset event, so asset-scheduled DAGs can be started from CI."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmops_cli.cli.airflow_watch import session
from llmops_cli.cli.options import JsonOpt, UrlOpt
from llmops_cli.errors import UsageError

assets_app = typer.Typer(
    help="Airflow assets: emit an event (starts the DAGs scheduled on the asset).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")


@assets_app.command("event", help="Emit an event for the asset with this URI (e.g. llmops://collections/docs).")
def event(
    uri: Annotated[str, typer.Argument(help="Asset URI, exactly as the DAGs declare it.")],
    extra: Annotated[str | None, typer.Option("--extra", help="Extra JSON object stored with the event.")] = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    payload = None
    if extra is not None:
        try:
            payload = json.loads(extra)
        except ValueError as e:
            raise UsageError(
                f"--extra is not valid JSON: {e}", hint='write it as --extra \'{"key": "value"}\''
            ) from None
        if not isinstance(payload, dict):
            raise UsageError("--extra must be a JSON object", hint='e.g. --extra \'{"reason": "ci"}\'')
    out, client = session(url, json_out)
    ev = client.create_asset_event(uri, extra=payload)
    if out.json_mode:
        out.json(ev)
    else:
        out.info(f"asset event {ev.get('id')} for {uri} (asset id {ev.get('asset_id')}) at {ev.get('timestamp')}")
