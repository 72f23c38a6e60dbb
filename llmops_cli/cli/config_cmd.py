"""`llmops config`: the effective settings and where each came from (secrets masked)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state
from llmops_cli.errors import UsageError

config_app = typer.Typer(help="Effective settings: show, get one, and which file is in use.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show", help="Every setting, its effective value and its source (flag, env, file, default).")
def show(json_out: JsonOpt = False) -> None:
    from llmops_cli.settings import effective_items, env_var_for  # pydantic: loaded by the command, not by --help

    loaded = state().load()
    rows = effective_items(loaded)
    out = Output(json_out)
    if json_out:
        out.json(
            {
                "config_file": str(loaded.config_file) if loaded.config_file else None,
                "profile": loaded.profile,
                "settings": [{"key": k, "value": v, "source": src} for k, v, src in rows],
            }
        )
        return
    out.table(
        ["key", "value", "source", "env var"],
        [(k, v, src, env_var_for(k)) for k, v, src in rows],
        title=f"Effective settings (config file: {loaded.config_file or 'none, built-in defaults'})",
    )


@config_app.command("get", help="Print one setting's effective value (secrets masked); empty when unset.")
def get(key: Annotated[str, typer.Argument(help="Dotted key, e.g. llm.model.")], json_out: JsonOpt = False) -> None:
    from llmops_cli.settings import effective_items  # pydantic: loaded by the command, not by --help

    loaded = state().load()
    for k, v, src in effective_items(loaded):
        if k == key:
            if json_out:
                Output(True).json({"key": k, "value": v, "source": src})
            else:
                typer.echo("" if v is None else v)
            return
    raise UsageError(f"unknown setting {key!r}", hint="list them with llmops config show")


@config_app.command("path", help="The config file in effect (none: built-in defaults).")
def path() -> None:
    loaded = state().load()
    typer.echo(str(loaded.config_file) if loaded.config_file else "")
