"""One output object: data to stdout (rich tables, or exactly one document with --json / --format), diagnostics
to stderr, progress bars only on a terminal. NO_COLOR and non-TTY are respected (rich does both).

The document's format is decided here, for every command at once: a command asks for a document (``--json``, or the
root ``--format json|yaml|jsonl`` / ``LLMOPS_FORMAT``, which the root callback turns into ``--json`` for every
command that has one) and calls ``Output.json(doc)``; this module renders it as JSON, YAML or JSON lines. docs/json.md
is the contract.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from llmops_cli.errors import ExitCode, exit_code_of


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "get_secret_value"):
        return "********"
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


# The version of the documents in docs/json.md: raised when a key is renamed or removed or changes meaning (adding a
# key is not a change). Every JSON object a command prints carries it; a document that is a list (a few list
# commands) stays a list.
SCHEMA_VERSION = 1


class OutputFormat(StrEnum):
    """The root --format's choices: people's tables, or one document as json, yaml or jsonl (rows)."""

    table = "table"
    json = "json"
    yaml = "yaml"
    jsonl = "jsonl"


# Row-stream commands: the key of their document that holds the rows, one JSON line each under --format jsonl. A
# document that is a list is its own rows; any other document is one line.
ROW_KEYS = {
    "query": "hits",
    "history": "answers",
    "eval runs": "runs",
    "collections list": "collections",
    "collections sources": "sources",
    "eval run": "rows",
    "doctor": "checks",
    "insights questions": "questions",
    "chat": "turns",
    "finetune runs": "runs",
    "trace list": "traces",
    "trace show": "spans",
}

# Set once a document reached stdout: cli/app.py:main() prints an error document only when none did, so stdout
# holds exactly one document whatever happens.
_printed_document = False


def document_printed() -> bool:
    return _printed_document


def start_invocation() -> None:
    """A new invocation has printed no document yet (main() runs once per process, tests run it many times)."""
    global _printed_document
    _printed_document = False


def versioned(data: Any) -> Any:
    """``data`` with ``schema_version`` first when it is a JSON object (a list stays as it is)."""
    if isinstance(data, dict) and "schema_version" not in data:
        return {"schema_version": SCHEMA_VERSION, **data}
    return data


def render(data: Any, fmt: str, command: str | None = None) -> str:
    """The document ``data`` as ``fmt`` text (json, yaml or jsonl), ending with a newline. ``command`` (e.g.
    "eval runs") picks the rows of a row-stream document for jsonl (ROW_KEYS)."""
    if fmt == "jsonl":
        rows = data
        if isinstance(data, dict):
            key = ROW_KEYS.get(command or "")
            rows = data.get(key) if key and isinstance(data.get(key), list) else [versioned(data)]
        if not isinstance(rows, list):
            rows = [rows]
        return "".join(json.dumps(r, default=_default, ensure_ascii=False) + "\n" for r in rows)
    doc = versioned(data)
    if fmt == "yaml":
        import yaml  # PyYAML: light, and only when a YAML document is printed

        plain = json.loads(json.dumps(doc, default=_default, ensure_ascii=False))
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return to_json(doc) + "\n"


def _command_path() -> str | None:
    """The running command without the program name ("eval runs"), or None outside a click context."""
    from typer._click.globals import get_current_context  # Typer vendors click: its contexts are not click's

    ctx = get_current_context(silent=True)
    return ctx.command_path.split(" ", 1)[1] if ctx and " " in ctx.command_path else None


def _explicit_json_flag() -> bool:
    """Whether the running command's --json was typed on its command line (it then means JSON, whatever --format
    or LLMOPS_FORMAT say: a script that passes --json gets JSON)."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return False
    for p in ctx.command.params:
        if "--json" in getattr(p, "opts", ()):
            return ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE
    return False


def chosen_format() -> str:
    """The root --format / LLMOPS_FORMAT of this invocation ("table" when none)."""
    from llmops_cli.cli.state import state

    return state().format or "table"


# Control characters in displayed text (documents, sources, answers) would reach the terminal raw: an ESC
# sequence in a document could recolour, retitle or clear the user's terminal. Newlines and tabs stay; every other
# C0/C1 control and the bidirectional overrides ("Trojan Source") are shown as visible escapes. Only the display is
# changed: stored text and --json output keep the text as it is (JSON escapes control characters itself).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def safe_text(text: str) -> str:
    """``text`` with control characters neutralised for a terminal (see _CONTROL)."""
    return text.translate(_CONTROL)


