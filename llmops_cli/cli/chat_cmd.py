"""`llmops chat`: a conversation over a collection. Each line is a question; a follow-up ("and how do I undo it?") is
read with the turns before it (rewritten into a question that stands alone, which is what is searched), and every
turn is recorded in the answer log as kind "chat" with its conversation id.

On a terminal: a prompt, a status line, the streamed answer and its sources. Piped (``printf 'q1\\nq2\\n' | llmops
chat``): one answer per question on stdout, the rest on stderr; with --json one document at the end, every turn in it
(each as ``ask --json`` prints it, with its turn number).
"""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
from rich.markup import escape

from llmops_cli.cli.options import CollectionOpt, ModelOpt, ModeOpt, TopKOpt
from llmops_cli.cli.output import Output, safe_text
from llmops_cli.cli.query_cmd import PromptOpt, StatusLine, _hit_dict, load_answer_prompt, render_answer, streamer
from llmops_cli.cli.state import state, workspace
from llmops_cli.errors import LlmopsError

EXIT_WORDS = {"exit", "quit", ":q", "/exit", "/quit"}
RESET_WORDS = {"/new", "/reset"}


def register(app: typer.Typer) -> None:
    app.command(
        "chat",
        help="A conversation with follow-up questions over a collection (one question per line; exit, quit or Ctrl-D "
        "ends it, /new starts over). Every turn is logged (llmops history --kind chat).\n\n"
        "Examples: llmops chat --collection docs; printf 'What is a DAG?\\nHow do I pause one?\\n' | llmops chat",
    )(chat)


def _questions(out: Output):
    """Questions, one per line: prompted for on a terminal, read from stdin otherwise; blank lines skipped."""
    tty = sys.stdin.isatty()
    while True:
        if tty:
            try:
                line = out.err.input("[bold cyan]>[/bold cyan] ")
            except EOFError:
                out.err.print()
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
        line = line.strip()
        if line:
            yield line


def chat(
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    top_k: TopKOpt = None,
    mode: ModeOpt = None,
    rewordings: Annotated[
        int | None,
        typer.Option(
            "--rewordings", help="How many LLM rewordings retrieve too (default: llm.rewordings).", min=0, max=10
        ),
    ] = None,
    prompt: PromptOpt = None,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="At the end, one JSON document: the conversation id and every turn as ask's."),
    ] = False,
) -> None:
    from llmops_cli.core.ask import Turn
    from llmops_cli.entry import ask as ask_entry  # numpy via retrieval: loaded by the command, not --help

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
    conversation = secrets.token_hex(6)
    history: list[Turn] = []
    turns: list[dict] = []  # --json: every turn's document, printed as one document at the end
    with workspace(s) as ws:
        ask_entry.answer_llm(ws, also="or pass --model MODEL")  # before the first question: no LLM, no chat
        ask_entry.retriever(ws, s.store.collection)  # a missing collection is said before the first question too
        interactive = sys.stdin.isatty() and not json_out
        if interactive:
            out.info(
                f"chat with {s.store.collection} (answers logged as conversation {conversation}); "
                "exit or Ctrl-D ends it, /new starts over",
                style="dim",
            )
        for question in _questions(out):
            if question.lower() in EXIT_WORDS:
                break
            if question.lower() in RESET_WORDS:
                history, conversation = [], secrets.token_hex(6)
                out.info(f"new conversation {conversation}: earlier turns are forgotten", style="dim")
                continue
            try:
                with StatusLine(out) as status:
                    res = ask_entry.ask(
                        ws,
                        question,
                        collection=s.store.collection,
                        k=s.retrieval.k,
                        mode=s.retrieval.mode,
                        on_token=None if json_out else streamer(out, status),
                        on_phase=status.phase,
                        history=history,
                        conversation={"conversation": conversation, "turn": len(history) + 1},
                        prompt=answer_prompt,
                    )
            except LlmopsError as e:
                if not interactive:  # a script gets the error and its exit code
                    raise
                # a person keeps the conversation: the error line and its hint, then the next question
                out.err.print(f"[red]error:[/red] {escape(safe_text(e.message))}")
                if e.hint:
                    out.err.print(f"hint: {escape(safe_text(e.hint))}", style="dim")
                continue
            history.append(Turn(res.question, res.answer))
            if json_out:
                d = res.to_dict()
                d.update(
                    answer_id=res.answer_id,
                    prompt=res.prompt,
                    turn=len(history),
                    hits=[_hit_dict(i, h) for i, h in enumerate(res.hits, 1)],
                )
                turns.append(d)
                continue
            render_answer(out, res, question)
            if res.answer_id:
                out.info(f"answer id: {res.answer_id}", style="dim")
            elif res.record_error:
                out.warn(f"the answer was not recorded in the answer log: {res.record_error}")
    if json_out:
        out.json({"conversation": conversation, "collection": s.store.collection, "turns": turns})
