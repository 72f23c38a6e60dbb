"""A user-style DAG file built on ``llmops_cli.airflow`` (written by tests, never shipped), and the inputs it reads.

One DAG, ``<prefix>_pipeline`` (one run keeps the test's Airflow time small; independent branches run in parallel):
Markdown docs through ``ingest_group`` (plan -> mapped shards -> finalize) and GitHub issues passed as records from an
upstream TaskFlow task (``@llmops_task.ingest``), both into the collection the ``llmops`` connection names; then
``eval_group`` with a gate that holds; ``batch_group`` over a small table; a temporary collection (setup/teardown)
with an ingest of its own; and what must fail on its first try although every task has retries: an eval whose gate
cannot be met, and a query whose connection does not exist (so the run fails).
"""

from __future__ import annotations

import json
from pathlib import Path

ISSUES = [
    {"number": 1, "title": "Scheduler stuck", "body": "The scheduler heartbeat stops after a database failover."},
    {"number": 2, "title": "Pools", "body": "How do pools limit concurrent tasks against an external API?"},
]


def write_inputs(base: Path) -> dict[str, str]:
    docs = base / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "retries.md").write_text("# Retries\n\nSet `retries=3` on a task to retry it three times.\n" * 10)
    (docs / "sensors.md").write_text("# Sensors\n\nA sensor waits for a condition before the next task runs.\n" * 10)
    (base / "issues.json").write_text(json.dumps(ISSUES))
    (base / "golden.jsonl").write_text(
        "".join(
            json.dumps({"question": q, "relevant_sources": [src]}) + "\n"
            for q, src in (("How do I retry a task?", "retries.md"), ("What does a sensor wait for?", "sensors.md"))
        )
    )
    # a question whose relevant source is in no collection: hit@5 is 0, so a gate of 0.5 fails
    (base / "unanswerable.jsonl").write_text(
        json.dumps({"question": "How do I rotate the fernet key?", "relevant_sources": ["fernet.md"]}) + "\n"
    )
    (base / "table.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "q": f"question {i}"}) + "\n" for i in range(4))
    )
    (base / "out").mkdir(exist_ok=True)
    return {"base": str(base)}


def dag_source(base: Path, *, prefix: str, conn_id: str, guard_home: str | None = None) -> str:
    """The DAG file's text. ``guard_home``: define the DAGs only in the Airflow whose AIRFLOW_HOME this is (the
    test DAG folder is shared by every session's Airflow)."""
    guard = f"os.environ.get('AIRFLOW_HOME') == {guard_home!r}" if guard_home else "True"
    return f'''"""user-style airflow DAG file using llmops_cli.airflow (written by a test)"""
import json
import os
from datetime import timedelta

from airflow.sdk import dag, task

from llmops_cli.airflow.decorators import llmops_task
from llmops_cli.airflow.groups import batch_group, eval_group, ingest_group, temporary_collection
from llmops_cli.airflow.operators import LlmopsEvalOperator, LlmopsIngestOperator, LlmopsQueryOperator

BASE = {str(base)!r}
CONN = {{"llmops_conn_id": {conn_id!r}}}

if {guard}:

    @dag(
        dag_id="{prefix}_pipeline",
        schedule=None,
        catchup=False,
        default_args={{"retries": 2, "retry_delay": timedelta(seconds=1)}},
    )
    def pipeline():
        docs = ingest_group("docs", sources=[BASE + "/docs"], shards=2, **CONN)

        @llmops_task.ingest(records_name="github-issues", **CONN)
        def github_issues():
            with open(BASE + "/issues.json") as f:
                return json.load(f)

        ingested = [docs, github_issues()]
        quality = eval_group(
            "quality",
            dataset=BASE + "/golden.jsonl",
            fail_under=["hit@5=0.5"],
            output=BASE + "/out/eval-{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}.json",
            **CONN,
        )
        ingested >> quality
        batch_group(
            "answers",
            input=BASE + "/table.jsonl",
            output=BASE + "/out/answers-{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}.jsonl",
            shards=2,
            options={{"prompt": "Answer: {{q}}", "id_column": "id"}},
            **CONN,
        )
        setup, teardown = temporary_collection("{prefix}-scratch", **CONN)
        scratch = LlmopsIngestOperator(
            task_id="scratch_ingest", sources=[BASE + "/docs"], collection="{prefix}-scratch", **CONN
        )
        setup >> scratch >> teardown
        # what must fail at once although the tasks have retries: a gate that cannot be met, a missing connection
        ingested >> LlmopsEvalOperator(
            task_id="impossible_gate", dataset=BASE + "/unanswerable.jsonl", fail_under=["hit@5=0.5"], **CONN
        )
        LlmopsQueryOperator(
            task_id="no_such_connection", questions=["anything"], llmops_conn_id="llmops_no_such_connection"
        )

    pipeline_dag = pipeline()
'''