def _safe(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def styled(markup: str) -> Any:
    """A table cell in rich markup (``"[red]FAIL[/red]"``): ``Output.table`` prints every other cell as plain text."""
    from rich.text import Text

    return Text.from_markup(markup)


def _is_rich(value: Any) -> bool:
    return type(value).__module__.startswith("rich.")


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False):
        from rich.console import Console

        # json_mode: the command prints a document (its --json, which --format sets too); the format is JSON for
        # a typed --json, else the root --format's (json when that is table)
        fmt = chosen_format()
        self.format = "table" if not json_mode else ("json" if fmt == "table" or _explicit_json_flag() else fmt)
        self.json_mode = json_mode
        # quiet (-q): no progress and no info lines on stderr; warnings and errors still print, and stdout (the
        # command's data) is unchanged
        self.quiet = quiet
        self.out = Console(soft_wrap=False, highlight=False)
        # diagnostics are lines of user text (paths, names, server messages): never wrapped at 80 columns off a
        # terminal (a path cut in two is not a path), never coloured by rich's guesses
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    @property
    def interactive(self) -> bool:
        """Progress bars and live views only on a terminal, never in --json mode or with --quiet."""
        return self.err.is_terminal and not self.json_mode and not self.quiet

    # --- data (stdout) ---
    def json(self, data: Any) -> None:
        """The command's one document on stdout, in the chosen format (docs/json.md)."""
        global _printed_document
        sys.stdout.write(render(data, "json" if self.format == "table" else self.format, _command_path()))
        sys.stdout.flush()
        _printed_document = True

    def print(self, *objects: Any, **kw: Any) -> None:
        if not self.json_mode:
            self.out.print(*map(_safe, objects), **kw)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None, **kw: Any) -> None:
        if self.json_mode:
            return
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=title, title_justify="left", **kw)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            # a cell is text, printed as it is (a source named "[draft] notes.md", a question with "[/]"); a cell
            # meant to be styled comes as a rich Text (``styled``)
            t.add_row(*[v if _is_rich(v) else "" if v is None else escape(safe_text(str(v))) for v in r])
        self.out.print(t)

    def finish(self, result: Any, *, warning: str | None = None) -> None:
        """End the command with the exit code its result carries (``errors.exit_code_of``): returns on 0; otherwise
        ``warning`` (if any) on stderr, then the exit. The one place a finished command's result becomes its exit
        status: partial (3), damaged (11) and failed gates (4) all end here, never as an "error:" line."""
        code = exit_code_of(result)
        if code == ExitCode.OK:
            return
        if warning:
            self.warn(warning)
        raise typer.Exit(int(code))

    # --- diagnostics (stderr) ---
    # ``msg`` is plain text, never rich markup: a source named ``kb/[draft] notes.pdf`` is printed as it is.
    def info(self, msg: str, *, style: str | None = None) -> None:
        """One line on stderr, in ``style`` (a rich style such as "dim") if given; nothing with --quiet."""
        if self.quiet:
            return
        from rich.markup import escape

        self.err.print(escape(safe_text(msg)), style=style)

    def warn(self, msg: str) -> None:
        from rich.markup import escape

        self.err.print(f"[yellow]warning:[/yellow] {escape(safe_text(msg))}")

    @contextmanager
    def progress(self, description: str, total: int | None = None, *, extra: str | None = None) -> Iterator[Any]:
        """A rich progress bar on a terminal; a silent stand-in otherwise. Yields an object with advance()/update()."""
        if not self.interactive:
            yield _NoProgress()
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cols = [
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        if extra:
            cols.append(TextColumn(extra))
        with Progress(*cols, console=self.err, transient=True) as p:
            task = p.add_task(description, total=total)
            yield _RichProgress(p, task)

    @contextmanager
    def phases(self, unit: str = "") -> Iterator[Any]:
        """A progress line for work in phases (parse, embed, write, ...): a spinner and the elapsed time that move
        every second whatever happens, the phase, ``done/total unit`` and a bar once a count is known, and an ETA
        only once the total is final (``PhaseProgress.show(..., final=True)``): a remaining time computed against a
        total that still grows would be a guess. A silent stand-in off a terminal, in --json mode or with --quiet."""
        if not self.interactive:
            yield _NoPhases()
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        cols = [
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            _known_time_remaining_column(),
            TextColumn("{task.fields[detail]}", style="dim"),
        ]
        with Progress(*cols, console=self.err, transient=True) as p:
            task = p.add_task("starting", total=None, count="", detail="", final=False)
            yield PhaseProgress(p, task, unit)


def _known_time_remaining_column() -> Any:
    """rich's TimeRemainingColumn, shown only once the task's total is final (rich is imported lazily)."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class KnownTimeRemaining(TimeRemainingColumn):
        def render(self, task: Any) -> Any:
            if not task.fields.get("final") or not task.total or task.completed <= 0:
                return Text("")
            return Text("ETA ") + super().render(task)

    return KnownTimeRemaining()


class PhaseProgress:
    """What ``Output.phases`` yields: ``show(phase, done, total, final=, detail=)`` (safe from any thread)."""

    def __init__(self, p: Any, task: Any, unit: str):
        self.p, self.task, self.unit = p, task, unit
        self._phase: str | None = None

    def show(
        self, phase: str, done: int | None = None, total: int | None = None, *, final: bool = False, detail: str = ""
    ) -> None:
        count = ""
        if done is not None:
            count = (f"{done}/{total}" if total else f"{done}") + (f" {self.unit}" if self.unit else "")
        self.p.update(
            self.task,
            description=phase,
            completed=done or 0,
            total=total if total else None,
            count=count,
            final=final and bool(total),
            detail=detail,
        )
        if phase != self._phase:  # drawn now, not at the next tick: a phase shorter than a tick was never seen
            self._phase = phase
            self.p.refresh()


class _NoPhases:
    def show(self, *a: Any, **kw: Any) -> None:
        pass


class _NoProgress:
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def update(self, **kw: Any) -> None:
        pass


class _RichProgress:
    def __init__(self, p: Any, task: Any):
        self.p, self.task = p, task

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.p.update(self.task, advance=n, **fields)

    def update(self, **kw: Any) -> None:
        self.p.update(self.task, **kw)
