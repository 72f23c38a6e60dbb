"""`llmops eval`: evaluate retrieval and answers on a question set, with CI gates, run history, comparisons,
question generation and chunking sweeps.

`llmops eval DATASET ...` is `llmops eval run DATASET ...`: the group routes a first argument that is not one
of its commands to `run` (see ``DatasetOrCommandGroup``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from llmops_cli.cli.options import CollectionOpt, JsonOpt, QuietOpt, TopKOpt, WhereOpt
from llmops_cli.cli.output import Output, styled
from llmops_cli.cli.state import parse_key_values, state, workspace
from llmops_cli.errors import ExitCode, UsageError, closest

# the entry points (llmops_cli.entry.eval) and core.eval load pydantic models and the wiring: imported inside the
# commands, so that `llmops --help` stays cheap

EvalConcurrencyOpt = Annotated[
    int | None,
    typer.Option("--concurrency", help="Concurrent LLM calls (default: eval.concurrency).", min=1, max=512),
]


class DatasetOrCommandGroup(TyperGroup):
    """A group whose first positional is either a subcommand or a dataset (then routed to ``run``).
    For ``sweep``, ``--sources a b c`` is expanded to ``--sources a --sources b --sources c``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            _not_a_command_typo(args[0], self.list_commands(ctx))
            args = ["run", *args]
        if args and args[0] == "sweep":
            args = _expand_multi(args, "--sources")
        return super().parse_args(ctx, args)

    def list_commands(self, ctx) -> list[str]:
        return ["run", "runs", "compare", "export", "generate", "sweep", "bless", "rate", "agreement"]


def _not_a_command_typo(first: str, commands: list[str]) -> None:
    """`llmops eval comapre 1 2` read 'comapre' as a question set ("unexpected extra arguments (1 2)"): a word with
    no extension that is no file and is close to a subcommand is that subcommand mistyped."""
    from pathlib import Path

    if first.startswith("-") or Path(first).suffix or Path(first).exists():
        return
    close = closest(first, commands, cutoff=0.6)
    if close:
        raise UsageError(
            f"no eval command {first!r}; did you mean {close}?",
            hint="a question set is a .jsonl, .csv or .parquet file: llmops eval QUESTIONS.jsonl",
        )


def _expand_multi(args: list[str], flag: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        out.append(args[i])
        if args[i] == flag:
            i += 1
            first = True
            while i < len(args) and not args[i].startswith("-"):
                if not first:
                    out.append(flag)
                out.append(args[i])
                first = False
                i += 1
            continue
        i += 1
    return out


eval_app = typer.Typer(
    cls=DatasetOrCommandGroup,
    help="Evaluate retrieval and answers on a question set: `llmops eval DATASET` (= `eval run`; several --model/"
    "--prompt: a matrix), plus runs, compare, generate, sweep, bless, rate (human evaluation), agreement.",
    no_args_is_help=True,
)

MetricsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics",
        help="Metrics or groups (repeatable or comma-separated): auto, retrieval, chunk, answer (exact_match, "
        "token_f1, semantic_similarity), judge (faithfulness, answer_relevance, correctness, helpfulness, toxicity), "
        "robustness, all. Default: auto.",
    ),
]
# -m was --metrics before it meant --comment (feedback, like git): kept working, hidden, for old scripts
OldMetricsOpt = Annotated[list[str] | None, typer.Option("-m", hidden=True)]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="Retrieval mode: hybrid, vector or lexical (default: retrieval.mode).")
]
EvalJsonOpt = JsonOpt
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM call cache.")]
ToleranceOpt = Annotated[
    float | None,
    typer.Option(
        "--tolerance",
        help="Absolute change below which a metric counts as unchanged (default: eval.regression_tolerance).",
        min=0,
    ),
]


