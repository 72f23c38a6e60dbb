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
from difflib import get_close_matches
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as click_errors  # Typer vendors click: its errors are not click's
from typer.core import TyperGroup

from llmops_cli import __version__
from llmops_cli.cli.output import OutputFormat, document_printed, render, start_invocation
from llmops_cli.cli.state import AppState, set_state, state
from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import ExitCode, LlmopsError

# Which module defines which top-level commands, in --help order. A command's module is imported only when that
# command runs (or when a help screen or completion lists them all), so `llmops query` pays for one module, not
# thirty. tests/unit/test_cli_startup.py checks this table against what each module's register() adds.
COMMANDS: dict[str, tuple[str, ...]] = {
    "init": ("llmops_cli.cli.init_cmd",),
    "ingest": ("llmops_cli.cli.ingest_cmd",),
    "query": ("llmops_cli.cli.query_cmd",),
    "ask": ("llmops_cli.cli.query_cmd",),
    "chat": ("llmops_cli.cli.chat_cmd",),
    "doctor": ("llmops_cli.cli.doctor_cmd",),
    "trigger-dag": ("llmops_cli.cli.airflow_trigger_cmd",),
    "logs": ("llmops_cli.cli.logs_cmd",),
    "health": ("llmops_cli.cli.ops_cmd",),  # with pools, variables, connections
    "batch": ("llmops_cli.cli.batch_cmd",),
    "serve": ("llmops_cli.cli.serve_cmd",),
    "collections": ("llmops_cli.cli.collections_cmd", "llmops_cli.cli.verify_cmd"),  # verify adds `collections verify`
    "chunks": ("llmops_cli.cli.collections_cmd",),
    "config": ("llmops_cli.cli.config_cmd",),
    "eval": ("llmops_cli.cli.eval_cmd",),
    "history": ("llmops_cli.cli.history_cmd",),
    "insights": ("llmops_cli.cli.insights_cmd",),
    "lineage": ("llmops_cli.cli.lineage_cmd",),
    "trace": ("llmops_cli.cli.trace_cmd",),
    "feedback": ("llmops_cli.cli.feedback_cmd",),
    "dags": ("llmops_cli.cli.dags_cmd",),
    "runs": ("llmops_cli.cli.runs_cmd",),
    "backfill": ("llmops_cli.cli.backfill_cmd",),
    "tasks": ("llmops_cli.cli.tasks_cmd",),
    "xcom": ("llmops_cli.cli.xcom_cmd",),
    "assets": ("llmops_cli.cli.assets_cmd",),
    "pools": ("llmops_cli.cli.ops_cmd",),
    "variables": ("llmops_cli.cli.ops_cmd",),
    "connections": ("llmops_cli.cli.ops_cmd",),
    "auth": ("llmops_cli.cli.auth_cmd",),
    "dev": ("llmops_cli.cli.dev_cmd",),
    "finetune": ("llmops_cli.cli.finetune_cmd",),
}


