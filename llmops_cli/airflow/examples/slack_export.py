"""Example airflow DAG: a Slack export (the unzipped folder: ``<channel>/<YYYY-MM-DD>.json`` files) into the
``team-kb`` collection, daily. Each thread becomes one document (llmops's Slack loader); a day file already ingested
and unchanged is skipped, so a daily run only embeds the new days.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Asset, dag

from llmops_cli.airflow.operators import LlmopsIngestOperator
from llmops_cli.entry.dag_support import collection_uri

EXPORT = os.environ.get("LLMOPS_EXAMPLE_SLACK_EXPORT", "/srv/exports/slack")
COLLECTION = os.environ.get("LLMOPS_EXAMPLE_COLLECTION", "team-kb")


@dag(
    dag_id="llmops_example_slack_export",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "example"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
)
def slack_export():
    LlmopsIngestOperator(
        task_id="ingest_slack",
        sources=[EXPORT],
        glob=["*/*.json"],
        collection=COLLECTION,
        outlets=[Asset(collection_uri(COLLECTION))],
    )


slack_export()