@eval_app.command("run")
def run_cmd(
    dataset: Annotated[str, typer.Argument(help="Question set: .jsonl, .csv or .parquet with a 'question' column.")],
    collection: CollectionOpt = None,
    metrics: MetricsOpt = None,
    metrics_m: OldMetricsOpt = None,
    k: TopKOpt = None,
    mode: ModeOpt = None,
    where: WhereOpt = None,
    concurrency: EvalConcurrencyOpt = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="litellm model for the LLM judge (default: llm.model).")
    ] = None,
    judge_client: Annotated[
        str,
        typer.Option(
            "--judge-client",
            help="auto (a lean HTTP client for openai/<model> with llm.api_base, else litellm), litellm, or http.",
        ),
    ] = "auto",
    perturb: Annotated[
        list[str] | None,
        typer.Option(
            "--perturb", help="Robustness perturbations: typos, casing, paraphrase (default: eval.perturbations)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N questions.", min=1)] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            "-o",
            help="Write results (repeatable): .json report, .jsonl/.csv/.parquet per question, .html report.",
        ),
    ] = None,
    fail_under: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-under",
            help="CI gate METRIC=VALUE (repeatable); exit 4 when one fails (toxicity: fails when above).",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Compare with a run id, latest, latest~1, or a report .json file."),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 4 when a metric regressed against --baseline.")
    ] = False,
    tolerance: ToleranceOpt = None,
    worst: Annotated[int, typer.Option("--worst", help="How many worst questions to show.", min=0)] = 5,
    no_cache: NoCacheOpt = False,
    no_record: Annotated[bool, typer.Option("--no-record", help="Do not record the run in the history.")] = False,
    label: Annotated[
        str | None, typer.Option("--label", help="A label stored with the run (e.g. a CI job id).")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Answer model (repeatable; default llm.model). Several models or prompts evaluate every "
            "combination side by side (the matrix) and print a leaderboard.",
        ),
    ] = None,
    models_file: Annotated[
        str | None, typer.Option("--models-file", help="A file of answer models, one a line (# comments).")
    ] = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option(
            "--prompt",
            help="Answer prompt file (repeatable; default: the built-in prompt, configs/prompts/answer.md).",
        ),
    ] = None,
    reword_prompt: Annotated[
        str | None,
        typer.Option("--reword-prompt", help="Rewording prompt file (default: built in, configs/prompts/reword.md)."),
    ] = None,
    rank_by: Annotated[
        str | None,
        typer.Option("--rank-by", help="Matrix: the metric the leaderboard ranks by (default: the primary metric)."),
    ] = None,
    against_baseline: Annotated[
        bool,
        typer.Option(
            "--against-baseline",
            help="Gate on the question set's blessed run (llmops eval bless): exit 4 when a question that passed "
            "there fails now.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    json_out: EvalJsonOpt = False,
) -> None:
    """Evaluate a question set against a collection; print a summary, the worst questions, gates and deltas.
    With several --model/--prompt: every combination on the same questions and context, and a leaderboard."""
    from llmops_cli.entry.eval import evaluate, outcome

    out = Output(json_out, quiet=quiet)
    metrics = [*(metrics or []), *(metrics_m or [])] or None
    settings = state().load(flags={"retrieval.k": k, "retrieval.mode": mode}).settings
    perturbations = [p.strip() for v in (perturb or []) for p in v.split(",") if p.strip()] or None
    models = list(model or [])
    if models_file:
        from llmops_cli.core.eval.matrix import read_models_file

        models += read_models_file(models_file)
    if len(dict.fromkeys(models)) > 1 or len(prompt or []) > 1:
        if baseline or against_baseline or fail_on_regression:
            raise UsageError(
                "a matrix is not compared with a baseline",
                hint="bless the winner's run, then gate single runs with --against-baseline",
            )
        _run_matrix(
            out,
            settings,
            dataset,
            models=models,
            prompts=prompt or [],
            reword_prompt=reword_prompt,
            collection=collection,
            metrics=metrics,
            k=k,
            mode=mode,
            where=parse_key_values(where) or None,
            concurrency=concurrency,
            judge_model=judge_model,
            judge_client=judge_client,
            perturbations=perturbations,
            limit=limit,
            use_cache=not no_cache,
            record=not no_record,
            label=label,
            fail_under=fail_under,
            rank_by=rank_by,
            outputs=output or [],
        )
        return
    with out.phases() as bar, workspace(settings) as ws:
        report = evaluate(
            ws,
            dataset,
            collection=collection,
            metrics=metrics,
            k=k,
            mode=mode,
            where=parse_key_values(where) or None,
            concurrency=concurrency,
            judge_model=judge_model,
            judge_client=judge_client,
            perturbations=perturbations,
            limit=limit,
            use_cache=not no_cache,
            record=not no_record,
            label=label,
            baseline=baseline,
            regression_tolerance=tolerance,
            fail_under=fail_under,
            outputs=output or [],
            progress=_stage_progress(bar),
            model=models[0] if models else None,
            prompt=prompt[0] if prompt else None,
            reword_prompt=reword_prompt,
            against_baseline=against_baseline,
        )

    if out.json_mode:
        out.json(report.to_dict())
    else:
        _print_report(out, report, worst)
        for o in output or []:
            out.info(f"wrote {o}")
        if report.run_id is not None:
            out.info(f"recorded as run {report.run_id} (llmops eval runs)")

    blessed = report.comparison and report.comparison.get("against_blessed")
    result = outcome(
        report,
        fail_on_regression=fail_on_regression or bool(blessed),
        baseline=f"blessed run {report.comparison['base']['run_id']}" if blessed else baseline,
    )
    out.finish(result, warning=result.message)


def _stage_progress(bar):
    """entry.eval's (stage, done, total) as the phase line: a stage's total is known when it starts, so its ETA is
    real; a stage without a count (total 0) shows its name, the spinner and the elapsed time."""

    def progress(stage: str, done: int, total: int) -> None:
        bar.show(stage, done if total else None, total or None, final=bool(total))

    return progress


def _run_matrix(out: Output, settings, dataset: str, **kw) -> None:
    from llmops_cli.entry.eval import evaluate_matrix, matrix_outcome

    with out.phases() as bar, workspace(settings) as ws:
        rep = evaluate_matrix(
            ws,
            dataset,
            progress=_stage_progress(bar),
            **kw,
        )
    if out.json_mode:
        out.json(rep.to_dict())
    else:
        _print_leaderboard(out, rep)
        for o in kw.get("outputs") or []:
            out.info(f"wrote {o}")
        runs = [e.report.run_id for e in rep.entries if e.report.run_id is not None]
        if runs:
            out.info(f"recorded as runs {', '.join(map(str, runs))} (matrix {rep.matrix_id}; llmops eval rate RUN)")
    result = matrix_outcome(rep)
    out.finish(result, warning=result.message)


def _print_leaderboard(out: Output, rep) -> None:
    board = rep.board
    rows = board["rows"]
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))

    def ci(m: dict) -> str:
        if m["mean"] is None:
            return ""
        if m["low"] is None:
            return f"{m['mean']:.3f}"
        return f"{m['mean']:.3f} [{m['low']:.2f}, {m['high']:.2f}]"

    def lat(v) -> str:
        return "-" if v is None else f"{v:.2f}"

    table = []
    for r in rows:
        cost = "unknown" if r["cost"] is None else f"${r['cost']:.4f}"
        table.append(
            (
                r["rank"],
                r["model"],
                f"{r['prompt']['name']}@{r['prompt']['sha256'][:8]}",
                *[
                    styled("[bold]" + ci(r["metrics"][m]) + "[/bold]")
                    if r["label"] in board["winners"].get(m, [])
                    else ci(r["metrics"][m])
                    for m in metrics
                ],
                cost,
                r["tokens"],
                f"{lat(r['latency_p50_s'])}/{lat(r['latency_p95_s'])}",
                r["error_rows"],
                "*" if r["pareto"] else "",
                r["run_id"] or "",
            )
        )
    out.table(
        ["rank", "model", "prompt", *metrics, "cost", "tokens", "p50/p95 s", "errors", "pareto", "run"],
        table,
        title=f"Leaderboard: {len(rows)} combinations on {rep.dataset['rows']} questions, by {board['rank_by']} "
        "(mean [95% CI]; bold: best)",
    )
    for m, labels in board["winners"].items():
        out.print(f"best {m}: {', '.join(labels)}")
    out.print(f"Pareto front ({board['rank_by']} vs {board['cost_axis']}): {', '.join(board['pareto']) or '-'}")


