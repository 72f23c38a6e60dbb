"""llmops_ingest: ingest sources into a collection, sharded over mapped tasks, then emit the collection's asset.

Thin by design: every step is a ``llmops_cli.entry.ingest`` call, the same ones ``llmops ingest`` runs locally.

- ``plan`` splits the sources into shards of similar size (source ids) and notes the store's ledger (each source's
  chunk ids) before the run;
- ``ingest_shard`` is mapped (``.expand``) over the shards, with retries; each one only writes its own sources;
- ``finalize`` removes sources that are gone when ``cleanup`` is ``full``, builds the summary from the store's ledger
  (true across retried shards), emits an event for the asset ``llmops://collections/<collection>`` (through the
  ``llmops-collections`` alias: the collection is a run param) with the summary as its extra, and pushes the
  outcome: ``partial`` when sources were skipped, so ``llmops trigger-dag --wait`` exits 3 like ``llmops ingest``.

Relative ``sources`` resolve against the project root ($LLMOPS_PROJECT_DIR on the workers, else the config file's
project folder), never the task's working directory.

Concurrency: an embedded Chroma (PersistentClient, store.host unset) is NOT safe for concurrent writers from
several processes, so the mapped shards then run one at a time (max_active_tis_per_dagrun=1, decided when this
file is parsed). With a Chroma server (store.host set) the shards run in parallel. One run at a time per DAG.

Params are validated (JSON schema) when the run is triggered: bad conf is rejected with the server's message.
Settings come from the config file (param ``config`` or $LLMOPS_CONFIG), LLMOPS_* env of the Airflow workers,
then these params.
"""

from __future__ import annotations

from datetime import timedelta

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
    resolve_params,
    short_ledger,
    store_is_embedded,
    task_workspace,
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
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="Files or folders to ingest (paths on the workers; relative ones resolve against "
            "$LLMOPS_PROJECT_DIR).",
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
        "config": Param(None, type=OPT_STR, description="llmops config file on the workers (default: $LLMOPS_CONFIG)."),
    },
)
def llmops_ingest():
    @task
    def plan(params=None, ti=None) -> list[list[str]]:
        params = resolve_params(params)
        check_sources_exist(params)
        with task_workspace(params) as ws:
            shards, skipped_paths = ingest_entry.plan_ingest(
                ws.settings, params["sources"], globs=params["glob"] or None, shards=params["shards"]
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
        print(
            f"{sum(map(len, shards))} sources in {len(shards)} shard(s); "
            f"sources from {params.get('_project_root') or 'absolute paths'}"
        )
        return shards

    @task(retries=2, retry_delay=timedelta(seconds=5), max_active_tis_per_dagrun=1 if store_is_embedded() else None)
    def ingest_shard(source_ids: list[str], params=None) -> dict:
        params = resolve_params(params)
        with task_workspace(params) as ws:
            report = ingest_entry.ingest(
                ws,
                params["sources"],
                collection=ws.settings.store.collection,
                globs=params["glob"] or None,
                cleanup="incremental",
                only=source_ids,
            )
        d = report.to_dict()
        print(f"shard of {len(source_ids)} sources: {d['sources']}, chunks added {d['chunks_added']}")
        return {
            k: d[k]
            for k in ("collection", "sources", "chunks_added", "chunks_removed", "chunks_total", "seconds", "skipped")
        }

    @task(outlets=[AssetAlias(COLLECTIONS_ALIAS)])
    def finalize(reports, shards, params=None, outlet_events=None, ti=None) -> dict:
        source_ids = [sid for shard in shards for sid in shard]
        removed = 0
        with task_workspace(params) as ws:
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
