"""llmops_ingest: ingest sources into a collection, sharded over mapped tasks, then emit the collection's asset.

Thin by design: every step is a ``llmops_cli.entry.ingest`` call, the same ones ``llmops ingest`` runs locally.

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

import tempfile
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset, AssetAlias, Param, dag, task

from llmops_cli.entry import ingest as ingest_entry
from llmops_cli.entry.dag_support import (
    COLLECTION_PATTERN,
    COLLECTIONS_ALIAS,
    OUTCOME_XCOM_KEY,
    check_sources_exist,
    collection_uri,
    ingest_outcome,
    ingest_summary,
    local_sources,
    location_schema,
    resolve_params,
    short_ledger,
    task_workspace,
    writer_task_args,
)

OPT_STR = ["null", "string"]
# an embedded store's writer of another run, DAG or local command: wait for it (the task holds a worker slot while it
# waits, unless the pool serialises the tasks first) rather than fail and retry
WRITER_WAIT_S = 1800.0


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
    @task
    def plan(params=None, ti=None) -> list[list[str]]:
        params = resolve_params(params)
        check_sources_exist(params)
        with task_workspace(params) as ws, tempfile.TemporaryDirectory(prefix="llmops-sources-") as tmp:
            sources = local_sources(params["sources"], Path(tmp))
            shards, skipped_paths = ingest_entry.plan_ingest(
                ws.settings, sources, globs=params["glob"] or None, shards=params["shards"]
            )
            if not shards:
                raise ValueError(
                    f"no files to ingest under {params['sources']}"
                    + (f" matching {params['glob']}" if params["glob"] else "")
                )
            source_ids = [sid for shard in shards for sid in shard]
            before, _total = ingest_entry.ingest_ledger(ws, ws.settings.store.collection, source_ids)
        ti.xcom_push(key="ledger_before", value=short_ledger(before))
        ti.xcom_push(key="skipped_paths", value=skipped_paths)  # finalize's full cleanup keeps what lies behind them
        print(f"{sum(map(len, shards))} sources in {len(shards)} shard(s) from {', '.join(params['sources'])}")
        return shards

    @task(retries=2, retry_delay=timedelta(seconds=5), **writer_task_args())
    def ingest_shard(source_ids: list[str], params=None) -> dict:
        params = resolve_params(params)
        with task_workspace(params) as ws, tempfile.TemporaryDirectory(prefix="llmops-sources-") as tmp:
            report = ingest_entry.ingest(
                ws,
                local_sources(params["sources"], Path(tmp), only=set(source_ids)),
                collection=ws.settings.store.collection,
                globs=params["glob"] or None,
                cleanup="incremental",
                only=source_ids,
                wait_lock=WRITER_WAIT_S,
            )
        d = report.to_dict()
        print(f"shard of {len(source_ids)} sources: {d['sources']}, chunks added {d['chunks_added']}")
        return {
            k: d[k]
            for k in ("collection", "sources", "chunks_added", "chunks_removed", "chunks_total", "seconds", "skipped")
        }

    @task(outlets=[AssetAlias(COLLECTIONS_ALIAS)], **writer_task_args())  # a full cleanup removes sources
    def finalize(reports, shards, params=None, outlet_events=None, ti=None) -> dict:
        source_ids = [sid for shard in shards for sid in shard]
        removed = 0
        with task_workspace(resolve_params(params)) as ws:
            collection = ws.settings.store.collection
            if params["cleanup"] == "full":
                skipped_paths = ti.xcom_pull(task_ids="plan", key="skipped_paths") or []
                removed = ingest_entry.remove_missing_sources(ws, collection, source_ids, skipped_paths=skipped_paths)
            # the store's ledger, not the sum of what each shard's last try did (a retry may have found its work done)
            after, total = ingest_entry.ingest_ledger(ws, collection, source_ids)
        before = ti.xcom_pull(task_ids="plan", key="ledger_before") or {}
        summary = ingest_summary(
            collection,
            source_ids,
            before,
            short_ledger(after),
            list(reports),
            sources_removed=removed,
            chunks_total=total,
        )
        outlet_events[AssetAlias(COLLECTIONS_ALIAS)].add(Asset(collection_uri(collection)), extra=summary)
        result = ingest_outcome(summary)
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value={**result, "summary": summary})
        print(
            f"collection {collection}: {summary}"
            + (f"; PARTIAL: {result['message']}" if result["status"] == "partial" else "")
        )
        return summary

    shards = plan()
    finalize(ingest_shard.expand(source_ids=shards), shards)


llmops_ingest()