def _print_report(out, report, worst: int) -> None:
    from llmops_cli.core.eval.gates import metric_names, shown

    gates = {g["metric"]: g for g in report.gates}
    rows = []
    # every metric the run computes, those that got no value too (each question's call for it failed): a metric
    # missing from the table read as one never asked for
    chosen = metric_names(list(report.config.get("metrics") or []), int(report.config.get("k") or 5))
    for m in dict.fromkeys([*chosen, *report.metrics]):
        v = report.metrics.get(m)
        g = gates.get(m) or gates.get(m.split("@")[0] + "@k" if "@" in m else "")
        gate = "" if not g else ("pass" if g["passed"] else styled("[red]FAIL[/red]"))
        if v is None:
            rows.append((m, "- (no value)", 0, gate))
            continue
        # a gated mean gets the digits that put it visibly on its side of the threshold
        rows.append((m, shown(v, g["threshold"]) if g else f"{v:.3f}", report.counts.get(m, 0), gate))
    out.table(
        ["metric", "mean", "questions", "gate"],
        rows,
        title=f"{report.dataset['rows']} questions, {report.duration_s:.1f} s",
    )
    u = report.usage or {}
    if u.get("calls") or u.get("cached"):
        cost = "unknown" if u.get("cost") is None else f"${u['cost']:.4f}"
        out.print(
            f"LLM calls: {u['calls']} new, {u['cached']} cached, {u['failed']} failed; tokens {u['input_tokens']} in / "
            f"{u['output_tokens']} out; cost {cost}"
        )
    if report.by_tag:
        names = list(report.metrics)[:6]
        out.table(
            ["tag", *names],
            [(t, *[f"{v[m]:.3f}" if m in v else "" for m in names]) for t, v in report.by_tag.items()],
            title="By tag",
        )
    if report.robustness:
        rrows = []
        for kind, block in report.robustness.items():
            for m, d in (block.get("metrics") or {}).items():
                rrows.append((kind, m, f"{d['original']:.3f}", f"{d['perturbed']:.3f}", f"{d['delta']:+.3f}"))
        out.table(["perturbation", "metric", "original", "perturbed", "delta"], rrows, title="Robustness")
    if report.comparison:
        c = report.comparison
        if not c.get("same_dataset", True):  # e.g. --baseline latest after a sweep or a run of another set
            out.warn("the baseline's question set differs from this one (dataset hashes differ): rows are paired by id")
        out.table(
            ["metric", "base", "new", "delta", "rows base/new/both", "status"],
            _comparison_rows(c),
            title=f"Against baseline run {c['base'].get('run_id')} (means over the rows both scored)",
        )
    primary = report.primary_metric
    if primary and worst:
        wrows = [
            (r.id, r.question[:90], f"{r.metrics[primary]:.3f}", "; ".join(r.errors.values())[:60])
            for r in report.worst(worst)
        ]
        out.table(["id", "question", primary, "errors"], wrows, title=f"Worst questions by {primary}")
    # rows with errors: said once, by the outcome's warning line (entry.eval.outcome)


