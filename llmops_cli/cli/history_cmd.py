"""`llmops history`: the answer log (every ask, and the LLM calls of eval and batch), newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from llmops_cli.cli.options import AnswerCollectionOpt, AnswerLimitOpt, JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.errors import UsageError

history_app = typer.Typer(
    help="The answer log: every `llmops ask` (and recorded eval / batch LLM calls), newest first.",
    invoke_without_command=True,
)

KINDS = ("ask", "chat", "eval", "batch")  # what the answer log records (entry.ask, entry.batch, the eval recorder)
KindOpt = Annotated[str | None, typer.Option("--kind", help="Only this kind: ask, chat, eval, batch.")]


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")


def _snippet(text: str, n: int = 70) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


@history_app.callback()
def history(
    ctx: typer.Context,
    limit: AnswerLimitOpt = 20,
    kind: KindOpt = None,
    collection: AnswerCollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if kind is not None and kind not in KINDS:  # it matched nothing, which read as "no answers recorded yet"
        raise UsageError(f"--kind {kind}: the answer log has no such kind", hint=f"one of: {', '.join(KINDS)}")
    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        log = ws.answer_log(read_only=True)
        rows = log.recent(limit=limit, kind=kind, collection=collection)
        flags = log.summary_flags([r.id for r in rows])
    if json_out:
        out.json({"answers": [{**r.to_dict(), **flags[r.id]} for r in rows]})
        return
    if not rows and (kind or collection):  # the log may hold others: "none recorded yet" misled
        where = " ".join([f"of kind {kind}"] * bool(kind) + [f"in collection {collection!r}"] * bool(collection))
        out.info(f"no answers {where}: llmops history without --kind/--collection lists every answer")
        return
    if not rows:
        out.info("no answers recorded yet: run llmops ask QUESTION")
        return
    # ids are what users copy: never folded; the question gives way on narrow terminals (model, cost: history show)
    t = Table(title="Answer log (llmops history show ID for one)", title_justify="left")
    for name in ["id", "time (UTC)", "question", "tokens", "s", "feedback"]:
        flexible = name in ("question", "feedback")
        t.add_column(
            name,
            no_wrap=not flexible,
            overflow="ellipsis" if name == "question" else "fold",
            ratio={"question": 2, "feedback": 1}.get(name),
            min_width=12 if flexible else None,
        )
    for r in rows:
        f = flags[r.id]
        marks = [] if r.kind == "ask" else [r.kind]
        votes = f["votes"]
        marks += [f"{votes['up']} up / {votes['down']} down"] if votes["up"] or votes["down"] else []
        if r.cached_from:
            marks.append("cache")
        if f["review"] == "error":
            marks.append("review error")
        elif f["review"]:
            marks.append("reviewed")
        if f["promoted"]:
            marks.append("promoted")
        t.add_row(
            r.id,
            datetime.fromtimestamp(r.created_at, tz=UTC).strftime("%m-%d %H:%M"),
            escape(_snippet(r.question)),  # a question is text: "[/]" in it was read as markup (MarkupError)
            str(r.input_tokens + r.output_tokens),
            f"{r.latency_s:.1f}",
            " ".join(marks),
        )
    out.print(t)


@history_app.command(
    "show", help="One answer in full: question, rewordings, sources, answer, usage, ratings, review, promotion."
)
def show(
    answer_id: Annotated[str, typer.Argument(help="Answer id (or a unique prefix of 4+ characters).")],
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.core.feedback.log import latest_votes, vote_counts  # the log's package: not loaded by --help

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        log = ws.answer_log(read_only=True)
        a = log.get(answer_id)
        ratings = log.ratings(a.id)
        review = log.review_of(a.id)
        promo = log.promotion_of(a.id)
    data = {
        **a.to_dict(),
        "ratings": [r.to_dict() for r in ratings],
        "votes": vote_counts(ratings),
        "review": review.to_dict() if review else None,
        "promotion": promo.to_dict() if promo else None,
    }
    if json_out:
        out.json(data)
        return
    out.print(
        f"[bold]{a.id}[/bold]  {data['created_at']}  {a.kind}  collection={a.collection or '-'}  model={a.model or '-'}"
    )
    if a.cached_from:
        out.print(f"served from the semantic cache: promoted answer {a.cached_from}")
    out.print("\n[bold]Question[/bold]")
    out.print(a.question, markup=False)
    if a.rewordings:
        out.print("\n[bold]Searched as[/bold]")
        for w in a.rewordings:
            out.print(f"  • {w}", markup=False)
    out.print("\n[bold]Answer[/bold]")
    out.print(a.answer, markup=False)
    if a.chunks:
        out.table(
            ["#", "chunk id", "source", "heading"],
            [(i, c.get("id"), c.get("source"), c.get("heading")) for i, c in enumerate(a.chunks, 1)],
            title="Retrieved",
        )
    cost = f", ${a.cost:.6f}" if a.cost else ""
    out.print(
        f"\n{a.input_tokens} tokens in, {a.output_tokens} out{cost}, {a.latency_s:.2f} s, config {a.config_hash or '-'}"
    )
    current = {id(r) for r in latest_votes(ratings)}
    for r in ratings:
        out.print(
            f"rated {'up' if r.rating > 0 else 'down'}"
            + (f" by {r.rater}" if r.rater else "")
            + (f": {r.comment}" if r.comment else "")
            + ("" if id(r) in current else " (replaced by a later vote)"),
            markup=False,
        )
    if review:
        if review.status == "ok":
            out.print(
                f"review: helpfulness {review.helpfulness:.2f}, relevance {review.relevance:.2f}, "
                f"public {'yes' if review.public else 'no'} ({review.judge_model})"
            )
            for k, v in review.reasons.items():
                if v:
                    out.print(f"  {k}: {v}", markup=False)
        else:
            out.print(f"review error: {review.error}", markup=False)
    if promo:
        state_txt = (
            f"in collection {promo.collection} as {promo.chunk_id}"
            if promo.active
            else f"removed ({promo.removed_reason})"
        )
        out.print(f"promoted: {state_txt}", markup=False)
