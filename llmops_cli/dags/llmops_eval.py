"""llmops_eval: evaluate retrieval on a collection; scheduled on the collection's asset, and triggerable.

Thin by design: calls the entry points. With an eval dataset (param ``dataset``) it runs
``llmops_cli.entry.eval.evaluate`` (the same as ``llmops eval``; ``fail_under`` gates fail the task, so a waiting
``llmops trigger-dag --wait`` exits 5); otherwise ``llmops_cli.entry.eval.retrieval_check`` over the param
``questions`` (hits found, top score). The summary goes to XCom (the task's return value, and under
``llmops_outcome`` the outcome every llmops DAG reports: metrics, gates and the report's location; partial when
some questions had errors); the full report (every row) goes to a JSON report file under
``<data_dir>/airflow-reports/llmops_eval/`` and, with the param ``output`` (an absolute path or URL every worker can
reach, like the batch DAG's), to that location too, published before a failed gate fails the run and never replacing
an earlier report. ``dataset``, ``output`` and ``config`` are absolute paths or URLs (a relative path is refused when
the run is triggered).

With the params ``models`` and/or ``prompts`` (answer prompt files: absolute paths every worker can read) it
evaluates every model with every prompt, as ``llmops eval run DATASET --model A --model B --prompt p1 --prompt p2``
does, in three steps that call the CLI's own: ``plan_matrix`` searches once (each question's rewordings and hits,
``llmops_cli.entry.eval.plan_matrix_run``) and keeps the plan beside the run's report (under data_dir, where every
task reads it); ``evaluate_combination`` is mapped over the combinations (one task each, retried on its own,
``evaluate_matrix_combination``: answers and scores on the plan's context, recorded in the eval history);
``leaderboard`` ranks the recorded runs (``matrix_from_runs``) and writes the same report as the CLI. Without them
the matrix tasks are skipped and ``evaluate`` runs as before (it is skipped when a matrix runs).

Schedule: the asset ``llmops://collections/<store.collection>`` (the default collection when this file is
parsed), so an ingest of that collection, or `llmops assets event llmops://collections/<name>` from CI,
starts it. A manual run picks the collection from its params.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from llmops_cli.entry.dag_support import collection_uri, default_collection, location_schema

OPT_STR = ["null", "string"]


@dag(
    dag_id="llmops_eval",
    schedule=Asset(collection_uri(default_collection())),
    catchup=False,
    max_active_runs=1,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "collection": Param(
            None, type=OPT_STR, description="Collection (default: the triggering asset's, else store.collection)."
        ),
        "dataset": Param(None, type=OPT_STR, **location_schema("Eval dataset file (runs the full evaluation).")),
        "output": Param(
            None,
            type=OPT_STR,
            **location_schema(
                "Where the report goes besides the run's JSON report: .json (whole report), .html, or .jsonl/.csv/"
                ".parquet (per question); a retrieval check (no dataset) writes .json. Never replaced: a run whose "
                "output exists already fails."
            ),
        ),
        "metrics": Param([], type="array", items={"type": "string"}, description="Metrics (default: the eval's own)."),
        "fail_under": Param(
            [],
            type="array",
            items={"type": "string", "pattern": "^[^=]+=[0-9.]+$"},
            description="Quality gates metric=threshold: the task fails when one is not met.",
        ),
        "questions": Param(
            ["What is this collection about?"],
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="Questions for the retrieval check (used without a dataset).",
        ),
        "k": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=200,
            description="Chunks per question (default: retrieval.k).",
        ),
        "mode": Param(None, type=OPT_STR, enum=[None, "hybrid", "vector", "lexical"], description="Retrieval mode."),
        "config": Param(
            None, type=OPT_STR, **location_schema("llmops config file for the tasks (default: $LLMOPS_CONFIG).")
        ),
        "models": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1},
            description="Answer models of a models x prompts matrix (with a dataset; default: llm.model).",
        ),
        "prompts": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1},
            description="Answer prompt files of the matrix (absolute paths every worker can read; default: built-in).",
        ),
        "rank_by": Param(None, type=OPT_STR, description="Metric the matrix leaderboard ranks by (default: chosen)."),
    },
)
def llmops_eval():
    @task
    def evaluate(params=None, triggering_asset_events=None, run_id=None, ti=None) -> dict:
        import json
        from pathlib import Path

        from llmops_cli.entry.dag_support import (
            OUTCOME_XCOM_KEY,
            collection_from_events,
            eval_outcome,
            eval_summary,
            publish_result,
            reported,
            resolve_params,
            settings_from_params,
            staging_output,
            write_report,
        )
        from llmops_cli.entry.eval import evaluate as run_evaluation
        from llmops_cli.entry.eval import failed_gates, retrieval_check

        params = resolve_params(params)
        if is_matrix(params):
            raise AirflowSkipException("a models x prompts matrix: the plan_matrix, evaluate_combination tasks run")
        # the run's param wins; else the collection whose asset event started this run; else store.collection
        params["collection"] = params.get("collection") or collection_from_events(triggering_asset_events)
        s = settings_from_params(params)
        print(f"evaluating collection {s.store.collection!r}")
        output = params.get("output")
        staged = staging_output(output) if output else None  # written here, then published at output
        if output and not params.get("dataset") and not output.lower().endswith(".json"):
            raise ValueError(f"param output: a retrieval check (no dataset) writes JSON; got {output!r}")

        def publish(summary: dict) -> dict:
            if not output:
                return summary
            print(f"report published: {publish_result(staged, output)}")  # never replaces an earlier report
            return {**summary, "output": output}

        if params.get("dataset"):
            report = run_evaluation(
                s,
                params["dataset"],
                collection=s.store.collection,
                k=params.get("k"),
                mode=params.get("mode"),
                metrics=params.get("metrics") or None,
                fail_under=params.get("fail_under") or None,
                label=f"airflow:{run_id}",
                outputs=[staged] if staged else (),
            )
            path = write_report(s, "llmops_eval", run_id, report.to_dict())
            print(f"report: {path}")
            summary = publish(eval_summary(report.to_dict(), path))  # published before a gate fails the run
            result = eval_outcome(summary)
            ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(result, summary))  # pushed before a gate fails the run
            if failed := failed_gates(report):  # the run fails, so `llmops trigger-dag --wait` exits 5 and CI stops
                raise ValueError(f"quality gate(s) failed: {failed}")
            if result["status"] == "partial":
                print(f"PARTIAL: {result['message']}")
            return report.summary()
        report = retrieval_check(s, params["questions"], k=params.get("k"), mode=params.get("mode"))
        path = write_report(s, "llmops_eval", run_id, report)
        print(f"report: {path}")
        if staged:
            Path(staged).parent.mkdir(parents=True, exist_ok=True)
            Path(staged).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        summary = publish(eval_summary(report, path))
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(eval_outcome(summary), summary))
        return {k: v for k, v in report.items() if k != "rows"}  # XCom gets the summary; the rows stay in the file

    @task
    def plan_matrix(params=None, triggering_asset_events=None, run_id=None) -> list[dict]:
        from llmops_cli.entry.dag_support import (
            collection_from_events,
            resolve_params,
            settings_from_params,
            write_report,
        )
        from llmops_cli.entry.eval import plan_matrix_run

        params = resolve_params(params)
        if not is_matrix(params):
            raise AirflowSkipException("no models or prompts: one evaluation, by the evaluate task")
        if not params.get("dataset"):
            raise ValueError("param dataset: a models x prompts matrix needs an eval dataset (absolute path or URL)")
        params["collection"] = params.get("collection") or collection_from_events(triggering_asset_events)
        s = settings_from_params(params)
        plan = plan_matrix_run(
            s,
            params["dataset"],
            models=params.get("models") or [],
            prompts=params.get("prompts") or [],
            collection=s.store.collection,
            k=params.get("k"),
            mode=params.get("mode"),
            metrics=params.get("metrics") or None,
            fail_under=params.get("fail_under") or None,
        )
        # beside the run's report, where every task of the run reads it (not this worker's working directory)
        path = write_report(s, "llmops_eval", f"{run_id}.matrix-plan", plan)
        print(f"matrix {plan['matrix']['id']}: {len(plan['combinations'])} combinations, plan {path}")
        return [{"plan": path, "index": n, "label": label} for n, label in enumerate(plan["combinations"])]

    @task(retries=2, retry_delay=timedelta(seconds=30), map_index_template="{{ combination_label }}")
    def evaluate_combination(combination: dict, params=None, triggering_asset_events=None) -> int:
        import json
        from pathlib import Path

        from airflow.sdk import get_current_context

        from llmops_cli.entry.dag_support import collection_from_events, resolve_params, settings_from_params
        from llmops_cli.entry.eval import evaluate_matrix_combination

        get_current_context()["combination_label"] = combination["label"]
        params = resolve_params(params)
        params["collection"] = params.get("collection") or collection_from_events(triggering_asset_events)
        plan = json.loads(Path(combination["plan"]).read_text(encoding="utf-8"))
        report = evaluate_matrix_combination(settings_from_params(params), plan, combination["index"])
        print(f"{combination['label']}: run {report.run_id}, {report.metrics}")
        return int(report.run_id)

    @task
    def leaderboard(combinations: list, run_ids: list, params=None, triggering_asset_events=None, run_id=None, ti=None):
        import json
        from pathlib import Path

        from llmops_cli.entry.dag_support import (
            OUTCOME_XCOM_KEY,
            collection_from_events,
            matrix_summary,
            outcome,
            publish_result,
            reported,
            resolve_params,
            settings_from_params,
            staging_output,
            write_report,
        )
        from llmops_cli.entry.eval import matrix_from_runs, matrix_outcome
        from llmops_cli.errors import ExitCode

        params = resolve_params(params)
        params["collection"] = params.get("collection") or collection_from_events(triggering_asset_events)
        s = settings_from_params(params)
        plan = json.loads(Path(combinations[0]["plan"]).read_text(encoding="utf-8"))
        output = params.get("output")
        staged = staging_output(output) if output else None
        rep = matrix_from_runs(
            s, plan, list(run_ids), rank_by=params.get("rank_by"), outputs=[staged] if staged else ()
        )
        path = write_report(s, "llmops_eval", run_id, rep.to_dict())
        print(f"report: {path}")
        summary = matrix_summary(rep.to_dict(), path)
        if output:
            print(f"report published: {publish_result(staged, output)}")  # never replaces an earlier report
            summary["output"] = output
        ended = matrix_outcome(rep)  # the CLI's verdict: a failed gate, rows with errors, or ok
        if ended.exit_code == ExitCode.GATE_FAILED:
            result = {"status": "failed", "message": ended.message or ""}
        else:
            result = outcome(ended.message if ended.exit_code == ExitCode.PARTIAL else None)
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(result, summary))  # pushed before a gate fails the run
        if ended.exit_code == ExitCode.GATE_FAILED:
            raise ValueError(ended.message)
        if result["status"] == "partial":
            print(f"PARTIAL: {result['message']}")
        return summary

    evaluate()
    planned = plan_matrix()
    leaderboard(planned, evaluate_combination.expand(combination=planned))


def is_matrix(params: dict) -> bool:
    """A run with models or prompts is a matrix (every model with every prompt)."""
    return bool(params.get("models") or params.get("prompts"))


llmops_eval()