def _comparison_rows(c: dict) -> list[tuple]:
    def num(v, fmt: str = ".3f") -> str:
        return "" if v is None else format(v, fmt)

    return [
        (
            m["metric"],
            num(m["base"]),
            num(m["new"]),
            num(m["delta"], "+.3f"),
            f"{m['n_base']}/{m['n_new']}/{'-' if m['n_paired'] is None else m['n_paired']}",
            styled(f"[red]{m['status']}[/red]") if m["status"] == "regressed" else m["status"],
        )
        for m in c["metrics"]
    ]


@eval_app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.", min=1)] = 20,
    chart: Annotated[
        bool, typer.Option("--chart", help="Draw the metrics' trends across these runs in the terminal.")
    ] = False,
    chart_metrics: Annotated[
        list[str] | None, typer.Option("--metrics", help="With --chart: the metrics to draw (default: up to 4).")
    ] = None,
    json_out: EvalJsonOpt = False,
) -> None:
    """List recorded evaluation runs, newest first.

    Example: llmops eval runs --chart --metrics hit@5,mrr"""
    from llmops_cli.entry.eval import list_runs

    out = Output(json_out)
    with workspace(state().load().settings) as ws:
        runs = list_runs(ws, limit=limit)
    if out.json_mode:
        out.json({"runs": runs})
        return
    if chart:
        from llmops_cli.cli.charts import trend_chart

        names = [m.strip() for v in chart_metrics or [] for m in v.split(",") if m.strip()] or None
        if not runs:
            out.info("no recorded runs to chart (llmops eval DATASET records one)")
            return
        recorded = list(dict.fromkeys(m for r in runs for m in r["metrics"]))
        for m in names or []:
            if m not in recorded:  # it drew an empty chart
                close = closest(m, recorded, cutoff=0.6)
                raise UsageError(
                    f"--metrics {m}: no run of these {len(runs)} has it"
                    + (f"; did you mean {close}?" if close else ""),
                    hint=f"metrics recorded: {', '.join(recorded)}",
                )
        out.print(trend_chart(runs, names), markup=False)
        return
    rows = []
    for r in runs:
        top = " ".join(f"{m}={v:.3f}" for m, v in list(r["metrics"].items())[:3])
        rows.append(
            (
                r["id"],
                r["created_at"][:16].replace("T", " "),
                r["dataset"].rsplit("/", 1)[-1],
                r["dataset_sha256"][:8],
                r["config_hash"][:8],
                f"{r['rows']}/{r['error_rows']}",
                top,
                r["label"] or "",
            )
        )
    out.table(
        ["id", "created (UTC)", "dataset", "data", "config", "rows/err", "metrics", "label"],
        rows,
        title="Evaluation runs",
    )


