"""One output object: data to stdout (rich tables, or exactly one JSON document with --json), diagnostics
to stderr, progress bars only on a terminal. NO_COLOR and non-TTY are respected (rich does both)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
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


class Output:
    def __init__(self, json_mode: bool = False):
        from rich.console import Console

        self.json_mode = json_mode
        self.out = Console(soft_wrap=False, highlight=False)
        # diagnostics are lines of user text (paths, names, server messages): never wrapped at 80 columns off a
        # terminal (a path cut in two is not a path), never coloured by rich's guesses
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    @property
    def interactive(self) -> bool:
        """Progress bars and live views only on a terminal, never in --json mode."""
        return self.err.is_terminal and not self.json_mode

    # --- data (stdout) ---
    def json(self, data: Any) -> None:
        sys.stdout.write(to_json(data) + "\n")
        sys.stdout.flush()

    def print(self, *objects: Any, **kw: Any) -> None:
        if not self.json_mode:
            self.out.print(*map(_safe, objects), **kw)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None, **kw: Any) -> None:
        if self.json_mode:
            return
        from rich.table import Table

        t = Table(title=title, title_justify="left", **kw)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*["" if v is None else safe_text(str(v)) for v in r])
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
        """One line on stderr, in ``style`` (a rich style such as "dim") if given."""
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
