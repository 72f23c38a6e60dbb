"""Example airflow DAG: GitHub issues into the ``team-kb`` collection, every 2 hours.

The export is the JSON ``gh issue list --json number,title,body,state,url,labels --limit 1000`` prints (or the
REST API's list of issues). A TaskFlow task reads it and returns the issues; ``@llmops_task.ingest`` ingests them as
records (one document per issue) under the source id ``github-issues.jsonl``: an unchanged export changes nothing,
a changed one replaces that source's chunks. The records stay inside the task: XCom gets only the summary.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset, dag

from llmops_cli.airflow.decorators import llmops_task
from llmops_cli.entry.dag_support import collection_uri

EXPORT = os.environ.get("LLMOPS_EXAMPLE_GITHUB_EXPORT", "/srv/exports/github/issues.json")
REPO = os.environ.get("LLMOPS_EXAMPLE_GITHUB_REPO", "apache/airflow")
COLLECTION = os.environ.get("LLMOPS_EXAMPLE_COLLECTION", "team-kb")


@dag(
    dag_id="llmops_example_github_issues",
    schedule=timedelta(hours=2),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "example"],
    doc_md=__doc__,
)
def github_issues():
    export = BashOperator(
        task_id="export_issues",
        bash_command=(
            f"gh issue list --repo {REPO} --state all --limit 1000 "
            f"--json number,title,body,state,url,labels > {EXPORT}.tmp && mv {EXPORT}.tmp {EXPORT}"
        ),
    )

    @llmops_task.ingest(
        collection=COLLECTION,
        records_name="github-issues",
        outlets=[Asset(collection_uri(COLLECTION))],
        retries=2,
        retry_delay=timedelta(minutes=1),
    )
    def issues() -> list[dict]:
        with open(EXPORT, encoding="utf-8") as f:
            return json.load(f)

    export >> issues()


github_issues()
