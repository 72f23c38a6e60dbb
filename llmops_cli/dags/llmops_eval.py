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

Schedule: the asset ``llmops://collections/<store.collection>`` (the default collection when this file is
parsed), so an ingest of that collection, or `llmops assets event llmops://collections/<name>` from CI,
starts it. A manual run picks the collection from its params.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

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

    evaluate()


llmops_eval()
