"""`llmops query` and `llmops ask`: retrieval and answers (the `collections` group is in collections_cmd.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.options import CollectionOpt, JsonOpt, ModelOpt, ModeOpt, TopKOpt, WhereOpt
from llmops_cli.cli.output import Output, safe_text
from llmops_cli.cli.state import parse_key_values, state, workspace
from llmops_cli.wiring import Workspace


def register(app: typer.Typer) -> None:
    app.command("query", help="Search a collection: ranked chunks with score, source and heading (no LLM).")(query)
    app.command("ask", help="Answer a question from a collection with the LLM, citing sources.")(ask)


def _snippet(text: str, n: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _hits_table(out, hits, title: str) -> None:
    """A ranked list (reads better than a table in a narrow terminal): rank, score, source > heading, snippet."""
    out.print(f"[bold]{escape(title)}[/bold]")
    for i, h in enumerate(hits, 1):
        where = escape(h.source) + (f" [dim]›[/dim] {escape(h.heading)}" if h.heading else "")
        cid = getattr(h, "id", "")  # its start is enough for `llmops chunks get`
        out.print(
            f"[bold]{i:>2}.[/bold] [cyan]{h.score:.4f}[/cyan]  {where}"
            + (f"  [dim]{escape(cid[:12])}[/dim]" if cid else "")
        )
        out.print(f"    [dim]{escape(_snippet(h.text, 220))}[/dim]")


def _hit_dict(i: int, h) -> dict:
    return {
        "rank": i,
        "id": h.id,
        "score": h.score,
        "source": h.source,
        "heading": h.heading,
        "text": h.text,
        "metadata": h.metadata,
        "ranks": h.ranks,
    }


def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    top_k: TopKOpt = None,
    where: WhereOpt = None,
    mode: ModeOpt = None,
    collection: CollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import ask as ask_entry  # retrieval and the answer log: loaded by the command, not --help

    s = state().load(flags={"store.collection": collection, "retrieval.mode": mode, "retrieval.k": top_k}).settings
    with workspace(s) as ws:
        hits = ask_entry.query(
            ws,
            text,
            collection=s.store.collection,
            k=s.retrieval.k,
            mode=s.retrieval.mode,
            where=parse_key_values(where) or None,
        )
    out = Output(json_out)
    if json_out:
        out.json(
            {
                "query": text,
                "collection": s.store.collection,
                "mode": s.retrieval.mode,
                "hits": [_hit_dict(i, h) for i, h in enumerate(hits, 1)],
            }
        )
        return
    if not hits:
        out.info("no matching chunks")
        return
    _hits_table(out, hits, f"{s.retrieval.mode} search in {s.store.collection}")


def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    top_k: TopKOpt = None,
    where: WhereOpt = None,
    mode: ModeOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    rewordings: Annotated[
        int | None,
        typer.Option(
            "--rewordings", help="How many LLM rewordings retrieve too (default: llm.rewordings).", min=0, max=10
        ),
    ] = None,
    retrieval_only: Annotated[
        bool, typer.Option("--retrieval-only", help="Show the fused sources without calling an LLM.")
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Always ask the LLM, even when a promoted answer to a near-identical question exists."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    s = (
        state()
        .load(
            flags={
                "store.collection": collection,
                "retrieval.mode": mode,
                "retrieval.k": top_k,
                "llm.model": model,
                "llm.rewordings": rewordings,
            }
        )
        .settings
    )
    out = Output(json_out)
    with workspace(s) as ws:
        res = _ask(ws, out, question, where, retrieval_only, not no_cache)
    if json_out:
        d = res.to_dict()
        d["answer_id"] = res.answer_id
        d["cache"] = res.cache_hit
        _feedback_notes(out, res, json_out)
        d["collection"] = s.store.collection
        d["retrieval_only"] = retrieval_only
        d["hits"] = [_hit_dict(i, h) for i, h in enumerate(res.hits, 1)]
        out.json(d)
        return
    if retrieval_only:
        _hits_table(out, res.hits, f"Sources for: {question}")
        if not s.llm.model:
            out.info(
                "No LLM is configured, so no answer was written. To get answers, set llm.model in llmops.yaml or "
                "LLMOPS_LLM_MODEL (e.g. openai/gpt-4o-mini with OPENAI_API_KEY; or openai/<name> with "
                "LLMOPS_LLM_API_BASE for a local OpenAI-compatible server), then run llmops ask again.",
                style="dim",
            )
        return
    if out.interactive:  # the answer was streamed
        out.out.print()
    else:
        out.print("[bold]Answer[/bold]")
        out.print(res.answer, markup=False)
    if res.rewordings:
        out.print("\n[bold]Searched as[/bold]")
        for w in [question, *res.rewordings]:
            out.print(f"  • {w}", markup=False)
    cited = set(res.cited())
    out.table(
        ["#", "cited", "source", "heading"],
        [(i, "✓" if i in cited else "", h.source, h.heading) for i, h in enumerate(res.hits, 1)],
        title="Sources",
    )
    u = res.usage
    cost = f", ${u.cost:.6f}" if u.cost else ""
    out.info(
        f"{res.model}: {u.calls} calls, {u.input_tokens} tokens in, {u.output_tokens} out{cost}, {res.latency_s:.1f} s",
        style="dim",
    )
    _feedback_notes(out, res, json_out)


def _ask(ws: Workspace, out: Output, question: str, where: list[str] | None, retrieval_only: bool, use_cache: bool):
    from llmops_cli.entry import ask as ask_entry  # retrieval and the answer log: loaded by the command, not --help

    s = ws.settings
    if not retrieval_only:
        # fail fast, before retrieval, when no model is configured; the hint names ask's own flags (the answer
        # then uses this same stack)
        ask_entry.answer_llm(ws, also="or pass --model MODEL; --retrieval-only skips the LLM")
    streaming = out.interactive and not retrieval_only
    started = False

    def on_token(piece: str) -> None:
        nonlocal started
        if not started:
            out.out.print("[bold]Answer[/bold]")
            started = True
        out.out.file.write(safe_text(piece))  # an answer may quote a document's escape sequences
        out.out.file.flush()

    return ask_entry.ask(
        ws,
        question,
        collection=s.store.collection,
        k=s.retrieval.k,
        mode=s.retrieval.mode,
        where=parse_key_values(where) or None,
        retrieval_only=retrieval_only,
        on_token=on_token if streaming else None,
        use_cache=use_cache,
    )


def _feedback_notes(out, res, json_out: bool) -> None:
    """The answer's id in the answer log (stderr), and where a cached answer came from."""
    hit = res.cache_hit
    if hit and not json_out:
        out.info(
            f"served from the semantic cache: promoted answer {hit['answer_id']} (question similarity "
            f"{hit['similarity']:.3f}); --no-cache asks the LLM",
            style="dim",
        )
    if res.answer_id:
        if not json_out:
            out.info(f"answer id: {res.answer_id}  (rate it: llmops feedback {res.answer_id} up|down)")
    elif res.record_error:
        out.warn(f"the answer was not recorded in the answer log: {res.record_error}")
