"""`llmops pools | variables | connections | health`: operating an Airflow deployment without its web UI.

Secret values never reach the output: connection passwords are not printed at all, and variable values and connection
extras under secret-named keys (password, secret, token, api_key...) are masked, in tables and with --json alike
(adapters/airflow/ops.py masks them before they leave the adapter).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli.airflow_watch import session
from llmops_cli.cli.options import JsonOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import Output
from llmops_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from llmops_cli.adapters.airflow.ops import AirflowOps

pools_app = typer.Typer(
    help="Airflow pools: list, create or resize, delete; `ensure-llmops` creates the llmops writers' pool.",
    no_args_is_help=True,
)
variables_app = typer.Typer(
    help="Airflow variables: list, get, set, delete (secret values masked).", no_args_is_help=True
)
connections_app = typer.Typer(
    help="Airflow connections: list, get, set, delete (passwords never printed, secret extras masked).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(pools_app, name="pools")
    app.add_typer(variables_app, name="variables")
    app.add_typer(connections_app, name="connections")
    app.command(
        "health",
        help="Each Airflow component's status and the server's versions; exit 1 if a component is unhealthy, "
        "7 if the API server cannot be reached.",
    )(health)


def ops_session(url: str | None, json_out: bool, timeout: float | None = None) -> tuple[Output, AirflowOps]:
    from llmops_cli.adapters.airflow.ops import AirflowOps

    out, client = session(url, json_out, timeout)
    return out, AirflowOps(client)


def parse_extra(extra: str | None, example: str) -> dict[str, Any] | None:
    """``--extra`` as the JSON object it must be (None when not given); ``example`` is the hint for a non-object."""
    if extra is None:
        return None
    try:
        parsed = json.loads(extra)
    except ValueError as e:
        raise UsageError(f"--extra is not valid JSON: {e}", hint='write it as --extra \'{"key": "value"}\'') from None
    if not isinstance(parsed, dict):
        raise UsageError("--extra must be a JSON object", hint=f"e.g. --extra '{example}'")
    return parsed


def _show(out: Output, doc: Any, columns: list[str], row: Callable[[Any], list[Any]], items: Any = None) -> None:
    """``doc`` as JSON, else a table of ``items`` (``doc`` itself when it is the list) one ``row`` each."""
    if out.json_mode:
        out.json(doc)
        return
    out.table(columns, [row(i) for i in (doc if items is None else items)])


def _saved(out: Output, what: str, doc: dict[str, Any], created: bool, detail: str = "") -> None:
    if out.json_mode:
        out.json({**doc, "created": created})
    else:
        out.info(f"{what} {'created' if created else 'updated'}{detail}")


def _deleted(out: Output, key: str, name: str, what: str) -> None:
    if out.json_mode:
        out.json({key: name, "deleted": True})
    else:
        out.info(f"{what} {name} deleted")


PoolArg = Annotated[str, typer.Argument(help="Pool name (see `llmops pools list`).")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="A description stored with it.")]
SlotsOpt = Annotated[int | None, typer.Option("--slots", help="Number of slots (-1: unlimited).", min=-1)]


def _pool_row(p: dict[str, Any]) -> list[Any]:
    slots = p.get("slots")
    return [
        p.get("name"),
        "unlimited" if slots == -1 else slots,
        p.get("open_slots"),
        p.get("running_slots"),
        p.get("queued_slots"),
        "yes" if p.get("include_deferred") else "",
        p.get("description") or "",
    ]


POOL_COLUMNS = ["pool", "slots", "open", "running", "queued", "deferred count", "description"]


@pools_app.command("list", help="Pools with their slots in use.")
def pools_list(timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    _show(out, ops.pools(), POOL_COLUMNS, _pool_row)


@pools_app.command("set", help="Create a pool (needs --slots) or change the given fields of an existing one.")
def pools_set(
    name: PoolArg,
    slots: SlotsOpt = None,
    description: DescriptionOpt = None,
    include_deferred: Annotated[
        bool | None,
        typer.Option(
            "--include-deferred/--exclude-deferred", help="Whether deferred tasks take slots.", show_default=False
        ),
    ] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, ops = ops_session(url, json_out, timeout)
    pool, created = ops.set_pool(name, slots=slots, description=description, include_deferred=include_deferred)
    _saved(out, f"pool {name}", pool, created, f": {pool.get('slots')} slot(s)")


@pools_app.command("delete", help="Delete a pool (default_pool cannot be deleted).")
def pools_delete(name: PoolArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    ops.delete_pool(name)
    _deleted(out, "name", name, "pool")


@pools_app.command(
    "ensure-llmops",
    help="Create the pool that serialises writers of an embedded vector store (llmops_embedded_store, 1 slot) "
    "if it is missing; an existing one is left as it is.",
)
def pools_ensure_llmops(
    slots: Annotated[int, typer.Option("--slots", help="Slots when it is created.", min=1)] = 1,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    out, ops = ops_session(url, json_out, timeout)
    pool, created = ops.ensure_llmops_pool(slots=slots)
    if out.json_mode:
        out.json({**pool, "created": created})
        return
    verb = "created" if created else "already exists"
    out.info(f"pool {pool.get('name')} {verb}: {pool.get('slots')} slot(s)")


# ---------------------------------------------------------------------------------------------------- variables
KeyArg = Annotated[str, typer.Argument(help="Variable key (see `llmops variables list`).")]


def _value_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


@variables_app.command("list", help="Variables (values under secret-named keys masked).")
def variables_list(timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    _show(
        out,
        ops.variables(),
        ["key", "value", "description"],
        lambda v: [v.get("key"), _short(_value_text(v.get("value"))), v.get("description") or ""],
    )


@variables_app.command("get", help="One variable's value (masked when its key names a secret).")
def variables_get(key: KeyArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    v = ops.get_variable(key)
    if out.json_mode:
        out.json(v)
    else:
        out.print(_value_text(v.get("value")), markup=False)


@variables_app.command("set", help="Create or replace a variable.")
def variables_set(
    key: KeyArg,
    value: Annotated[str | None, typer.Argument(help="The value (omit it with --value-stdin).")] = None,
    value_stdin: Annotated[
        bool, typer.Option("--value-stdin", help="Read the value from stdin (keeps a secret out of the shell history).")
    ] = False,
    description: DescriptionOpt = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    if value_stdin == (value is not None):
        raise UsageError("give the value either as an argument or with --value-stdin", hint="not both, not neither")
    if value_stdin:
        value = sys.stdin.read().rstrip("\n")
    out, ops = ops_session(url, json_out, timeout)
    v, created = ops.set_variable(key, value or "", description=description)
    _saved(out, f"variable {key}", v, created)


@variables_app.command("delete", help="Delete a variable.")
def variables_delete(key: KeyArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    ops.delete_variable(key)
    _deleted(out, "key", key, "variable")


# ---------------------------------------------------------------------------------------------------- connections
ConnArg = Annotated[str, typer.Argument(help="Connection id (see `llmops connections list`).")]
CONN_COLUMNS = ["connection id", "type", "host", "port", "login", "schema", "password", "extra"]


def _conn_row(c: dict[str, Any]) -> list[Any]:
    return [
        c.get("connection_id"),
        c.get("conn_type"),
        c.get("host") or "",
        c.get("port") or "",
        c.get("login") or "",
        c.get("schema") or "",
        "set" if c.get("password") else "",
        _short(c.get("extra") or ""),
    ]


@connections_app.command("list", help="Connections (passwords never shown; secret extras masked).")
def connections_list(timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    out, ops = ops_session(url, json_out, timeout)
    _show(out, ops.connections(), CONN_COLUMNS, _conn_row)


@connections_app.command("get", help="One connection (its password never shown).")
def connections_get(
    conn_id: ConnArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, ops = ops_session(url, json_out, timeout)
    c = ops.get_connection(conn_id)
    _show(out, c, CONN_COLUMNS, _conn_row, items=[c])


@connections_app.command(
    "set", help="Create a connection (needs --conn-type) or change only the given fields of an existing one."
)
def connections_set(
    conn_id: ConnArg,
    conn_type: Annotated[str | None, typer.Option("--conn-type", help="Connection type, e.g. http, postgres.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port.", min=0, max=65535)] = None,
    login: Annotated[str | None, typer.Option("--login", help="Login (user name).")] = None,
    schema: Annotated[str | None, typer.Option("--schema", help="Schema (database).")] = None,
    extra: Annotated[str | None, typer.Option("--extra", help="Extra JSON object.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (never from the command line).")
    ] = False,
    description: DescriptionOpt = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    parse_extra(extra, '{"timeout": 30}')  # checked here; the adapter sends the text as given
    password = sys.stdin.read().rstrip("\n") if password_stdin else None
    fields = {
        "conn_type": conn_type,
        "host": host,
        "port": port,
        "login": login,
        "schema": schema,
        "extra": extra,
        "password": password,
        "description": description,
    }
    out, ops = ops_session(url, json_out, timeout)
    c, created = ops.set_connection(conn_id, fields)
    _saved(out, f"connection {conn_id}", c, created)


@connections_app.command("delete", help="Delete a connection.")
def connections_delete(
    conn_id: ConnArg, timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False
) -> None:
    out, ops = ops_session(url, json_out, timeout)
    ops.delete_connection(conn_id)
    _deleted(out, "connection_id", conn_id, "connection")


# ---------------------------------------------------------------------------------------------------- health
def health(timeout: TimeoutOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.adapters.airflow.ops import unhealthy_components

    out, ops = ops_session(url, json_out, timeout)
    doc = ops.health()
    bad = unhealthy_components(doc)
    doc["healthy"] = not bad
    if out.json_mode:
        out.json(doc)
    else:
        rows = []
        for name, comp in (doc.get("components") or {}).items():
            comp = comp if isinstance(comp, dict) else {"status": comp}
            beat = next((v for k, v in comp.items() if k.endswith("heartbeat")), None)
            rows.append([name, comp.get("status") or "not running", str(beat or "").replace("T", " ")[:19]])
        out.table(["component", "status", "latest heartbeat"], rows)
        ver = doc.get("version") or {}
        out.print(f"Airflow {ver.get('version', '?')} at {doc['url']}", markup=False)
    out.finish(ExitCode.FAILURE if bad else ExitCode.OK, warning=f"unhealthy: {', '.join(bad)}" if bad else None)


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."
