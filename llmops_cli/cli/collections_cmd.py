"""`llmops collections ...` and `llmops chunks get`: what is in the store, and a look inside a collection.

The `collections` group is defined here; `collections verify` is added to it by verify_cmd.py. Every command here but
`delete` only reads: it creates no store where there is none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.options import JsonOpt, YesOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.entry import store as store_entry
from llmops_cli.errors import UsageError

collections_app = typer.Typer(
    help="Collections in the vector store: list, look inside, export, delete.", no_args_is_help=True
)
chunks_app = typer.Typer(help="Chunks of a collection, by id (llmops query shows the ids).", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Collection name (see llmops collections list).", metavar="NAME")]


def register(app: typer.Typer) -> None:
    app.add_typer(collections_app, name="collections")
    app.add_typer(chunks_app, name="chunks")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@collections_app.command(
    "list",
    help="Collections with their chunk and source counts.\n\nExample: llmops collections list --json",
)
def collections_list(json_out: JsonOpt = False) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        rows = store_entry.collections(ws)
    out = Output(json_out)
    where = store_entry.store_location(s)
    if json_out:
        out.json({"store": where, "collections": rows})
        return
    out.table(
        ["collection", "chunks", "sources", "embedder"],
        [(r["name"], r["chunks"], r["sources"], r["embedder"]) for r in rows],
        title=f"Collections in {where}",
    )


@collections_app.command(
    "show",
    help="One collection: sources, chunk count, chunking, embedder, last ingest, size and chunk lengths.\n\n"
    "Example: llmops collections show docs",
)
def collections_show(
    name: NameArg,
    chart: Annotated[bool, typer.Option("--chart", help="Also draw the chunk-length histogram.")] = False,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        d = store_entry.describe_collection(ws, name)
    out = Output(json_out)
    lengths = d.pop("chunk_lengths")  # every chunk's length: for a histogram, not for the document
    if json_out:
        out.json(d)
        return
    emb = d["embedder_config"] or {}
    chunking = d["chunking"]
    chars = d["chunk_chars"]
    rows = [
        ("store", d["store"]),
        ("chunks", d["chunks"]),
        ("sources", f"{d['sources']}  (llmops collections sources {name})"),
        ("embedder", d["embedder"] or "not recorded"),
        ("", ", ".join(f"{k} {emb[k]}" for k in ("backend", "model", "precision") if k in emb)),
        ("dimension", d["dimension"]),
        (
            "chunking",
            f"{chunking.get('strategy')}, size {chunking.get('size')} tokens, overlap {chunking.get('overlap')}"
            if chunking
            else "not recorded",
        ),
        ("last ingest", d["last_ingest"] or "not recorded"),
        ("size", f"{_size(d['size']['text_bytes'])} text, {_size(d['size']['vector_bytes'])} vectors"),
        ("chunk length", f"{chars['min']} / {chars['median']} / {chars['max']} characters (min / median / max)"),
    ]
    out.table(["", ""], [r for r in rows if r[1] not in ("", None)], title=f"Collection {name}", show_header=False)
    if chart and lengths:
        from llmops_cli.cli.charts import histogram_chart

        out.print(histogram_chart(lengths), markup=False)


@collections_app.command(
    "sources",
    help="The sources a collection was ingested from, with their chunk counts.\n\n"
    "Example: llmops collections sources docs --json",
)
def collections_sources(name: NameArg, json_out: JsonOpt = False) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        rows = store_entry.collection_sources(ws, name)
    out = Output(json_out)
    if json_out:
        out.json({"collection": name, "sources": rows})
        return
    if not rows:
        out.info(f"collection {name} has no sources")
        return
    out.table(
        ["source", "chunks", "content hash"],
        [(r["source"], r["chunks"], r["content_hash"][:12]) for r in rows],
        title=f"Sources of {name} ({len(rows)})",
    )


@collections_app.command(
    "export",
    help="Write every chunk of a collection (id, text, metadata; with --vectors its vector) to a JSONL or parquet "
    "file. An existing file is replaced only with --force.\n\n"
    "Examples: llmops collections export docs -o docs.jsonl; "
    "llmops collections export docs --format parquet --vectors -o docs.parquet",
)
def collections_export(
    name: NameArg,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="PATH", help="File to write (default: NAME.FORMAT here)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="jsonl|parquet",
            help="File format (default: from --output's extension, which must then be .jsonl or .parquet; "
            "jsonl without --output).",
        ),
    ] = None,
    vectors: Annotated[bool, typer.Option("--vectors", help="Include each chunk's stored vector.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    if fmt is not None and fmt not in store_entry.EXPORT_FORMATS:
        raise UsageError(f"--format {fmt}: not a format llmops exports", hint="use --format jsonl or --format parquet")
    path = Path(output) if output else Path(f"{name}.{fmt or 'jsonl'}")
    s = state().load().settings
    with workspace(s) as ws:
        res = store_entry.export_collection(ws, name, path.absolute(), fmt=fmt, vectors=vectors, force=force)
    out = Output(json_out)
    if json_out:
        out.json(res)
    else:
        out.info(f"wrote {res['chunks']} chunks of {name} to {res['path']} ({res['format']})")


@collections_app.command(
    "delete",
    help="Delete a collection, its source records and its lexical index.\n\n"
    "Example: llmops collections delete old-docs --yes",
)
def collections_delete(name: NameArg, yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    s = state().load().settings
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting collection {name!r} needs confirmation", hint="pass --yes")
        typer.confirm(f"Delete collection {name!r}?", abort=True)
    with workspace(s) as ws:
        store_entry.delete_collection(ws, name)
    out = Output(json_out)
    if json_out:
        out.json({"deleted": name})
    else:
        out.info(f"deleted collection {name}")


@chunks_app.command(
    "get",
    help="One chunk by id (or a unique start of it, as llmops query shows it): its text and metadata.\n\n"
    "Example: llmops chunks get 3f2a9c81d0e4",
)
def chunks_get(
    chunk_id: Annotated[str, typer.Argument(help="Chunk id, or its first characters.", metavar="ID")],
    collection: Annotated[
        str | None, typer.Option("--collection", help="Look only in this collection (default: every collection).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        name, hit = store_entry.get_chunk(ws, chunk_id, collection)
    out = Output(json_out)
    if json_out:
        out.json({"collection": name, "id": hit.id, "text": hit.text, "metadata": hit.metadata})
        return
    where = escape(hit.source) + (f" [dim]›[/dim] {escape(hit.heading)}" if hit.heading else "")
    out.print(f"[bold]{escape(hit.id)}[/bold]  {where}  [dim](collection {escape(name)})[/dim]")
    for key, value in sorted(hit.metadata.items()):
        out.print(f"  [dim]{escape(str(key))}:[/dim] {escape(str(value))}")
    out.print()
    out.print(hit.text, markup=False)
