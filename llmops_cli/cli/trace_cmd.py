"""`llmops trace show ANSWER_ID|TRACE_ID` / `llmops trace list`: the spans kept in the state database, drawn as a
tree with timings (tracing: docs/tracing.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.markup import escape

from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state

trace_app = typer.Typer(help="Traces of llmops commands (OpenTelemetry spans kept in the state database).")

# the attributes worth a glance in the tree; the rest are in --json
SHOWN = (
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "llmops.cost_usd",
    "llmops.texts",
    "llmops.hits",
    "llmops.mode",
    "llmops.cache_hit",
    "llmops.answer_id",
    "airflow.dag_run_id",
)


def register(app: typer.Typer) -> None:
    app.add_typer(trace_app, name="trace")


@contextlib.contextmanager
def _traces(settings: Any) -> Iterator[Any]:
    """The trace store, closed (with its state) after; FileNotFoundError where nothing was ever traced here."""
    from llmops_cli.adapters.state import open_state

    with open_state(settings.state.url, settings.data_path) as st, st.traces(create=False) as store:
        yield store


@trace_app.command(
    "show",
    help="One trace as a tree with timings: by the answer it produced (its id from `llmops ask --json` or `llmops "
    "history`) or by trace id.\n\nExample:\n\n  llmops trace show 3f2a9c",
)
def show(
    id_: Annotated[
        str, typer.Argument(metavar="ANSWER_ID|TRACE_ID", help="Answer id or trace id (or a unique start).")
    ],
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.errors import NotFoundError

    s = state().load().settings
    out = Output(json_out)
    try:
        with _traces(s) as store:
            spans = store.trace(id_)
    except FileNotFoundError:
        raise NotFoundError(f"no trace for {id_!r}: nothing was traced here yet", hint="run a command first") from None
    if json_out:
        out.json({"trace_id": spans[0].trace_id, "spans": [x.to_dict() for x in spans]})
        return
    from rich.tree import Tree

    by_parent: dict[str | None, list[Any]] = {}
    ids = {x.span_id for x in spans}
    for x in spans:
        by_parent.setdefault(x.parent_id if x.parent_id in ids else None, []).append(x)
    start = min(x.start_ns for x in spans)
    tree = Tree(f"[bold]trace {spans[0].trace_id}[/bold]")

    def add(node: Any, parent: str | None) -> None:
        for x in by_parent.get(parent, []):
            attrs = ", ".join(f"{k.split('.')[-1]}={x.attributes[k]}" for k in SHOWN if k in x.attributes)
            offset = (x.start_ns - start) / 1e6
            error = " [red]error[/red]" if x.status == "error" else ""
            label = f"{x.name}  [cyan]{x.duration_ms:.1f} ms[/cyan] [dim]+{offset:.1f} ms{error}  {escape(attrs)}[/dim]"
            add(node.add(label), x.span_id)

    add(tree, None)
    out.print(tree)


@trace_app.command("list", help="The most recent traces (their root spans), newest first.")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most this many.", min=1)] = 20,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    out = Output(json_out)
    try:
        with _traces(s) as store:
            roots = store.recent(limit)
    except FileNotFoundError:
        roots = []
    if json_out:
        out.json({"traces": [x.to_dict() for x in roots]})
        return
    if not roots:
        out.info("no traces yet (tracing.enabled is on by default: run llmops ask QUESTION)")
        return
    out.table(
        ["trace", "span", "ms", "answer"],
        [(x.trace_id[:12], x.name, f"{x.duration_ms:.1f}", x.attributes.get("llmops.answer_id", "")) for x in roots],
    )
