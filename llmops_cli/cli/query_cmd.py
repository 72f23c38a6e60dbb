"""`llmops query` and `llmops ask`: retrieval and answers (the `collections` group is in collections_cmd.py)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.options import CollectionOpt, JsonOpt, ModelOpt, ModeOpt, TopKOpt, WhereOpt
from llmops_cli.cli.output import Output, safe_text
from llmops_cli.cli.state import parse_key_values, state, workspace
from llmops_cli.wiring import Workspace

PromptOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        help="Answer prompt: a file, or the name of one in configs/prompts (e.g. answer-detailed); default: the "
        "built-in prompt. Its name and hash are recorded with the answer.",
    ),
]


def load_answer_prompt(ref: str | None):
    """The answer prompt ``--prompt`` names (a bad path or name: a one-line input error, before any work)."""
    from llmops_cli.core.prompts import ANSWER, load_prompt

    return load_prompt(ref, ANSWER)


def register(app: typer.Typer) -> None:
    app.command(
        "query",
        help="Search a collection: ranked chunks with score, source, heading and chunk id (no LLM).\n\n"
        'Examples: llmops query "retry policy" -k 3; echo "retry policy" | llmops query - --json',
    )(query)
    app.command(
        "ask",
        help="Answer a question from a collection with the LLM, citing sources. On a terminal the answer streams; "
        "piped, stdout holds only the answer (sources on stderr, or all of it with --json).\n\n"
        'Examples: llmops ask "How do I retry a failed task?"; llmops ask - < question.txt > answer.txt',
    )(ask)


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
    text: Annotated[str, typer.Argument(help="What to search for; - reads it from stdin.", metavar="TEXT")],
    top_k: TopKOpt = None,
    where: WhereOpt = None,
    mode: ModeOpt = None,
    collection: CollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import ask as ask_entry  # retrieval and the answer log: loaded by the command, not --help

    text = read_question(text)
    s = state().load(flags={"store.collection": collection, "retrieval.mode": mode, "retrieval.k": top_k}).settings
    out = Output(json_out)
    with workspace(s) as ws, StatusLine(out) as status:
        status.phase("searching")  # the first search of a process loads the embedding model: seconds, not silence
        hits = ask_entry.query(
            ws,
            text,
            collection=s.store.collection,
            k=s.retrieval.k,
            mode=s.retrieval.mode,
            where=parse_key_values(where) or None,
        )
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


QuestionArg = Annotated[str, typer.Argument(help="The question; - reads it from stdin.", metavar="QUESTION")]


def read_question(text: str) -> str:
    """The question as given, or read from stdin when it is ``-`` (``echo "..." | llmops ask -``)."""
    return sys.stdin.read().strip() if text == "-" else text


class StatusLine:
    """A one-line status on stderr (``rewording…``, ``retrieving…``, ``answering…``) while a step runs, on a terminal
    only (never in --json, never in a pipe); cleared before the answer is printed or streamed."""

    def __init__(self, out: Output):
        self._status = None
        self._on = out.interactive
        self._console = out.err

    def phase(self, name: str) -> None:
        if not self._on:
            return
        text = f"[dim]{escape(name)}…[/dim]"
        if self._status is None:
            self._status = self._console.status(text, spinner="dots")
            self._status.start()
        else:
            self._status.update(text)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ask(
    question: QuestionArg,
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
    prompt: PromptOpt = None,
    json_out: JsonOpt = False,
) -> None:
    question = read_question(question)
    answer_prompt = load_answer_prompt(prompt)
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
        res = _ask(ws, out, question, where, retrieval_only, not no_cache, answer_prompt)
    if json_out:
        d = res.to_dict()
        d["answer_id"] = res.answer_id
        d["cache"] = res.cache_hit
        d["prompt"] = res.prompt
        _feedback_notes(out, res, json_out)
        d["collection"] = s.store.collection
        d["retrieval_only"] = retrieval_only
        d["hits"] = [_hit_dict(i, h) for i, h in enumerate(res.hits, 1)]
        out.json(d)
        return
    if retrieval_only:  # the sources are the result: stdout
        _hits_table(out, res.hits, f"Sources for: {question}")
        return
    render_answer(out, res, question)
    _feedback_notes(out, res, json_out)


def render_answer(out: Output, res, question: str) -> None:
    """An answer for people. On a terminal: the streamed answer, then what was searched and the sources. Piped: the
    answer alone on stdout (``llmops ask Q > answer.txt``), everything else on stderr."""
    tty = _stdout_is_terminal(out)
    if tty:
        out.out.print()  # the answer was streamed
    else:
        sys.stdout.write(res.answer.rstrip("\n") + "\n")
        sys.stdout.flush()
    side = out.out if tty else out.err
    if res.rewordings:
        side.print("\n[bold]Searched as[/bold]")
        for w in [res.standalone_question or question, *res.rewordings]:
            side.print(f"  • {safe_text(w)}", markup=False)
    cited = set(res.cited())
    from rich.table import Table

    t = Table(title="Sources", title_justify="left")
    for c in ("#", "cited", "source", "heading"):
        t.add_column(c, overflow="fold")
    for i, h in enumerate(res.hits, 1):
        t.add_row(str(i), "✓" if i in cited else "", escape(safe_text(h.source)), escape(safe_text(h.heading)))
    side.print(t)
    u = res.usage
    cost = f", ${u.cost:.6f}" if u.cost else ""
    out.info(
        f"{res.model}: {u.calls} calls, {u.input_tokens} tokens in, {u.output_tokens} out{cost}, {res.latency_s:.1f} s",
        style="dim",
    )


def _stdout_is_terminal(out: Output) -> bool:
    return out.out.is_terminal and not out.json_mode


def streamer(out: Output, status: StatusLine):
    """The on_token callback that streams an answer to a terminal (None when stdout is not one): the status line is
    cleared at the first piece."""
    if not _stdout_is_terminal(out):
        return None
    started = False

    def on_token(piece: str) -> None:
        nonlocal started
        if not started:
            status.stop()
            out.out.print("[bold]Answer[/bold]")
            started = True
        out.out.file.write(safe_text(piece))  # an answer may quote a document's escape sequences
        out.out.file.flush()

    return on_token


def _ask(
    ws: Workspace,
    out: Output,
    question: str,
    where: list[str] | None,
    retrieval_only: bool,
    use_cache: bool,
    prompt=None,
):
    from llmops_cli.entry import ask as ask_entry  # retrieval and the answer log: loaded by the command, not --help

    s = ws.settings
    if not retrieval_only:
        # fail fast, before retrieval, when no model is configured; the hint names ask's own flags (the answer
        # then uses this same stack)
        ask_entry.answer_llm(ws, also="or pass --model MODEL; --retrieval-only skips the LLM")
    with StatusLine(out) as status:
        return ask_entry.ask(
            ws,
            question,
            collection=s.store.collection,
            k=s.retrieval.k,
            mode=s.retrieval.mode,
            where=parse_key_values(where) or None,
            retrieval_only=retrieval_only,
            on_token=None if retrieval_only else streamer(out, status),
            use_cache=use_cache,
            on_phase=status.phase,
            prompt=prompt,
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
