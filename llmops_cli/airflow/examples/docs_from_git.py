"""Example airflow DAG: Markdown docs from a git checkout into the ``team-kb`` collection, every 6 hours.

``git pull`` first (a BashOperator), then llmops's ``ingest_group`` (plan -> mapped shards -> finalize) with a full
cleanup, so pages deleted upstream leave the collection too; the finalize task updates the collection's asset, which
starts ``llmops_eval`` when that DAG is scheduled on the same collection.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset, dag

from llmops_cli.airflow.groups import ingest_group
from llmops_cli.entry.dag_support import collection_uri

CHECKOUT = os.environ.get("LLMOPS_EXAMPLE_DOCS_CHECKOUT", "/srv/checkouts/docs")
COLLECTION = os.environ.get("LLMOPS_EXAMPLE_COLLECTION", "team-kb")


@dag(
    dag_id="llmops_example_docs_from_git",
    schedule=timedelta(hours=6),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "example"],
    doc_md=__doc__,
)
def docs_from_git():
    pull = BashOperator(task_id="git_pull", bash_command=f"git -C {CHECKOUT} pull --ff-only")
    docs = ingest_group(
        "docs",
        sources=[CHECKOUT],
        glob=["**/*.md", "**/*.mdx"],
        shards=4,
        cleanup="full",
        collection=COLLECTION,
        outlets=[Asset(collection_uri(COLLECTION))],
    )
    pull >> docs


docs_from_git()