@eval_app.command("compare")
def compare_cmd(
    base: Annotated[str, typer.Argument(help="Baseline: run id, latest, latest~1, or a report .json file.")],
    new: Annotated[str, typer.Argument(help="Candidate: run id, latest, or a report .json file.")],
    tolerance: ToleranceOpt = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 4 when a metric regressed.")
    ] = False,
    json_out: EvalJsonOpt = False,
) -> None:
    """Per-metric deltas between two runs; regressions flagged, and the questions that got worse."""
    from llmops_cli.entry.eval import compare, comparison_outcome

    out = Output(json_out)
    with workspace(state().load().settings) as ws:
        c = compare(ws, base, new, tolerance=tolerance)
    if out.json_mode:
        out.json(c)
    else:
        if not c["same_dataset"]:
            out.warn("the two runs used different question sets (dataset hashes differ)")
        out.table(
            ["metric", base, new, "delta", "rows base/new/both", "status"],
            _comparison_rows(c),
            title=f"{base} -> {new} (means over the rows both scored)",
        )
        if c["questions_worse"]:
            out.table(
                ["id", "question", "base", "new", "delta"],
                [
                    (q["id"], q["question"][:90], f"{q['base']:.3f}", f"{q['new']:.3f}", f"{q['delta']:+.3f}")
                    for q in c["questions_worse"]
                ],
                title=f"Questions worse by {c['primary_metric']} ({c['questions_worse_total']} in all)",
            )
        out.print("regressions: " + (", ".join(c["regressions"]) or "none"))
    result = comparison_outcome(c, fail_on_regression=fail_on_regression)
    out.finish(result, warning=result.message)


@eval_app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Run id, latest or latest~1.")],
    output: Annotated[
        list[str],
        typer.Option("--output", "-o", help="File to write (repeatable): .json, .jsonl, .csv, .parquet or .html."),
    ],
) -> None:
    """Write a recorded run's results again: the HTML report, the JSON document or per-question rows."""
    from llmops_cli.entry.eval import export

    out = Output(False)
    with workspace(state().load().settings) as ws:
        report = export(ws, run, output)
    for o in output:
        out.info(f"wrote {o} (run {report.run_id})")


@eval_app.command("generate")
def generate_cmd(
    collection: CollectionOpt = None,
    n: Annotated[int, typer.Option("--count", help="How many questions.", min=1, max=10000)] = 20,
    # -n means --limit elsewhere; kept working here, hidden, for old scripts
    n_old: Annotated[int | None, typer.Option("-n", hidden=True, min=1, max=10000)] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Question set to write (.jsonl, .csv or .parquet).")
    ] = "questions.jsonl",
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling chunks (same seed, same chunks).")] = 0,
    model: Annotated[str | None, typer.Option("--model", help="litellm model (default: llm.model).")] = None,
    concurrency: EvalConcurrencyOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
    json_out: EvalJsonOpt = False,
) -> None:
    """Write a question set from an ingested collection with the LLM (question, reference answer, source)."""
    from llmops_cli.entry.eval import generate

    out = Output(json_out, quiet=quiet)
    n = n_old if n_old is not None else n
    with out.phases("questions") as bar, workspace(state().load().settings) as ws:
        bar.show("writing questions")
        gen = generate(
            ws,
            output,
            collection=collection,
            count=n,
            seed=seed,
            model=model,
            concurrency=concurrency,
            use_cache=not no_cache,
            progress=lambda done, total: bar.show("writing questions", done, total, final=bool(total)),
        )
    if out.json_mode:
        out.json(gen.to_dict())
    else:
        if gen.result.items:  # none: nothing was written (an earlier file there is left as it was)
            out.print(f"wrote {len(gen.result.items)} questions from collection {gen.collection} to {output}")
        if gen.chunks < n:  # one question a chunk: a small collection gives fewer than asked, said
            out.warn(
                f"--count {n}: collection {gen.collection} has {gen.chunks} chunks long enough to ask about "
                "(one question each)"
            )
        for f in gen.result.failed[:5]:
            out.warn(f"chunk {f['chunk']}: {f['reason']}")
    result = gen.outcome()
    out.finish(result, warning=result.message)


