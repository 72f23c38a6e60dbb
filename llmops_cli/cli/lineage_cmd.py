"""`llmops lineage answer ID` / `llmops lineage source PATH`: what an answer was built on, and what was built on a
source (its chunks, and the answers whose context held them)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.options import CollectionOpt, JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace

lineage_app = typer.Typer(help="Lineage both ways: the sources behind an answer, the answers built on a source.")


def register(app: typer.Typer) -> None:
    app.add_typer(lineage_app, name="lineage")


def _promotion(p: dict | None) -> str:
    if p is None:
        return "not promoted"
    return "promoted" if p["active"] else f"promoted, then taken out ({p['removed_reason']})"


@lineage_app.command(
    "answer",
    help="The chunks an answer was given and the sources behind them: current, changed since, or removed.\n\n"
    "Example:\n\n  llmops lineage answer 3f2a9c",
)
def answer_cmd(
    answer_id: Annotated[str, typer.Argument(metavar="ID", help="Answer id or a unique start of it (llmops history).")],
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import lineage

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        doc = lineage.answer(ws, answer_id)
    if json_out:
        out.json(doc)
        return
    a = doc["answer"]
    out.print(f"[bold]answer {a['id']}[/bold] ({a['created_at']}, collection {a['collection']}): {a['question']}")
    out.table(
        ["source", "version now", "status"],
        [(x["source"], x["version"] or "-", x["status"]) for x in doc["sources"]],
        title="Sources of its context",
    )
    out.table(["chunk", "source", "status"], [(c["id"], c["source"], c["status"]) for c in doc["chunks"]])
    out.print(_promotion(doc["promotion"]))


@lineage_app.command(
    "source",
    help="A source's version and chunks, and every answer whose context held them (stale when they changed since), "
    "promoted ones with their state.\n\nExample:\n\n  llmops lineage source docs/ingest.md --collection docs",
)
def source_cmd(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Source id (as query shows it) or a path to the file.")],
    collection: CollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import lineage

    s = state().load(flags={"store.collection": collection}).settings
    out = Output(json_out)
    with workspace(s) as ws:
        doc = lineage.source(ws, path, collection=s.store.collection)
    if json_out:
        out.json(doc)
        return
    out.print(
        f"[bold]{escape(doc['source'])}[/bold] in {doc['collection']}: version {doc['version']}, "
        f"{len(doc['chunks'])} chunk(s), {len(doc['answers'])} answer(s) built on it"
    )
    if doc["answers"]:
        out.table(
            ["answer", "time (UTC)", "question", "status", "promotion"],
            [
                (a["id"], a["created_at"], a["question"], a["status"], _promotion(a["promotion"]))
                for a in doc["answers"]
            ],
        )
