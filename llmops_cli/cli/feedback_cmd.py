"""`llmops feedback`: rate answers, review them with an LLM judge, promote good ones, export a dataset.

``llmops feedback ID up|down`` rates (the ``rate`` subcommand, without typing it); ``review``, ``promote`` and
``export`` are subcommands. Answer ids never collide with their names (ids are hexadecimal).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from llmops_cli.cli.options import AnswerCollectionOpt, AnswerLimitOpt, DryRunOpt, JsonOpt, QuietOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.errors import ExitCode, UsageError


class _RateByDefault(TyperGroup):
    """``feedback ID up`` runs ``feedback rate ID up``: an unknown first word is an answer id."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "rate", self.get_command(ctx, "rate"), args
        return super().resolve_command(ctx, args)


feedback_app = typer.Typer(
    cls=_RateByDefault,
    no_args_is_help=True,
    help="Rate answers (llmops feedback ID up|down), review them with an LLM judge, promote good ones "
    "into the collection, export them as a dataset.",
)


class Vote(StrEnum):
    up = "up"
    down = "down"


class ExportFormat(StrEnum):
    openai_chat = "openai-chat"


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")


def _promotion_lines(out, promo: dict) -> None:
    for i in promo.get("promoted", []):
        out.info(f"promoted {i} into the collection")
    for r in promo.get("removed", []):
        out.info(f"removed promoted answer {r['id']} from the collection ({r['reason']})")


def _os_user() -> str | None:
    import getpass  # loads termios: only when a rating needs the user name, not for --help

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container with an unnamed uid): one unknown rater
        return None


@feedback_app.command("rate", help="Rate an answer up or down (also: llmops feedback ID up|down).")
def rate(
    answer_id: Annotated[
        str, typer.Argument(help="Answer id (or a unique prefix), as printed by llmops ask / llmops history.")
    ],
    vote: Annotated[Vote, typer.Argument(help="up or down.", case_sensitive=False)],
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="Why (stored with the rating).")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Who rates (default: your OS user name). One vote per rater: rating again replaces your earlier vote.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        res = feedback_entry.rate(ws, answer_id, vote.value, comment, rater=by or _os_user())
    out = Output(json_out)
    if json_out:
        out.json(res)
        return
    out.info(
        f"rated {res['id']} {vote.value}"
        + (f" as {res['rater']}" if res["rater"] else "")
        + (f" (served from promoted answer {res['promoted_answer']})" if res["promoted_answer"] != res["id"] else "")
    )
    _promotion_lines(out, res["promotion"])


@feedback_app.command(
    "review",
    help="Review unreviewed answers with the LLM judge (helpfulness, relevance, publicness), then promote "
    "those over feedback.min_* and remove those that no longer qualify.",
)
def review(
    limit: AnswerLimitOpt = 50,
    collection: AnswerCollectionOpt = None,
    judge_model: Annotated[
        str | None,
        typer.Option("--judge-model", help="Judge model (default: feedback.judge_model, else llm.model)."),
    ] = None,
    # --model names the answering LLM everywhere else; kept working here, hidden, for old scripts
    model: Annotated[str | None, typer.Option("--model", hidden=True)] = None,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Also re-review answers whose last review could not be parsed.")
    ] = False,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Only store the reviews; change nothing in the store.")
    ] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    s = (
        state()
        .load(
            flags={"feedback.judge_model": judge_model or model}, flag_names={"feedback.judge_model": "--judge-model"}
        )
        .settings
    )
    out = Output(json_out, quiet=quiet)
    with out.phases("answers") as bar, workspace(s) as ws:
        bar.show(f"reviewing up to {limit} answers")
        res = feedback_entry.review(
            ws,
            limit=limit,
            collection=collection,
            retry_errors=retry_errors,
            promote=not no_promote,
            progress=lambda phase, done, total: bar.show(phase, done, total, final=True),
        )
    if json_out:
        out.json(res)
    else:
        rows = res["answers"]
        if not rows and not res["failed"]:
            out.info("nothing to review")
        else:

            def score(v):
                return "" if v is None else f"{v:.2f}"

            out.table(
                ["id", "status", "helpful", "relevant", "public", "question"],
                [
                    (
                        r["id"],
                        r["status"],
                        score(r["helpfulness"]),
                        score(r["relevance"]),
                        "" if r["public"] is None else ("yes" if r["public"] else "no"),
                        r["question"][:60],  # as written: Output.table does not read cells as markup
                    )
                    for r in rows
                ],
                title=f"Reviewed by {res['judge_model']}",
            )
        for e in res["errors"]:
            out.warn(f"{e['id']}: review error: {e['error']}")
        for f in res["failed"]:
            out.warn(f"{f['id']}: judge call failed, left unreviewed: {f['error']}")
        _promotion_lines(out, res.get("promotion") or {})
    out.finish(ExitCode.PARTIAL if res["errors"] or res["failed"] else ExitCode.OK)


@feedback_app.command(
    "promote", help="Bring the store in line with the promotion rule for every reviewed answer (or the given ones)."
)
def promote(
    answer_ids: Annotated[
        list[str] | None, typer.Argument(help="Answer ids (default: every reviewed or promoted answer).")
    ] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        res = feedback_entry.promote(ws, answer_ids=answer_ids or None, dry_run=dry_run)
    out = Output(json_out)
    if json_out:
        out.json(res)
        return
    verb = "would be " if dry_run else ""
    out.info(
        f"{res['checked']} answers checked: {len(res['promoted'])} {verb}promoted, "
        f"{len(res['removed'])} {verb}removed, "
        f"{len(res['kept'])} already in the store"
    )
    if not dry_run:
        _promotion_lines(out, res)


@feedback_app.command("export", help="Good answers (the promotion rule; redacted) as a fine-tuning JSONL dataset.")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Dataset format.")] = ExportFormat.openai_chat,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="System message of each example ('' for none).")
    ] = None,
    collection: AnswerCollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    s = state().load().settings
    with workspace(s) as ws:
        rows = feedback_entry.export(ws, fmt=fmt.value, system=system, collection=collection)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = Output(json_out)
    if not rows:  # a valid, empty dataset; say why, or a typo'd --collection looks like a quiet success
        where = f" in collection {collection!r}" if collection else ""
        out.warn(
            f"no answer{where} meets the promotion rule yet: rate answers (llmops feedback ID up) or run "
            "llmops feedback review; llmops history lists them"
        )
    if output is None:
        if json_out:
            raise UsageError(
                "--json needs --output: without it the dataset itself (JSONL) is written to stdout",
                hint="add --output FILE",
            )
        sys.stdout.write(text)
        out.info(f"{len(rows)} example{'' if len(rows) == 1 else 's'}")
        return
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}", hint="pick a writable --output path") from None
    if json_out:
        out.json({"format": fmt.value, "output": str(path), "examples": len(rows)})
    else:
        out.info(f"wrote {len(rows)} example{'' if len(rows) == 1 else 's'} to {path}")