@eval_app.command("sweep")
def sweep_cmd(
    dataset: Annotated[str, typer.Argument(help="Question set with relevant_sources.")],
    sources: Annotated[
        list[str], typer.Option("--sources", help="Paths to ingest (several after one --sources, or repeat it).")
    ],
    chunker: Annotated[
        list[str] | None,
        typer.Option("--chunker", help="Chunking strategies (repeatable): auto, recursive, headings, tokens."),
    ] = None,
    chunk_size: Annotated[
        list[int] | None,
        typer.Option(
            "--chunk-size",
            help="Chunk sizes in the embedder's tokens (repeatable; at most its maximum: 254 for all-MiniLM-L6-v2).",
        ),
    ] = None,
    chunk_overlap: Annotated[
        list[int] | None, typer.Option("--chunk-overlap", help="Overlaps in tokens (repeatable).")
    ] = None,
    embed_model: Annotated[
        list[str] | None,
        typer.Option("--embed-model", help="Embedding models (repeatable; default: embedder.model)."),
    ] = None,
    # the spellings before they matched `llmops ingest`'s: kept working, hidden, for old scripts
    strategy: Annotated[list[str] | None, typer.Option("--strategy", hidden=True)] = None,
    size: Annotated[list[int] | None, typer.Option("--size", hidden=True)] = None,
    overlap: Annotated[list[int] | None, typer.Option("--overlap", hidden=True)] = None,
    embedder: Annotated[list[str] | None, typer.Option("--embedder", hidden=True)] = None,
    metrics: MetricsOpt = None,
    metrics_m: OldMetricsOpt = None,
    k: TopKOpt = None,
    mode: ModeOpt = None,
    rank_by: Annotated[
        str | None, typer.Option("--rank-by", help="Metric the leaderboard is sorted by (default: ndcg@k).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary collections.")] = False,
    chart: Annotated[
        bool, typer.Option("--chart", help="Draw the leaderboard (the --rank-by metric per configuration).")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="PATH", help="Also write the leaderboard as an HTML page with its chart."),
    ] = None,
    quiet: QuietOpt = False,
    json_out: EvalJsonOpt = False,
) -> None:
    """Ingest sources under several chunking configurations into temporary collections, evaluate each, rank them."""
    from llmops_cli.entry.eval import sweep

    out = Output(json_out, quiet=quiet)
    metrics = [*(metrics or []), *(metrics_m or [])] or None
    strategy = [*(chunker or []), *(strategy or [])] or None
    size = [*(chunk_size or []), *(size or [])] or None
    overlap = [*(chunk_overlap or []), *(overlap or [])] or None
    embedder = [*(embed_model or []), *(embedder or [])] or None
    settings = state().load(flags={"retrieval.k": k, "retrieval.mode": mode}).settings
    if html is not None:
        from llmops_cli.core.eval.results_files import check_output_path

        check_output_path(html, "--html")  # a folder there is a usage error before the first ingest, not after the last
    rep = sweep(
        settings,
        dataset,
        sources,
        strategies=strategy,
        sizes=size,
        overlaps=overlap,
        embedders=embedder,
        metrics=metrics,
        k=k,
        mode=mode,
        rank_by=rank_by,
        keep=keep,
        progress=None if out.json_mode else out.info,
    )
    bars = [{"label": f"{e.strategy}/{e.size}/{e.overlap}", "value": e.metrics.get(rep.rank_by)} for e in rep.entries]
    if html is not None:
        from llmops_cli.core.eval.charts_svg import sweep_page
        from llmops_cli.core.eval.results_files import write_failed

        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(sweep_page(rep.to_dict(), bars), encoding="utf-8")
        except OSError as e:
            raise write_failed(html, e) from None
    if out.json_mode:
        out.json(rep.to_dict())
        return
    names = list(dict.fromkeys(m for e in rep.entries for m in e.metrics))
    rows = [
        (
            e.rank,
            e.strategy,
            e.size,
            e.overlap,
            e.embedder,
            e.chunks,
            *[f"{e.metrics.get(m, float('nan')):.3f}" for m in names],
            e.run_id,
        )
        for e in rep.entries
    ]
    out.table(
        ["rank", "strategy", "size", "overlap", "embedder", "chunks", *names, "run"],
        rows,
        title=f"Sweep leaderboard (by {rep.rank_by})",
    )
    for s in rep.skipped:
        out.warn(f"skipped {s['config']}: {s['reason']}")
    if chart and bars:
        from llmops_cli.cli.charts import bar_chart

        out.print(bar_chart(bars, title=f"sweep leaderboard ({rep.rank_by})"), markup=False)
    if html is not None:
        out.info(f"leaderboard: {html}")


