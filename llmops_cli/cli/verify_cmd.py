"""`llmops collections verify NAME [PATH...] [--repair]`: is the collection whole (ledger, chunks, vector index,
lexical index agree), and if not, what exactly is wrong. Exit 0 clean, 11 (DAMAGED) when inconsistent.

Lives in the `collections` group defined in collections_cmd.py."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.collections_cmd import collections_app
from llmops_cli.cli.options import GlobOpt, JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.entry.store import store_location
from llmops_cli.entry.verify import verify_collection


def register(app: typer.Typer) -> None:
    collections_app.command(
        "verify",
        help="Check that a collection's ledger, chunks, vector index and lexical index agree (exit 0 clean, "
        "11 damaged); --repair re-embeds or rebuilds exactly what is missing or inconsistent.",
    )(collections_verify)


def collections_verify(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="The files/folders the collection is ingested from (optional): each file is compared with its record, "
            "and --repair re-ingests the sources whose chunks only their files can restore."
        ),
    ] = None,
    glob: GlobOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what is inconsistent (and nothing else), then verify again.")
    ] = False,
    text_column: Annotated[
        str | None, typer.Option("--text-column", help="Tables: the --text-column the collection was ingested with.")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Tables: the --id-column the collection was ingested with.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    out = Output(json_out)
    table = None
    if text_column or id_column:  # part of every source's signature: without them a table ingested so "differs"
        from llmops_cli.core.loaders import TableOptions

        table = TableOptions(text_column=text_column, id_column=id_column)
    with workspace(s) as ws:
        res = verify_collection(ws, name, paths=paths or None, globs=glob, repair=repair, table=table)
    report, before, fixed = res["report"], res["before"], res["repair"]
    if json_out:
        data = report.to_dict()
        data["store"] = store_location(s)
        if fixed is not None:
            data["repair"] = fixed.to_dict()
            data["before"] = before.to_dict()
        out.json(data)
    else:
        _render(out, report, before, fixed, store_location(s))
    out.finish(report)


def _render(out, report, before, fixed, where: str) -> None:
    if fixed is not None:
        out.print(f"[bold]Repaired collection {escape(report.collection)}[/bold] ({escape(where)})")
        for line in before.problems():
            out.print(f"  was: {escape(line)}")
        done = []
        if fixed.vector_index_rebuilt:
            done.append("damaged vector index dropped")
        if fixed.orphans_deleted:
            done.append(f"{fixed.orphans_deleted} orphan chunk(s) deleted")
        if fixed.vectors_reembedded:
            done.append(f"{fixed.vectors_reembedded} chunk(s) re-embedded from their stored text")
        if fixed.vectors_readded:
            done.append(f"{fixed.vectors_readded} chunk(s) re-added to the vector index")
        if fixed.sources_reingested:
            done.append(f"{len(fixed.sources_reingested)} source(s) re-ingested")
        if fixed.lexical_rebuilt:
            done.append("lexical index rebuilt")
        out.print(f"  did: {', '.join(done) or 'nothing'} ({fixed.embedded_texts} text(s) embedded)")
    state = "clean" if report.clean else "DAMAGED"
    out.print(
        f"[bold]collection {escape(report.collection)}: {state}[/bold] ({escape(where)}): {report.sources} sources, "
        f"{report.chunks} chunks, ledger {report.ledger_chunks} chunks, lexical index {report.lexical.state}"
        + ("" if report.vector_checked else ", vector index not checked by this store")
        + (f", {len(report.new_files)} file(s) not ingested yet" if report.new_files else "")
    )
    for line in report.problems():
        out.print(f"  - {escape(line)}")
    if report.storage or (report.errors and not report.chunks):
        out.info(
            "the store's own files are damaged: --repair cannot restore what they lost; ingest the sources "
            "again into a fresh store (store.path / LLMOPS_STORE_PATH) or collection"
        )
    elif not report.clean:
        need = (
            fixed.sources_need_files
            if fixed is not None
            else [s for s in report.sources_to_reingest() if not report.files_checked]
        )
        if fixed is None:
            out.info("run llmops collections verify NAME [PATH...] --repair to fix it (--json lists the ids)")
        elif need:
            out.info(
                f"{len(need)} source(s) can only be restored from their files: pass the paths they were ingested "
                f"from, e.g. llmops collections verify {report.collection} PATH... --repair"
            )
