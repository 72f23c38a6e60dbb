"""llmops_finetune: fine-tune the embedding model, measure it, and adopt it only when it is better.

Thin by design: every step is a ``llmops_cli.entry.finetune`` call, the same ones ``llmops finetune embedder`` and
``llmops finetune promote`` run locally.

- ``gather`` counts the (question, relevant chunk) examples from the ``datasets`` given and the answer log (promoted
  and up-rated answers of the collection) and fails early when there are too few;
- ``train`` fine-tunes and measures base vs tuned on the held-out split (a run keyed by this DAG run, so a retried
  task finds the finished run instead of training again). It goes to the queue and pool named by
  ``$LLMOPS_FINETUNE_QUEUE`` / ``$LLMOPS_FINETUNE_POOL`` where this file is parsed, so GPU workers can take it;
- ``evaluate`` applies the gate (MRR@10 gain above ``min_gain``, and with ``require_ci`` the gain's 95% interval
  above 0);
- ``promote`` runs only when the gate passed: it re-embeds the collection with the tuned model into a new collection
  and emits that collection as an asset (``llmops://collections/<name>``), with the model and metrics as extra.

With ``provider`` (an OpenAI-compatible fine-tuning API, or ``default`` for llm.api_base) the same shape tunes a hosted
LLM on ``dataset`` (chat rows, ``llmops feedback export``) instead: ``gather`` counts the rows, ``train`` uploads,
submits and polls the job (its id recorded under a key of this DAG run before any wait, so a retried task polls the
job it already paid for), ``evaluate`` passes the gate when the job succeeded (no held-out comparison of a hosted
model here yet), and ``promote`` emits the tuned model as an asset (``llmops://models/<model>``).
The gate's decision is also written to ``<data_dir>/airflow-reports/llmops_finetune/<run id>.json``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Asset, AssetAlias, Param, dag, task

from llmops_cli.entry import finetune as finetune_entry
from llmops_cli.entry.dag_support import (
    OUTCOME_XCOM_KEY,
    collection_uri,
    outcome,
    reported,
    resolve_params,
    task_workspace,
    write_report,
    writer_task_args,
)

OPT_STR = ["null", "string"]
FINETUNED_ALIAS = "llmops-finetuned-collections"
FINETUNED_MODELS_ALIAS = "llmops-finetuned-models"
TRAIN_ROUTING = {
    k: v
    for k, v in (("queue", os.environ.get("LLMOPS_FINETUNE_QUEUE")), ("pool", os.environ.get("LLMOPS_FINETUNE_POOL")))
    if v
}


@dag(
    dag_id="llmops_finetune",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "collection": Param(None, type=OPT_STR, description="Collection to tune for (default: store.collection)."),
        "datasets": Param([], type="array", description="Question sets on the workers (relevant_sources/_chunks)."),
        "answer_log": Param(True, type="boolean", description="Also learn from promoted and up-rated answers."),
        "epochs": Param(1, type="integer", minimum=1, maximum=100),
        "batch_size": Param(16, type="integer", minimum=2, maximum=1024),
        "held_out": Param(0.3, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "lora": Param(False, type="boolean", description="LoRA adapters (peft), merged into the saved model."),
        "min_examples": Param(10, type="integer", minimum=2, description="Fail early below this many examples."),
        "min_gain": Param(0.0, type="number", description="Promote only when MRR@10 improves by more than this."),
        "require_ci": Param(False, type="boolean", description="...and the gain's 95% interval is above 0."),
        "into": Param(
            None, type=OPT_STR, description="Name of the re-embedded collection (default <collection>-ft<run>)."
        ),
        "config": Param(None, type=OPT_STR, description="llmops config file on the workers (default: $LLMOPS_CONFIG)."),
        "provider": Param(
            None,
            type=OPT_STR,
            description="Tune a hosted LLM instead: the OpenAI-compatible fine-tuning API's URL ('default': "
            "llm.api_base).",
        ),
        "model": Param(None, type=OPT_STR, description="With provider: the base model (default: llm.model)."),
        "dataset": Param(None, type=OPT_STR, description="With provider: chat rows on the workers (feedback export)."),
        "poll_s": Param(10.0, type="number", minimum=0, description="With provider: seconds between job polls."),
        "training_cost_per_token": Param(
            None, type=["null", "number"], description="With provider: training price per token (USD), for the cost."
        ),
    },
)
def llmops_finetune():
    def workspace(params):
        # params are not settings flags here ("collection" is passed to the steps)
        return task_workspace(resolve_params(params), params_as_flags=False)

    @task
    def gather(params=None) -> dict:
        if params.get("provider"):
            if not params.get("dataset"):
                raise ValueError("param dataset: the chat rows to tune on are needed with provider")
            rows = finetune_entry.read_ft_rows(resolve_params(params)["dataset"])
            print(f"{len(rows)} row(s) in {params['dataset']}")
            if len(rows) < params["min_examples"]:
                raise RuntimeError(f"{len(rows)} row(s), fewer than min_examples={params['min_examples']}")
            return {"examples": len(rows), "origins": {"dataset": len(rows)}}
        with workspace(params) as ws:
            examples, origins = finetune_entry.gather_examples(
                ws, _collection(ws, params), params["datasets"], use_answer_log=params["answer_log"]
            )
        print(f"{len(examples)} example(s): {origins}")
        if len(examples) < params["min_examples"]:
            raise RuntimeError(f"{len(examples)} example(s), fewer than min_examples={params['min_examples']}")
        return {"examples": len(examples), "origins": origins}

    # a retry resumes (the finished run, or the provider job already submitted): waiting long before it gains nothing
    @task(retries=2, retry_delay=timedelta(seconds=10), **TRAIN_ROUTING)
    def train(gathered: dict, params=None, run_id=None) -> int:
        with workspace(params) as ws:
            if params.get("provider"):
                run = finetune_entry.finetune_provider(
                    ws,
                    params.get("model") or ws.settings.llm.model,
                    resolve_params(params)["dataset"],
                    api_base=None if params["provider"] == "default" else params["provider"],
                    label=f"llmops_finetune:{run_id}",
                    poll_s=params["poll_s"],
                    cost_per_token=params.get("training_cost_per_token"),
                    progress=print,
                )
                print(f"run {run['id']} (resumed: {run['resumed']}): {run['output']}; cost {run['cost']}")
                return int(run["id"])
            run = finetune_entry.finetune_embedder(
                ws,
                _collection(ws, params),
                datasets=params["datasets"],
                use_answer_log=params["answer_log"],
                epochs=params["epochs"],
                batch_size=params["batch_size"],
                held_out=params["held_out"],
                lora=params["lora"],
                job_key=f"llmops_finetune:{run_id}",
                progress=print,
            )
        print(f"run {run['id']} (resumed: {run['resumed']}): {run['metrics']}; cost {run['cost']}")
        return int(run["id"])

    @task
    def evaluate(ft_run: int, params=None, run_id=None) -> dict:
        with workspace(params) as ws:
            runs = finetune_entry.finetune_runs(ws)
            try:
                run = runs.get(ft_run)
            finally:
                runs.close()
            if run["kind"] == "llm-provider":
                passed = run["status"] == "done" and bool(run["output"])
            else:
                passed = finetune_entry.gate(run, min_gain=params["min_gain"], require_ci=params["require_ci"])
            verdict = {
                "run": ft_run,
                "kind": run["kind"],
                "passed": passed,
                "min_gain": params["min_gain"],
                "require_ci": params["require_ci"],
                "metrics": run["metrics"],
                "model": run["output"],
                "cost": run["cost"],
            }
            report = write_report(ws.settings, "llmops_finetune", run_id, verdict)
        print(f"gate {'passed' if passed else 'failed'}: {run['metrics']}; report: {report}")
        return verdict

    @task.short_circuit
    def gate_passed(verdict: dict) -> bool:
        return bool(verdict["passed"])

    @task(outlets=[AssetAlias(FINETUNED_ALIAS), AssetAlias(FINETUNED_MODELS_ALIAS)], **writer_task_args())
    def promote(verdict: dict, params=None, outlet_events=None, ti=None) -> dict:
        if verdict.get("kind") == "llm-provider":
            # a hosted model is adopted by naming it (llm.model); there is nothing to re-embed
            res = {"run": verdict["run"], "model": verdict["model"], "asset": model_uri(verdict["model"])}
            extra = {"model": verdict["model"], "run": verdict["run"], "cost": verdict["cost"]}
            outlet_events[AssetAlias(FINETUNED_MODELS_ALIAS)].add(Asset(res["asset"]), extra=extra)
            ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(outcome(None), res))
            return res
        with workspace(params) as ws:
            res = finetune_entry.promote_embedder(
                ws, verdict["run"], collection=params.get("collection"), into=params.get("into")
            )
        extra = {"model": res["model"], "run": res["run"], "from": res["from"], "metrics": verdict["metrics"]}
        outlet_events[AssetAlias(FINETUNED_ALIAS)].add(Asset(collection_uri(res["collection"])), extra=extra)
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(outcome(None), {**res, "metrics": verdict["metrics"]}))
        return res

    verdict = evaluate(train(gather()))
    gate_passed(verdict) >> promote(verdict)


def model_uri(model: str) -> str:
    return f"llmops://models/{model}"


def _collection(ws, params) -> str:
    return params.get("collection") or ws.settings.store.collection


llmops_finetune()