@eval_app.command("bless")
def bless_cmd(
    run: Annotated[
        str | None, typer.Argument(help="Run id, latest or latest~1 (omit with --list).", show_default=False)
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why this run is the baseline.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the blessed baselines instead.")] = False,
    json_out: EvalJsonOpt = False,
) -> None:
    """Mark a run as the baseline of its question set; `eval run --against-baseline` then gates on it."""
    from llmops_cli.entry.eval import bless, blessed

    out = Output(json_out)
    with workspace(state().load().settings) as ws:
        if list_ or run is None:
            if run is None and not list_:
                raise UsageError("name the run to bless", hint="llmops eval bless RUN (or --list)")
            rows = blessed(ws)
            if out.json_mode:
                out.json({"blessed": rows})
            else:
                out.table(
                    ["run", "dataset", "data", "blessed (UTC)", "note"],
                    [
                        (b["run_id"], b["dataset"], b["dataset_sha256"][:8], b["blessed_at"][:16], b["note"] or "")
                        for b in rows
                    ],
                    title="Blessed baselines",
                )
            return
        doc = bless(ws, run, note)
    if out.json_mode:
        out.json(doc)
    else:
        was = f" (replacing run {doc['replaced']})" if doc["replaced"] else ""
        out.print(f"run {doc['run_id']} is the baseline of {doc['dataset']}{was}")


RubricOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--criteria",
        help="Rubric criteria (repeatable or comma-separated; default: relevance, coherence, tone, style, creativity, "
        "brand_voice).",
    ),
]


