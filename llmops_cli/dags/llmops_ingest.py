"""llmops_ingest: ingest sources into a collection, sharded over mapped tasks, then emit the collection's asset.

Thin by design: every step is a ``llmops_cli.airflow.steps`` call (the steps of ``llmops_cli.airflow``'s
``ingest_group``), over the ``llmops_cli.entry.ingest`` entry points ``llmops ingest`` runs locally.

- ``plan`` splits the sources into shards of similar size (source ids) and notes the store's ledger (each source's
  chunk ids) before the run;
- ``ingest_shard`` is mapped (``.expand``) over the shards, with retries; each one only writes its own sources;
- ``finalize`` removes sources that are gone when ``cleanup`` is ``full``, builds the summary from the store's ledger
  (true across retried shards), emits an event for the asset ``llmops://collections/<collection>`` (through the
  ``llmops-collections`` alias: the collection is a run param) with the summary as its extra, and pushes the
  outcome: ``partial`` when sources were skipped, so ``llmops trigger-dag --wait`` exits 3 like ``llmops ingest``.

``sources`` are absolute paths or URLs every worker can reach (a relative path is refused when the run is
triggered): ``/srv/docs``, ``file:///srv/docs``, ``s3://bucket/docs`` (fsspec; ``s3fs`` on the workers). A remote
URL is copied into a temporary folder by each task (a shard copies only its own files), and its files' source ids
are their URLs (``s3://bucket/docs/a.md``), the same whichever worker read them.

Concurrency: an embedded Chroma (PersistentClient, no store.url) is NOT safe for concurrent writers from several
processes, so the tasks that write it run one at a time within a run, across runs and DAGs (the store's file lock,
and the one-slot pool ``llmops_embedded_store`` when $LLMOPS_EMBEDDED_STORE_POOL names it: see
``dag_support.writer_task_args``), decided when this file is parsed. With a server store (store.url: a Chroma server
or PostgreSQL) the shards run in parallel. One run at a time per DAG.

Params are validated (JSON schema) when the run is triggered: bad conf is rejected with the server's message.
Settings come from the config file (param ``config`` or $LLMOPS_CONFIG), LLMOPS_* env of the Airflow workers,
then these params.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, AssetAlias, Param, dag, task

from llmops_cli.airflow import steps
from llmops_cli.entry.dag_support import (
    COLLECTION_PATTERN,
    COLLECTIONS_ALIAS,
    OUTCOME_XCOM_KEY,
    collection_uri,
    location_schema,
    resolve_params,
    settings_from_params,
    writer_task_args,
)

OPT_STR = ["null", "string"]


@dag(
    dag_id="llmops_ingest",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "sources": Param(
            type="array",
            items={"type": "string", "minLength": 1, **location_schema("A file or folder to ingest.")},
            minItems=1,
            description="Files or folders to ingest: absolute paths or URLs every worker can reach, e.g. "
            '["/srv/docs"] or ["s3://bucket/docs"] (a relative path is refused: it would resolve against a '
            "worker's own working directory).",
        ),
        "collection": Param(
            None, type=OPT_STR, pattern=COLLECTION_PATTERN, description="Collection (default: store.collection)."
        ),
        "chunker": Param(
            None, type=OPT_STR, enum=[None, "auto", "recursive", "headings", "tokens"], description="Chunking strategy."
        ),
        "chunk_size": Param(
            None, type=["null", "integer"], minimum=16, maximum=8192, description="Chunk size in the embedder's tokens."
        ),
        "chunk_overlap": Param(
            None, type=["null", "integer"], minimum=0, maximum=4096, description="Overlap in tokens."
        ),
        "glob": Param([], type="array", items={"type": "string"}, description="Only files matching these globs."),
        "cleanup": Param(
            "incremental",
            type="string",
            enum=["incremental", "full"],
            description="full also removes sources that are gone from the collection.",
        ),
        "shards": Param(4, type="integer", minimum=1, maximum=64, description="How many mapped ingest tasks."),
        "config": Param(
            None, type=OPT_STR, **location_schema("llmops config file for the tasks (default: $LLMOPS_CONFIG).")
        ),
    },
)
def llmops_ingest():
    # the steps are llmops_cli.airflow's (the same ones its ingest_group runs), over the entry points `llmops ingest`
    # runs; this DAG adds its params, the collection's asset event and the outcome
    @task
    def plan(params=None, ti=None) -> list[list[str]]:
        params = resolve_params(params)
        planned = steps.plan_ingest_shards(
            settings_from_params(params), params["sources"], globs=params["glob"] or None, shards=params["shards"]
        )
        ti.xcom_push(key="ledger_before", value=planned["ledger_before"])
        # finalize's full cleanup keeps what lies behind the paths that could not be read
        ti.xcom_push(key="skipped_paths", value=planned["skipped_paths"])
        shards = planned["shards"]
        print(f"{sum(map(len, shards))} sources in {len(shards)} shard(s) from {', '.join(params['sources'])}")
        return shards

    @task(retries=2, retry_delay=timedelta(seconds=5), **writer_task_args())
    def ingest_shard(source_ids: list[str], params=None) -> dict:
        params = resolve_params(params)
        report = steps.ingest_shard(
            settings_from_params(params), params["sources"], source_ids, globs=params["glob"] or None
        )
        print(f"shard of {len(source_ids)} sources: {report['sources']}, chunks added {report['chunks_added']}")
        return report

    @task(outlets=[AssetAlias(COLLECTIONS_ALIAS)], **writer_task_args())  # a full cleanup removes sources
    def finalize(reports, shards, params=None, outlet_events=None, ti=None) -> dict:
        params = resolve_params(params)
        done = steps.finalize_ingest(
            settings_from_params(params),
            params["sources"],
            shards,
            list(reports),
            ledger_before=ti.xcom_pull(task_ids="plan", key="ledger_before") or {},
            cleanup=params["cleanup"],
            skipped_paths=ti.xcom_pull(task_ids="plan", key="skipped_paths") or [],
        )
        summary, result = done.summary, done.outcome
        outlet_events[AssetAlias(COLLECTIONS_ALIAS)].add(Asset(collection_uri(summary["collection"])), extra=summary)
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value={**result, "summary": summary})
        print(
            f"collection {summary['collection']}: {summary}"
            + (f"; PARTIAL: {result['message']}" if result["status"] == "partial" else "")
        )
        return summary

    shards = plan()
    finalize(ingest_shard.expand(source_ids=shards), shards)


llmops_ingest()
