"""`llmops finetune`: tune the embedding model, measured before it is adopted (`embedder`), re-embed a collection with
the tuned model (`promote`), the run history (`runs`). The steps are in entry/finetune.py (shared with the DAG)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli.options import CollectionOpt, JsonOpt, LimitOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.errors import ExitCode

finetune_app = typer.Typer(
    help="Fine-tune the embedding model on what is known to be relevant, measured on held-out questions before it "
    "is adopted; re-embed a collection with it.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(finetune_app, name="finetune")


@finetune_app.command(
    "embedder",
    help="Fine-tune the collection's sentence-transformers model on (question, relevant chunk) pairs with BM25 hard "
    "negatives, from --dataset files (eval datasets, `eval generate` output) and promoted or up-rated answers; "
    "hold out a split by source and report base vs tuned hit@5 and MRR@10 with 95% intervals and the cost. The tuned "
    "model is saved under data_dir/models/ (name it in embedder.model). Exit 4 when --min-gain is given and the "
    "MRR@10 gain is not above it.",
)
def finetune_embedder_cmd(
    collection: CollectionOpt = None,
    dataset: Annotated[
        list[Path] | None,
        typer.Option("--dataset", help="Question set naming relevant_sources or relevant_chunks (repeatable)."),
    ] = None,
    answer_log: Annotated[
        bool, typer.Option("--answer-log/--no-answer-log", help="Also learn from promoted and up-rated answers.")
    ] = True,
    lora: Annotated[
        bool, typer.Option("--lora", help="Train LoRA adapters (peft), merged into the saved model.")
    ] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.", min=1, max=256)] = 8,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=100)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per step (in-batch negatives).", min=2)] = 16,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=0)] = 2e-5,
    max_seq_length: Annotated[int, typer.Option("--max-seq-length", help="Tokens per text in training.", min=8)] = 256,
    held_out: Annotated[
        float, typer.Option("--held-out", help="Share of sources held out for measuring.", min=0.01, max=0.99)
    ] = 0.3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    min_gain: Annotated[
        float | None, typer.Option("--min-gain", help="Exit 4 unless MRR@10 improves by more than this.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry.finetune import finetune_embedder, gate

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        run = finetune_embedder(
            ws,
            collection,
            datasets=dataset or [],
            use_answer_log=answer_log,
            held_out=held_out,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_seq_length=max_seq_length,
            lora=lora,
            lora_r=lora_r,
            seed=seed,
            progress=out.info,
        )
    passed = min_gain is None or gate(run, metric="mrr@10", min_gain=min_gain)
    if json_out:
        out.json({**_public(run), "gate_passed": passed})
    else:
        _render_run(out, run)
    out.finish(ExitCode.OK if passed else ExitCode.GATE_FAILED, warning=None if passed else "MRR@10 gain too small")


@finetune_app.command(
    "promote",
    help="Re-embed a collection with a run's tuned model into a NEW collection (default <collection>-ft<run>), to "
    "compare the two with `llmops eval` before switching.",
)
def finetune_promote_cmd(
    run: Annotated[int | None, typer.Option("--run", help="Run id (default: the latest finished one).")] = None,
    collection: CollectionOpt = None,
    into: Annotated[str | None, typer.Option("--into", help="The new collection's name.")] = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry.finetune import promote_embedder

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        res = promote_embedder(ws, run, collection=collection, into=into, progress=out.info)
    if json_out:
        out.json(res)
        return
    out.print(
        f"collection {res['collection']}: {res['chunks']} chunk(s) of {res['from']} embedded by {res['embedder']} "
        f"({res['embedded']} now, {res['cost']['wall_s']} s)"
    )
    out.print(f"compare: llmops eval QUESTIONS --collection {res['from']}, then --collection {res['collection']}")


@finetune_app.command(
    "llm",
    help="LoRA-tune a local Hugging Face causal LM (--base FOLDER) on a fine-tuning dataset (`llmops feedback export`: "
    "chat rows, or prompt/completion), scored against the base on held-out rows; or, with --provider, submit the "
    "dataset to an OpenAI-compatible fine-tuning API and wait (a re-run resumes the recorded job).",
)
def finetune_llm_cmd(
    base: Annotated[
        str, typer.Option("--base", help="Local model folder (or, with --provider, the provider's model).")
    ],
    dataset: Annotated[Path, typer.Option("--dataset", help="JSONL fine-tuning rows.")],
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.", min=1, max=256)] = 8,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=100)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=0)] = 2e-4,
    held_out: Annotated[float, typer.Option("--held-out", min=0.01, max=0.99)] = 0.2,
    provider: Annotated[
        str | None,
        typer.Option("--provider", help="OpenAI-compatible API base URL ('default' = llm.api_base or OpenAI)."),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between job polls.", min=0.01)] = 10.0,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop waiting after this many seconds.")] = None,
    cost_per_token: Annotated[
        float | None,
        typer.Option(
            "--training-cost-per-token",
            help="With --provider: the training price per token (USD), so the run records the job's cost.",
            min=0,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    from llmops_cli.entry.finetune import finetune_llm, finetune_provider

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        if provider:
            run = finetune_provider(
                ws,
                base,
                dataset,
                api_base=None if provider == "default" else provider,
                hyperparameters={"n_epochs": epochs},
                poll_s=poll,
                timeout_s=timeout,
                cost_per_token=cost_per_token,
                progress=out.info,
            )
            run.pop("job", None)
        else:
            run = finetune_llm(
                ws,
                base,
                dataset,
                lora_r=lora_r,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                held_out=held_out,
                progress=out.info,
            )
    if json_out:
        out.json(_public(run))
        return
    if run["kind"] == "llm-provider":
        out.print(f"job {run['provider_job_id']}: {run['status']}; model {run['output']}")
        c = run["cost"]
        price = "price unknown (--training-cost-per-token)" if c.get("cost_usd") is None else f"${c['cost_usd']}"
        out.print(f"cost: {c.get('trained_tokens')} trained tokens, {price}, {c.get('wall_s')} s from submission")
        return
    m = run["metrics"]
    out.print(
        f"held-out rows {m['held_out_rows']}: answer-token loss {m['base']['loss']} (base) -> {m['tuned']['loss']} "
        f"(tuned), perplexity {m['base']['perplexity']} -> {m['tuned']['perplexity']}"
    )
    cost = run["cost"]["train"]
    out.print(f"cost: {cost['wall_s']} s wall, {cost['cpu_s']} s CPU on {cost['device']}, {cost['steps']} steps")
    out.print(f"adapters: {run['output']}")


@finetune_app.command("runs", help="Fine-tuning runs, newest first.")
def finetune_runs_cmd(limit: LimitOpt = 20, json_out: JsonOpt = False) -> None:
    from llmops_cli.core.finetune.runs import cost_total
    from llmops_cli.entry.finetune import finetune_runs

    s = state().load().settings
    out = Output(json_out)
    with workspace(s) as ws:
        runs = finetune_runs(ws, read_only=True)
        try:
            rows = runs.list(limit=limit)
        finally:
            runs.close()
    if json_out:
        out.json({"runs": [{**_public(r), "cost_total": cost_total(r)} for r in rows]})
        return
    if not rows:
        out.info("no fine-tuning runs yet: run llmops finetune embedder --collection C --dataset QUESTIONS")
        return
    out.table(
        [
            "id",
            "time (UTC)",
            "kind",
            "status",
            "MRR@10 base -> tuned",
            "wall s",
            "CPU s",
            "tokens",
            "cost $",
            "model",
            "promoted to",
        ],
        [
            (
                r["id"],
                datetime.fromtimestamp(r["created_at"], UTC).strftime("%Y-%m-%d %H:%M"),
                r["kind"],
                r["status"],
                _arrow(r, "mrr@10"),
                t["wall_s"],
                t["cpu_s"],
                "" if t["trained_tokens"] is None else t["trained_tokens"],
                "" if t["cost_usd"] is None else t["cost_usd"],
                Path(r["output"]).name if r["output"] else "",
                r["promoted_to"] or "",
            )
            for r in rows
            for t in [cost_total(r)]
        ],
        title="Fine-tuning runs",
    )


def _public(run: dict[str, Any]) -> dict[str, Any]:
    d = dict(run)
    for k in ("created_at", "updated_at"):
        d[k] = datetime.fromtimestamp(d[k], UTC).isoformat(timespec="seconds")
    return d


def _arrow(run: dict[str, Any], metric: str) -> str:
    m = run.get("metrics") or {}
    if metric not in (m.get("base") or {}):
        return ""
    return f"{m['base'][metric]:.3f} -> {m['tuned'][metric]:.3f}"


def _render_run(out: Output, run: dict[str, Any]) -> None:
    m, data = run["metrics"], run["data"]
    cost = run["cost"].get("train", {})
    if run.get("resumed"):
        out.print(f"run {run['id']} was already done (not trained again)")
    out.print(
        f"run {run['id']}: {data.get('pairs')} pair(s) from {data.get('train_questions')} question(s) "
        f"({data.get('train_groups')} sources), held out {data.get('held_out_questions')} question(s) "
        f"({data.get('held_out_groups')} sources)"
    )
    rows = []
    for metric in ("hit@5", "mrr@10"):
        ci = m["ci95"][metric]
        rows.append(
            (
                metric,
                f"{m['base'][metric]:.3f} [{ci['base'][0]:.3f}, {ci['base'][1]:.3f}]",
                f"{m['tuned'][metric]:.3f} [{ci['tuned'][0]:.3f}, {ci['tuned'][1]:.3f}]",
                f"{m['gain'][metric]:+.3f} [{ci['gain'][0]:+.3f}, {ci['gain'][1]:+.3f}]",
            )
        )
    out.table(["metric", "base [95% CI]", "tuned [95% CI]", "gain [95% CI]"], rows, title="Held-out questions")
    out.print(
        f"cost: {cost.get('wall_s')} s wall, {cost.get('cpu_s')} s CPU, {cost.get('pairs')} pairs, "
        f"{cost.get('epochs')} epoch(s), {cost.get('steps')} steps; measuring "
        f"{run['cost'].get('evaluate', {}).get('wall_s')} s"
    )
    out.print(f"model: {run['output']}  (embedder.model = that path; llmops finetune promote --run {run['id']})")
