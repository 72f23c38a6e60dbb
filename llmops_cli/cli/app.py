"""The root of the CLI: wires the command modules and maps errors to one line and an exit code.

Each command module exposes ``register(app)`` and keeps heavy imports inside its functions, so that
``llmops --help`` imports no torch, sentence-transformers, chromadb, litellm, pandas or Airflow client.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llmops_cli import __version__
from llmops_cli.cli.state import AppState, set_state
from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import ExitCode, LlmopsError

# One module per command (group); order is the order in --help.
COMMAND_MODULES = [
    "llmops_cli.cli.ingest_cmd",
    "llmops_cli.cli.query_cmd",
    "llmops_cli.cli.collections_cmd",
    "llmops_cli.cli.verify_cmd",  # adds `verify` to query_cmd's collections group
    "llmops_cli.cli.config_cmd",
    "llmops_cli.cli.eval_cmd",
    "llmops_cli.cli.history_cmd",
    "llmops_cli.cli.feedback_cmd",
    "llmops_cli.cli.airflow_trigger_cmd",
    "llmops_cli.cli.dags_cmd",
    "llmops_cli.cli.runs_cmd",
    "llmops_cli.cli.backfill_cmd",
    "llmops_cli.cli.tasks_cmd",
    "llmops_cli.cli.logs_cmd",
    "llmops_cli.cli.xcom_cmd",
    "llmops_cli.cli.assets_cmd",
    "llmops_cli.cli.ops_cmd",  # pools, variables, connections, health
    "llmops_cli.cli.auth_cmd",
    "llmops_cli.cli.batch_cmd",
    "llmops_cli.cli.dev_cmd",
    "llmops_cli.cli.serve_cmd",
]

app = typer.Typer(
    name="llmops",
    help="LLMOps toolkit: local RAG loop (ingest, query, ask, eval, batch) and the Airflow 3 control plane.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="Config file (default: $LLMOPS_CONFIG, ./llmops.yaml, ./configs/llmops.yaml)."
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Airflow connection profile from the config file.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    set_state(AppState(config=config, profile=profile))


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


INTERRUPTED = "interrupted; work already written is kept"


def main() -> None:
    debug = os.environ.get("LLMOPS_DEBUG", "") not in ("", "0", "false")
    _log_to_stderr(debug)
    try:
        app(prog_name="llmops")
    except LlmopsError as e:
        # LLMOPS_DEBUG adds the traceback and changes nothing else: same message, hint and exit code
        if debug:
            _traceback()
        _report(e.message, e.hint)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:  # before or after Typer's own handling
        _report(INTERRUPTED, None)
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit as e:
        # Typer turns Ctrl-C inside a command into a silent exit 130
        if e.code == int(ExitCode.INTERRUPTED):
            _report(INTERRUPTED, None)
        raise
    except Exception as e:  # noqa: BLE001 - the one place that turns surprises into one line
        if debug:
            _traceback()
        _report(
            f"internal error: {type(e).__name__}: {e}".splitlines()[0][:500],
            "report it with the traceback above"
            if debug
            else "rerun with LLMOPS_DEBUG=1 for the traceback, and report it",
        )
        sys.exit(int(ExitCode.FAILURE))


def _traceback() -> None:
    """The current exception's traceback on stderr, secrets masked (LLMOPS_DEBUG=1)."""
    sys.stderr.write(redact_secrets(traceback.format_exc()))
    sys.stderr.flush()


def _log_to_stderr(debug: bool) -> None:
    """The library's few INFO lines (a one-time model export, a backend fallback) reach the user on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    lg = logging.getLogger("llmops_cli")
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG if debug else logging.INFO)
    lg.propagate = False


def _report(message: str, hint: str | None) -> None:
    # every message and hint passes the secret filter: a URL with a password, a key echoed by a server...
    message, hint = redact_secrets(message), redact_secrets(hint) if hint else hint
    err = Console(stderr=True, highlight=False)
    # soft_wrap: one line stays one line in a CI log (rich wraps at 80 columns when stderr is not a terminal)
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[dim]hint: {escape(hint)}[/dim]", soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    main()
