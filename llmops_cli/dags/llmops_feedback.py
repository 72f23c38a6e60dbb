"""llmops_feedback: review logged answers with the LLM judge and promote the good ones, hourly, in mapped batches.

Thin by design: every step is a ``llmops_cli.entry.feedback`` call, the same ones ``llmops feedback review`` and
``llmops feedback promote`` run locally.

- ``plan`` takes the next ``limit`` unreviewed answers from the answer log and splits their ids into batches;
- ``review_batch`` is mapped (``.expand``) over the batches, with retries: it judges each answer of its batch that
  is still unreviewed (a retried task does not pay twice), stores the verdicts, then promotes the answers that pass
  into their collection (redacted) and removes those that fail;
- ``reconcile`` brings every reviewed answer in line with the rule once more (answers rated down since their
  review are removed; thresholds changed in the config apply), writes a JSON report, and reports the outcome
  (reviewed, promoted, removed) under ``llmops_outcome``: partial when answers were left unreviewed, so
  ``llmops trigger-dag --wait`` exits 3 as ``llmops feedback review`` does.

The workers must share the answer log (``state.url``, or ``data_dir``'s ``llmops.sqlite``) and the store with the
machines where ``llmops ask`` runs. An embedded Chroma (no store.url) is not safe for concurrent writers from several
processes, so the tasks that write it (review batches, reconcile) run one at a time, in the one-slot pool
``llmops_embedded_store`` when $LLMOPS_EMBEDDED_STORE_POOL names it, as the ingest DAG's writers do
(``dag_support.writer_task_args``, decided when this file is parsed).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.entry.dag_support import (
    OUTCOME_XCOM_KEY,
    feedback_outcome,
    reported,
    resolve_params,
    task_workspace,
    write_report,
    writer_task_args,
)

OPT_STR = ["null", "string"]


@dag(
    dag_id="llmops_feedback",
    schedule=timedelta(hours=1),
    catchup=False,
    max_active_runs=1,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "limit": Param(
            200, type="integer", minimum=1, maximum=100000, description="At most this many answers per run."
        ),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1000,
            description="Answers per mapped review task (default: feedback.review_batch_size).",
        ),
        "collection": Param(None, type=OPT_STR, description="Only answers from this collection (default: all)."),
        "retry_errors": Param(
            False, type="boolean", description="Also re-review answers whose verdict could not be parsed."
        ),
        "config": Param(None, type=OPT_STR, description="llmops config file on the workers (default: $LLMOPS_CONFIG)."),
    },
)
def llmops_feedback():
    def workspace(params):
        # params not as flags: "collection" here filters answers, it is not store.collection
        return task_workspace(resolve_params(params), params_as_flags=False)

    @task
    def plan(params=None) -> list[list[str]]:
        with workspace(params) as ws:
            batches = feedback_entry.plan_review(
                ws,
                limit=params["limit"],
                batch_size=params.get("batch_size"),
                collection=params.get("collection"),
                retry_errors=params["retry_errors"],
            )
        print(f"{sum(map(len, batches))} answers to review in {len(batches)} batch(es)")
        return batches

    # it writes the store (promotion): on an embedded store one at a time, in the writers' pool when one is named
    @task(retries=2, retry_delay=timedelta(seconds=30), **writer_task_args())
    def review_batch(answer_ids: list[str], params=None) -> dict:
        with workspace(params) as ws:
            out = feedback_entry.review(ws, answer_ids=answer_ids, retry_errors=params["retry_errors"])
        promo = out.get("promotion") or {}
        summary = {
            "answers": len(answer_ids),
            "reviewed": out["reviewed"],
            "errors": len(out["errors"]),
            "failed": len(out["failed"]),
            "promoted": len(promo.get("promoted", [])),
            "removed": len(promo.get("removed", [])),
        }
        print(f"batch: {summary}")
        if out["failed"] and len(out["failed"]) == len(answer_ids):
            # every judge call failed (endpoint down?): fail the task so it is retried, not silently "done"
            raise RuntimeError(f"all {len(answer_ids)} judge calls failed; first: {out['failed'][0]['error']}")
        return summary

    @task(trigger_rule="all_done", **writer_task_args())  # promotes and removes: a writer too
    def reconcile(reports, params=None, run_id=None, ti=None) -> dict:
        reports = [r for r in (reports or []) if r]
        with workspace(params) as ws:
            final = feedback_entry.promote(ws)
        summary = {
            key: sum(r[key] for r in reports)
            for key in ("answers", "reviewed", "errors", "failed", "promoted", "removed")
        }
        summary.update(
            {
                "batches": len(reports),
                "reconciled": final["checked"],
                "reconcile_promoted": len(final["promoted"]),
                "reconcile_removed": len(final["removed"]),
            }
        )
        path = write_report(ws.settings, "llmops_feedback", run_id, summary)
        print(f"report: {path}")
        planned = sum(map(len, ti.xcom_pull(task_ids="plan") or []))
        # partial when answers were left unreviewed (a review batch that failed still lets this task run)
        result = feedback_outcome(summary, planned)
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(result, {**summary, "planned": planned, "report": path}))
        if result["status"] == "partial":
            print(f"PARTIAL: {result['message']}")
        return summary

    reconcile(review_batch.expand(answer_ids=plan()))


llmops_feedback()
