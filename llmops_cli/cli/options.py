"""Shared options and arguments as Annotated aliases, so a flag (or an argument's help) is spelled the same in every
command group."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli.completion import collection_names, dag_ids

QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress and no info lines on stderr (warnings and errors still print)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", help="Collection name (default: store.collection).", autocompletion=collection_names),
]
TopKOpt = Annotated[
    int | None, typer.Option("-k", "--top-k", help="How many chunks to return (default: retrieval.k).", min=1)
]
WhereOpt = Annotated[list[str] | None, typer.Option("--where", help="Metadata filter key=value (repeatable).")]


def _model_given(value: str | None) -> str | None:
    # --model "" (an unset shell variable) read as no model at all: "no LLM is configured" with llm.model set
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty: pass a litellm model string, or leave --model out to use llm.model")
    return value


ModelOpt = Annotated[
    str | None, typer.Option("--model", help="litellm model string (default: llm.model).", callback=_model_given)
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", help="Concurrent LLM calls.", min=1, max=512)]
OutputFileOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Write results to this file (.jsonl, .csv or .parquet).")
]
LimitOpt = Annotated[int, typer.Option("--limit", help="At most this many rows.", min=1)]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Give up after this many seconds.", min=0)]
StateOpt = Annotated[
    str | None, typer.Option("--state", help="Only runs in this state (queued, running, success, failed).")
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Airflow connection profile from the config file.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Airflow API server URL (default: airflow.url).")]
DagArg = Annotated[str, typer.Argument(help="DAG id (see `llmops dags list`).", autocompletion=dag_ids)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
GlobOpt = Annotated[
    list[str] | None, typer.Option("--glob", help="Only files matching this glob, e.g. '**/*.md' (repeatable).")
]
# the answer log is filtered by collection: no store.collection default there
AnswerCollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection", help="Only answers from this collection (default: all).", autocompletion=collection_names
    ),
]
AnswerLimitOpt = Annotated[int, typer.Option("--limit", "-n", help="At most this many answers.", min=1)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="hybrid (vector + BM25, fused) | vector | lexical.")]
