"""`llmops ingest`: load, split, embed and store documents (incremental and idempotent)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.options import CollectionOpt, DryRunOpt, GlobOpt, JsonOpt, QuietOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.entry import ingest as ingest_entry
from llmops_cli.entry.store import store_location
from llmops_cli.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command(
        "ingest", help="Load documents, split them, embed them and store them in Chroma (re-runs only do what changed)."
    )(ingest)


def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files or folders to ingest.")],
    collection: CollectionOpt = None,
    glob: GlobOpt = None,
    chunker: Annotated[str | None, typer.Option("--chunker", help="auto | recursive | headings | tokens.")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", help="Chunk size in the embedder's tokens.")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option("--chunk-overlap", help="Overlap in the embedder's tokens.")
    ] = None,
    cleanup: Annotated[
        str,
        typer.Option(
            "--cleanup", help="incremental: keep sources not seen; full: remove the chunks of sources that are gone."
        ),
    ] = "incremental",
    text_column: Annotated[
        str | None, typer.Option("--text-column", help="Tables: the column holding the text.")
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id-column", help="Tables: the column holding a row id.")] = None,
    embed_backend: Annotated[
        str | None, typer.Option("--embed-backend", help="auto | onnx | sentence-transformers | litellm.")
    ] = None,
    embed_precision: Annotated[
        str | None, typer.Option("--embed-precision", help="fp32 | int8 (onnx backend).")
    ] = None,
    embed_model: Annotated[
        str | None, typer.Option("--embed-model", help="Embedding model: path, bundled name, or litellm model.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad input instead of skipping it.")
    ] = False,
    privacy: Annotated[
        str | None,
        typer.Option(
            "--privacy",
            help="Secrets and personal data in sources: off | redact (replace them before embedding) | skip (leave "
            "the source out). Default: ingest.privacy (off).",
        ),
    ] = None,
    wait_lock: Annotated[
        float | None,
        typer.Option(
            "--wait-lock",
            metavar="SECONDS",
            min=0,
            help="Wait up to SECONDS for another command writing the same store (default 10, or LLMOPS_WAIT_LOCK); "
            "then exit 10.",
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.core.loaders import TableOptions  # every loader: loaded by the command, not by --help

    if cleanup not in ("incremental", "full"):
        raise UsageError(f"--cleanup {cleanup!r} is not allowed", hint="use --cleanup incremental or --cleanup full")
    loaded = state().load(
        flags={
            "store.collection": collection,
            "chunking.strategy": chunker,
            "chunking.size": chunk_size,
            "chunking.overlap": chunk_overlap,
            "embedder.backend": embed_backend,
            "embedder.precision": embed_precision,
            "embedder.model": embed_model,
            "ingest.privacy": privacy,
        },
        flag_names={"ingest.privacy": "--privacy"},
    )
    s = loaded.settings
    out = Output(json_out, quiet=quiet)
    table = TableOptions(text_column=text_column, id_column=id_column) if (text_column or id_column) else None
    with out.phases("chunks") as bar, workspace(s) as ws:
        # no progress line (off a terminal, --json, -q): no callback, so the embedder gets its largest batches
        progress = _ingest_progress(bar) if out.interactive else None
        report = ingest_entry.ingest(
            ws,
            paths,
            collection=s.store.collection,
            globs=glob,
            cleanup=cleanup,
            dry_run=dry_run,
            strict=strict,
            table=table,
            progress=progress,
            wait_lock=wait_lock,
            explicit_embedder=any(v is not None for v in (embed_backend, embed_precision, embed_model)),
        )
    data = report.to_dict()
    data["store"] = store_location(s)
    if json_out:
        out.json(data)
    else:
        _render(out, report, data)
    out.finish(report)


def _ingest_progress(bar):
    """entry.ingest's progress events (core/ingest.py:ProgressFn) as one line: the phase, chunks done of the new
    chunks found (the total is final, and an ETA shown, once the last source is parsed), and the sources parsed."""
    seen = {"parsed": 0, "sources": 0, "parse_done": False, "embedded": 0, "written": 0, "found": 0}

    def detail() -> str:
        return f"{seen['parsed']}/{seen['sources']} sources parsed" if seen["sources"] else ""

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "parse":
            seen["parsed"], seen["sources"] = done, total
            seen["parse_done"] = done >= total
            # between embeddings the line shows the chunks found so far, growing with each source parsed
            bar.show(
                "embed" if seen["parse_done"] and seen["found"] else "parse",
                seen["embedded"],
                seen["found"],
                final=seen["parse_done"],
                detail=detail(),
            )
        elif phase in ("embed", "write"):
            seen["found"] = total
            seen["embedded" if phase == "embed" else "written"] = done
            if phase == "embed" and seen["parse_done"] and done >= total:
                # everything is embedded: what is left is the writer's (it writes while the next batch embeds)
                phase, done = "write", seen["written"]
            bar.show(phase, done, total, final=seen["parse_done"], detail=detail())
        else:  # plan, load model, index: no count of their own
            bar.show(phase, detail=detail())

    return progress


def _render(out, report, data) -> None:
    src = data["sources"]
    verb = "would add" if report.dry_run else "added"
    out.print(
        f"[bold]{'Dry run: ' if report.dry_run else ''}collection {report.collection}[/bold] ({data['store']})\n"
        f"sources: {src['new']} new, {src['changed']} changed, {src['unchanged']} unchanged, {src['removed']} removed, "
        f"{src['skipped']} skipped"
        + (f", {src['renamed']} renamed to the current source-id rule (docs/ingest.md)" if src.get("renamed") else "")
        + "\n"
        f"chunks: {report.chunks_added} {verb}, {report.chunks_reused} kept, {report.chunks_removed} removed, "
        f"{report.chunks_total} in the collection\n"
        + (
            f"time: {report.seconds:.1f} s ({report.chunks_per_second:.1f} chunks/s)"
            if report.chunks_added
            # a run that embedded nothing has no rate to report (0.0 chunks/s reads like a fault)
            else f"time: {report.seconds:.1f} s, "
            + ("nothing changed" if not report.changed_anything else "no new chunks")
        )
    )
    found = data["privacy"]["found"]
    if found:
        verb = "sources left out" if data["privacy"]["policy"] == "skip" else "redacted"
        kinds = ", ".join(f"{n} {kind}" for kind, n in found.items())
        out.print(f"private data: {kinds} in {data['privacy']['sources']} source(s), {verb} (values not shown)")
    if data["privacy"]["prompt_injection"]:
        out.print(
            f"prompt injection: {data['privacy']['prompt_injection']} chunk(s) read like instructions to the model; "
            "flagged in their metadata (prompt_injection: true) and quoted as untrusted data in answer prompts"
        )
    if data.get("stale_answers"):
        out.print(
            f"promoted answers taken out: {len(data['stale_answers'])} (built on sources that changed; "
            "`llmops lineage answer ID` shows which)"
        )
    if report.skipped:
        out.table(["skipped source", "reason"], [(s["source"], s["reason"]) for s in report.skipped], title="Skipped")
