"""`llmops insights questions|sources`: what people ask (grouped, gaps first) and which sources serve them well, from
the answer log (the local one, or the team's shared state database)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli.options import AnswerCollectionOpt, JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.errors import ConflictError

insights_app = typer.Typer(help="What people ask and which sources answer them well (from the answer log).")

SinceOpt = Annotated[
    str | None, typer.Option("--since", metavar="SPAN|DATE", help="Only questions after this: 7d, 12h, 2026-11-01.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(insights_app, name="insights")


@insights_app.command(
    "questions",
    help="Group the logged questions by meaning: each group's typical questions and terms, size, weekly trend, answer "
    "rate, average rating and cache-hit rate; groups the sources do not serve well (gaps) first.\n\n"
    "Examples:\n\n  llmops insights questions --since 7d\n\n"
    "  llmops insights questions --clusters 8 --html insights.html",
)
def questions_cmd(
    since: SinceOpt = None,
    collection: AnswerCollectionOpt = None,
    clusters: Annotated[
        int | None,
        typer.Option("--clusters", metavar="N", help="How many groups (default: chosen by silhouette).", min=1),
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help="Also write an HTML page with charts.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import insights

    if html_out is not None and html_out.exists():
        raise ConflictError(f"--html {html_out} already exists", hint="name another file or remove it")
    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        doc = insights.questions(ws, since=insights.parse_since(since), collection=collection, clusters=clusters)
    if html_out is not None:
        html_out.write_text(insights.render_html(doc), encoding="utf-8")
        doc["html"] = str(html_out)
    if json_out:
        out.json(doc)
        return
    if not doc["questions"]:
        out.info("no questions logged yet" + (" in that span" if since else "") + ": run llmops ask QUESTION")
        return
    out.print(f"[bold]{doc['questions']} questions in {len(doc['clusters'])} groups[/bold], {doc['gaps']} gap(s)")
    out.table(
        ["group", "n", "typical question", "terms", "answered", "rating", "cache", "gap"],
        [
            (
                c["id"],
                c["size"],
                c["typical"][0],
                ", ".join(c["terms"][:3]),
                f"{c['answer_rate']:.0%}",
                "-" if c["avg_rating"] is None else f"{c['avg_rating']:+.2f}",
                f"{c['cache_hit_rate']:.0%}",
                "GAP" if c["gap"] else "",
            )
            for c in doc["clusters"]
        ],
    )
    if html_out is not None:
        out.info(f"charts: {html_out}")


@insights_app.command(
    "sources",
    help="Each cited source's accuracy from the votes and judge reviews of the answers that cited it (Beta(2,2) prior: "
    "one vote is not a verdict), best and worst first.\n\nExample:\n\n  llmops insights sources --limit 5",
)
def sources_cmd(
    since: SinceOpt = None,
    collection: AnswerCollectionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="Best and worst N each.", min=1)] = 10,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry import insights

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        doc = insights.sources(ws, since=insights.parse_since(since), collection=collection)
    if json_out:
        out.json(doc)
        return
    ranked = doc["sources"]
    if not ranked:
        out.info("no rated or reviewed answers cite a source yet: rate answers with llmops feedback rate ID up|down")
        return
    best = ranked[:limit]
    worst = [r for r in reversed(ranked[limit:])][:limit]
    columns = ["source", "accuracy", "good", "bad", "answers"]
    row = lambda r: (r["source"], f"{r['accuracy']:.2f}", r["good"], r["bad"], r["answers"])  # noqa: E731
    out.table(columns, [row(r) for r in best], title="Best sources")
    if worst:
        out.table(columns, [row(r) for r in worst], title="Worst sources")