class LazyGroup(TyperGroup):
    """The root group: lists every command from ``COMMANDS`` and builds a command from its module on first use."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [*COMMANDS, *(n for n in self.commands if n not in COMMANDS)]

    def get_command(self, ctx: typer.Context, cmd_name: str):
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands.update(
                {n: c for n, c in build_commands(COMMANDS[cmd_name]).items() if n not in self.commands}
            )
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        try:
            return self._click_resolve_command(ctx, args)
        except click_errors.UsageError as e:
            # did-you-mean over every command, not only the ones built so far (Typer looks at self.commands)
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches and "Did you mean" not in e.message:
                e.message = f"{e.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
            elif args and not matches and (nested := self._nested(ctx, args[0])):
                # `llmops verify`: a command one level down (`collections verify`); building every group costs
                # the imports a help screen pays, on this error path only
                e.message = f"{e.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in nested)}?"
            raise

    def _nested(self, ctx: typer.Context, name: str) -> list[str]:
        found = []
        for group in COMMANDS:
            cmd = self.get_command(ctx, group)
            if name in (getattr(cmd, "commands", None) or {}):
                found.append(f"{group} {name}")
        return found


def build_commands(modules: tuple[str, ...]) -> dict:
    """The click commands that ``modules``' register() functions add, built as Typer builds the root's own."""
    holder = typer.Typer(rich_markup_mode="rich")

    @holder.callback()
    def _holder() -> None:  # a callback makes Typer build a group even for a module with one command
        pass

    for name in modules:
        importlib.import_module(name).register(holder)
    return dict(typer.main.get_group(holder).commands)


app = typer.Typer(
    name="llmops",
    cls=LazyGroup,
    help="LLMOps toolkit: local RAG loop (ingest, query, ask, eval, batch) and the Airflow 3 control plane.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion; completers import lazily (cli/completion.py)
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback(
    epilog="Examples:\n\n"
    "  llmops init                        # a starter llmops.yaml here\n\n"
    "  llmops doctor                      # what works, what does not, and the fix\n\n"
    "  llmops --format yaml config show   # any document as YAML (or json, jsonl)"
)
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file (default: $LLMOPS_CONFIG, ./llmops.yaml, ./configs/llmops.yaml).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="NAME", help="Airflow connection profile from the config file."),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            envvar="LLMOPS_FORMAT",
            case_sensitive=False,
            metavar="FORMAT",
            help="table (default), json, yaml, or jsonl (a JSON object per row): every command's output. docs/json.md.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    set_state(AppState(config=config, profile=profile, format=fmt.value if fmt else None))
    if fmt and fmt != OutputFormat.table:
        # every command that can print a document prints one, as if its --json had been given
        ctx.default_map = {**(ctx.default_map or {}), **_json_defaults(ctx.command)}


def _json_defaults(group: typer.core.TyperGroup) -> dict:
    """A click default_map that turns on --json in every command below ``group`` that has it."""
    out: dict = {}
    for name, cmd in (getattr(group, "commands", None) or {}).items():
        d = {p.name: True for p in cmd.params if "--json" in getattr(p, "opts", ())}
        d.update(_json_defaults(cmd))
        if d:
            out[name] = d
    return out


INTERRUPTED = "interrupted; work already written is kept"


def main() -> None:
    debug = os.environ.get("LLMOPS_DEBUG", "") not in ("", "0", "false")
    _log_to_stderr(debug)
    start_invocation()
    try:
        # not standalone: usage errors come here to be one line and a hint like every other error
        rv = app(prog_name="llmops", standalone_mode=False)
    except LlmopsError as e:
        # LLMOPS_DEBUG adds the traceback and changes nothing else: same message, hint and exit code
        if debug:
            _traceback()
        _fail(e.message, e.hint, e.exit_code)
    except click_errors.NoArgsIsHelpError as e:  # `llmops eval`: the group's help was printed
        sys.exit(e.exit_code)
    except click_errors.UsageError as e:
        _fail(*_usage_line(e), ExitCode.USAGE)
    except typer.Abort as e:  # a prompt (init, auth login, a confirmation) left unanswered
        if isinstance(e.__context__, KeyboardInterrupt):  # Ctrl-C at the prompt: an interruption like any other
            _quiet_exit_after_interrupt()
            _fail(INTERRUPTED, None, ExitCode.INTERRUPTED)
        if isinstance(e.__context__, EOFError):
            _fail(
                "aborted: a prompt got no answer (end of input)",
                "answer it at a terminal, or pass what it asks as options (--help lists them)",
                ExitCode.FAILURE,
            )
        _fail("aborted", None, ExitCode.FAILURE)  # a confirmation answered no
    except click_errors.ClickException as e:  # e.g. a file click could not open
        _fail(e.format_message().splitlines()[0], None, e.exit_code)
    except KeyboardInterrupt:  # before or after Typer's own handling
        _quiet_exit_after_interrupt()
        _fail(INTERRUPTED, None, ExitCode.INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the one place that turns surprises into one line
        if debug:
            _traceback()
        _fail(
            f"internal error: {type(e).__name__}: {e}".splitlines()[0][:500],
            "report it with the traceback above"
            if debug
            else "rerun with LLMOPS_DEBUG=1 for the traceback, and report it",
            ExitCode.FAILURE,
        )
    # a command returns None, or typer.Exit's code comes back as an int
    code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    if code == int(ExitCode.INTERRUPTED):  # Typer turns Ctrl-C inside a command into a silent exit 130
        _quiet_exit_after_interrupt()
        _fail(INTERRUPTED, None, ExitCode.INTERRUPTED)  # under --json, the error document too, as for any error
    sys.exit(code)


def _quiet_exit_after_interrupt() -> None:
    """After Ctrl-C, while Python shuts down (atexit: traces flushed; unclosed HTTP sessions collected): a second
    Ctrl-C ends the process at once with 130 instead of a traceback from an atexit hook, and asyncio's "Unclosed
    client session" lines (a session an interrupted event loop could not close) are not printed. What was written
    is already on disk (checkpoints are flushed per record)."""
    import signal

    try:
        signal.signal(signal.SIGINT, lambda *_: os._exit(int(ExitCode.INTERRUPTED)))
    except ValueError:  # not the main thread (an embedding caller): leave its handler alone
        pass
    logging.getLogger("asyncio").disabled = True


def _usage_line(e: click_errors.UsageError) -> tuple[str, str]:
    """Click's usage error as one line (its message, which names the option and any did-you-mean) and a hint."""
    message = " ".join(e.format_message().split())
    # Typer's choice check words its error as pydantic does: "...: Value error, 'x' is not one of 'a', 'b'."
    message = message.replace(": Value error, ", ": ")
    command = e.ctx.command_path if e.ctx is not None else "llmops"
    return message, f"see {command} --help"


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    """The one error line (and hint) on stderr; under --json or --format, also the error document on stdout
    (docs/json.md), unless the command already printed its document. Then the exit."""
    fmt = _document_format()
    if fmt and not document_printed():
        doc = {"error": redact_secrets(message), "hint": redact_secrets(hint) if hint else None, "exit_code": int(code)}
        sys.stdout.write(render(doc, fmt))
        sys.stdout.flush()
    _report(message, hint)
    sys.exit(int(code))


def _document_format() -> str | None:
    """The format of the document this invocation prints (json, yaml, jsonl), or None for people's output."""
    fmt = state().format or os.environ.get("LLMOPS_FORMAT", "").lower()  # env: a usage error before the callback
    argv = sys.argv[1:]
    argv = argv[: argv.index("--")] if "--" in argv else argv
    if "--json" in argv:
        return "json"
    return fmt if fmt in ("json", "yaml", "jsonl") else None


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