@eval_app.command("rate")
def rate_cmd(
    run: Annotated[str, typer.Argument(help="Run id, latest or latest~1 (a matrix run: all its combinations).")],
    rater: Annotated[
        str | None, typer.Option("--rater", help="Your name, stored with each rating (required to rate).")
    ] = None,
    criteria: RubricOpt = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from", help="Import ratings from a .csv/.jsonl (run_id, item_id, rater, criterion, score, comment)."
        ),
    ] = None,
    web: Annotated[
        bool, typer.Option("--web", help="Serve the rating page on 127.0.0.1 instead of asking in the terminal.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port of the rating page (0: a free one).", min=0, max=65535)] = 0,
    limit: Annotated[int | None, typer.Option("--limit", help="Rate at most N questions.", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the blind answer order.")] = 0,
    json_out: EvalJsonOpt = False,
) -> None:
    """Human evaluation: score a run's answers 1-5 per rubric criterion (blind to model and prompt), in the
    terminal, on a local web page (--web), or from a file (--from)."""
    from llmops_cli.core.eval import human
    from llmops_cli.entry.eval import add_ratings, rating_tasks

    out = Output(json_out)
    settings = state().load().settings
    if from_file:
        ratings = human.read_ratings_file(from_file)
        with workspace(settings) as ws:
            n = add_ratings(ws, ratings, source=from_file, run=run)
        if out.json_mode:
            out.json({"stored": n})
        else:
            out.print(f"stored {n} ratings from {from_file}")
        return
    if not rater:
        raise UsageError("rating needs your name", hint="pass --rater NAME (stored with each rating)")
    rubric = human.parse_rubric(criteria)
    with workspace(settings) as ws:
        reports, tasks = rating_tasks(ws, run, seed=seed)
        tasks = tasks[:limit] if limit else tasks
        if web:
            from llmops_cli.cli.rating_page import serve_rating_page

            n = serve_rating_page(
                tasks,
                rubric,
                rater,
                store=lambda ratings: add_ratings(ws, ratings),
                port=port,
                announce=out.info,
            )
        else:
            n = _rate_in_terminal(out, tasks, rubric, rater, store=lambda ratings: add_ratings(ws, ratings))
    if out.json_mode:
        out.json({"stored": n, "runs": [r.run_id for r in reports], "rater": rater})
    else:
        out.print(f"stored {n} ratings by {rater} (llmops eval agreement {run})")


def _rate_in_terminal(out: Output, tasks: list[dict], rubric: list[str], rater: str, store) -> int:
    """One question at a time: each answer under its letter, a 1-5 per criterion (Enter skips, q stops), then an
    optional comment; each question's ratings are stored as soon as it is done."""
    import click

    def ask(text: str) -> str | None:
        """The reply; None at the end of input (Ctrl-D, a closed pipe), which quits as q does. Ctrl-C at the
        prompt is an interruption (exit 130), not click's Abort (an internal error here)."""
        try:
            return click.prompt(text, default="", show_default=False, err=True)
        except click.exceptions.Abort as e:
            if isinstance(e.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            click.echo("", err=True)
            return None

    total = 0
    for n, task in enumerate(tasks, start=1):
        click.echo(f"\n[{n}/{len(tasks)}] {task['question']}", err=True)
        for a in task["answers"]:
            click.echo(f"\n  answer {a['letter']}: {a['answer']}", err=True)
        batch = []
        for a in task["answers"]:
            for c in rubric:
                raw = ask(f"  {a['letter']} {c} (1-5, Enter skips, q quits)")
                raw = "q" if raw is None else raw.strip()
                if raw.lower() == "q":
                    return total + (store(batch) if batch else 0)
                if not raw:
                    continue
                if raw not in ("1", "2", "3", "4", "5"):
                    out.warn(f"{raw!r} is not 1-5: skipped")
                    continue
                batch.append(
                    {
                        "run_id": a["run_id"],
                        "item_id": task["item_id"],
                        "rater": rater,
                        "criterion": c,
                        "score": int(raw),
                    }
                )
            comment = ask(f"  {a['letter']} comment (optional)")
            if comment is None:
                return total + (store(batch) if batch else 0)
            if comment.strip():
                for r in batch:
                    if r["run_id"] == a["run_id"]:
                        r["comment"] = comment.strip()
        if batch:
            total += store(batch)
    return total


@eval_app.command("agreement")
def agreement_cmd(
    runs: Annotated[
        list[str] | None,
        typer.Argument(help="Rated runs (ids, latest; a matrix run brings its siblings).", show_default=False),
    ] = None,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback",
            help="Use the feedback loop instead: the review judge's scores against people's up/down votes.",
        ),
    ] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="CRITERION=JUDGE_METRIC (repeatable), e.g. tone=helpfulness."),
    ] = None,
    min_kappa: Annotated[
        float | None,
        typer.Option(
            "--min-kappa", help="Warn (exit 4) when a criterion's weighted kappa is under this (0.4).", min=-1, max=1
        ),
    ] = None,
    json_out: EvalJsonOpt = False,
) -> None:
    """Does the LLM judge agree with people? Cohen's kappa (plain and quadratically weighted), Spearman's rho and
    the confusion table per criterion, between the judge's verdicts and the human ratings of the same answers."""
    from llmops_cli.core.eval import human
    from llmops_cli.entry.eval import Outcome, agreement, feedback_agreement

    out = Output(json_out)
    if bool(runs) == feedback:
        raise UsageError("name rated runs, or pass --feedback (not both)", hint="llmops eval agreement RUN")
    with workspace(state().load().settings) as ws:
        if feedback:
            doc = feedback_agreement(ws, min_kappa=min_kappa)
        else:
            doc = agreement(ws, runs or [], mapping=human.parse_mapping(map_), min_kappa=min_kappa)
    if out.json_mode:
        out.json(doc)
    else:

        def num(v) -> str:
            return "-" if v is None else f"{v:.3f}"

        out.table(
            ["criterion", "judge metric", "answers", "exact", "kappa", "weighted kappa", "spearman", ""],
            [
                (
                    c,
                    v["judge_metric"],
                    v["n"],
                    num(v.get("exact_agreement")),
                    num(v.get("kappa")),
                    num(v.get("weighted_kappa")),
                    num(v.get("spearman")),
                    styled("[red]below bound[/red]") if v.get("below_bound") else v.get("note", ""),
                )
                for c, v in doc["criteria"].items()
            ],
            title=(
                f"Review judge vs people's up/down votes on {doc['answers']} answers"
                if feedback
                else f"Judge vs people: {doc['ratings']} ratings by {', '.join(doc['raters'])} on runs "
                f"{', '.join(map(str, doc['runs']))}"
            ),
        )
        scale = ("bad", "good") if feedback else tuple(map(str, human.SCALE))
        for c, v in doc["criteria"].items():
            if v.get("n"):
                t = v["confusion"]["table"]
                out.table(
                    ["people \\ judge", *scale],
                    [(s, *t[i]) for i, s in enumerate(scale)],
                    title=f"{c}: confusion (rows: people, columns: judge)",
                )
        if doc.get("unjudged_criteria"):
            out.info(f"no judge metric for {', '.join(doc['unjudged_criteria'])} (map one with --map CRITERION=METRIC)")
    if doc["disagreeing"]:
        msg = (
            f"the judge disagrees with people on {', '.join(doc['disagreeing'])} (weighted kappa under "
            f"{doc['min_kappa']}): do not trust it there without a look at the confusion table"
        )
        result = Outcome(ExitCode.GATE_FAILED, msg)
    else:
        result = Outcome()
    out.finish(result, warning=result.message)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
