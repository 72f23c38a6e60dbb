"""Run-time glue for the DAGs shipped in ``llmops_cli/dags``: DAG params -> settings and a workspace, paths, asset
URIs, the collection-name pattern, summaries and outcomes.

The DAG side of the entry layer: kept out of the DAG files so they stay thin (Airflow parses them every few seconds)
and so this is unit-tested. Nothing here imports Airflow.

Paths in DAG params (sources, input, output, dataset, config...) are locations every worker can reach: an ABSOLUTE
path (on a shared folder) or a URL (``file://``, ``s3://``, ``gs://``... through fsspec; ``core/locations.py``). A
relative path is refused when the run is triggered (each path param's JSON schema carries LOCATION_PATTERN, which
Airflow checks when it creates the run), and again by ``resolve_params`` in the task: on a multi-worker Airflow a
relative path would resolve against one worker's working directory, a folder the others and the CLI do not share.
``resolve_params`` turns ``file://`` URLs into local paths and copies a remote input FILE (input, dataset,
template, schema, config) to a local copy the task reads; remote ``sources`` folders and ``output`` are left as URLs
for the DAG that reads (``local_sources``) or writes (``publish_result``) them.

Results are written where the params say and never replace an earlier result: ``publish_result`` writes a temporary
name and renames it without clobbering (or puts one object, on an object store); a target that exists is refused
(exit 10 in the task's error), unless it already holds the same bytes (a retried task).

A DAG's last task pushes its outcome to XCom under ``llmops_outcome`` ({"status": "ok" | "partial", "message",
"summary"}; an eval whose gate failed pushes "failed" before failing the run):
``llmops trigger-dag --wait`` / ``runs wait`` exit 3 on a successful run whose outcome is partial (an ingest that
skipped files, a batch where some rows failed), as the local commands do.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops_cli.core.collection_meta import MANIFEST_SUFFIX
from llmops_cli.core.locations import (
    LOCATION_HELP,
    LOCATION_PATTERN,
    base_name,
    is_remote,
    local_path,
    location_problem,
    staging_key,
)
from llmops_cli.entry.ingest import local_sources  # noqa: F401 - the ingest DAG's glue, re-exported
from llmops_cli.settings import Settings, load_settings, project_root
from llmops_cli.wiring import Workspace

ASSET_SCHEME = "llmops"  # Airflow 3 accepts custom schemes (only "airflow" is reserved)
COLLECTIONS_ALIAS = "llmops-collections"  # the ingest DAG attaches each updated collection's asset to it
OUTCOME_XCOM_KEY = "llmops_outcome"  # read by the CLI after a successful run (exit 3 when "partial")
# DAG params that hold paths on the workers (one path, or a list of them)
PATH_PARAMS = ("sources", "input", "output", "template", "schema", "run_dir", "dataset", "config")
# ... of which these name one input file: a remote one is copied to the worker before the task reads it
INPUT_FILE_PARAMS = ("input", "template", "schema", "dataset", "config")
# ... and these must be local (a folder the workers share): a URL is refused
LOCAL_ONLY_PARAMS = ("run_dir",)
# the Airflow pool (1 slot) tasks writing an embedded store run in when the DAG processor's environment names it
# (writer_task_args; adapters/airflow/ops.py:LLMOPS_POOL, created by `llmops pools ensure-llmops`)
EMBEDDED_STORE_POOL = "llmops_embedded_store"
POOL_ENV = "LLMOPS_EMBEDDED_STORE_POOL"

# core/collection_meta.py's name rule (collection_name_problem) as a JSON-schema pattern for DAG params, so a bad name
# is refused when the run is triggered; tests/unit/test_dag_support.py holds the two to the same answers.
COLLECTION_PATTERN = (
    r"^(?!.*\.\.)"  # no '..'
    r"(?!\d{1,3}(\.\d{1,3}){3}$)"  # not an IPv4 address
    rf"(?!.*{re.escape(MANIFEST_SUFFIX)}$)"  # the source ledger's suffix is reserved
    r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$"  # 3-512 characters, letters or digits at both ends
)

# DAG param name -> dotted settings key (the same keys as command-line flags)
PARAM_TO_SETTING = {
    "collection": "store.collection",
    "chunker": "chunking.strategy",
    "chunk_size": "chunking.size",
    "chunk_overlap": "chunking.overlap",
    "k": "retrieval.k",
    "mode": "retrieval.mode",
}


def collection_uri(collection: str) -> str:
    return f"{ASSET_SCHEME}://collections/{collection}"


def collection_from_uri(uri: str) -> str | None:
    prefix = f"{ASSET_SCHEME}://collections/"
    return uri[len(prefix) :] or None if uri.startswith(prefix) else None


def location_schema(description: str) -> dict[str, Any]:
    """JSON-schema keywords for a string param holding a location: the pattern refuses relative paths when the run
    is triggered, and the description (shown in Airflow's 400 message and by `llmops dags show`) says why."""
    return {"pattern": LOCATION_PATTERN, "description": f"{description} Must be {LOCATION_HELP}."}


def resolve_params(params: dict[str, Any] | None, *, fetch_dir: Path | None = None) -> dict[str, Any]:
    """The run's params with their locations checked and made readable here (see the module doc): a relative path
    raises a ValueError that says what to pass instead; ``file://`` URLs become local paths; a remote input file is
    copied under ``fetch_dir`` (default: a folder of the system's temporary directory, named after the URL, so every
    task of a run reads it at the same local path)."""
    params = dict(params or {})
    for key in PATH_PARAMS:
        for value in _paths(params.get(key)):
            problem = location_problem(value)
            if problem is None and key in LOCAL_ONLY_PARAMS and is_remote(value):
                problem = f"{value!r} is a remote URL; {key} must be an absolute path of a folder the workers share"
            if problem:
                raise ValueError(f"param {key}: {problem}")

    def readable(key: str, value: str) -> str:
        local = local_path(value)
        if local is not None:
            return local
        if key not in INPUT_FILE_PARAMS:
            return value  # sources / output: the DAG reads or writes the URL itself
        from llmops_cli.adapters.storage import fetch_file

        base = fetch_dir if fetch_dir is not None else Path(tempfile.gettempdir()) / "llmops-inputs"
        return str(fetch_file(value, base / staging_key(value) / base_name(value)))

    for k in PATH_PARAMS:
        v = params.get(k)
        if isinstance(v, str) and v:
            params[k] = readable(k, v)
        elif isinstance(v, list):
            params[k] = [readable(k, x) if isinstance(x, str) and x else x for x in v]
    return params


def _paths(v: Any) -> list[str]:
    if isinstance(v, str) and v:
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str) and x]
    return []


def check_sources_exist(params: dict[str, Any]) -> None:
    """Fail with the paths looked at when a local source is missing (a URL's absence is found when it is read)."""
    missing = [p for p in _paths(params.get("sources")) if not is_remote(p) and not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
            f"source(s) not found on the worker: {', '.join(missing)} (pass absolute paths of a folder every worker "
            "can read, or URLs)"
        )


def staging_output(output: str) -> str:
    """Where a task writes a result before ``publish_result`` puts it at ``output``: a local path named after the
    location, the same on every worker (a batch's run key includes it)."""
    return str(Path(tempfile.gettempdir()) / "llmops-outputs" / staging_key(output) / base_name(output))


def sibling(location: str, name: str) -> str:
    """The location ``name`` beside ``location`` (the errors file beside a batch's results)."""
    return location.rsplit("/", 1)[0] + "/" + name


def publish_result(local: str | Path, location: str) -> str:
    """Put the finished file ``local`` at ``location``, never replacing an earlier result (adapters.storage)."""
    from llmops_cli.adapters.storage import publish

    return publish(Path(local), location)


def settings_from_params(params: dict[str, Any] | None) -> Settings:
    """Effective settings for a task: config file (param ``config``, $LLMOPS_CONFIG, ...), env, then the run's
    params as flags (None = not given). Same precedence as the CLI."""
    params = dict(params or {})
    config = resolve_params({"config": params.get("config")}).get("config")  # only the location this needs
    flags = {key: params.get(name) for name, key in PARAM_TO_SETTING.items() if params.get(name) not in (None, "")}
    return _on_this_worker(load_settings(config or None, flags=flags).settings, config)


def _on_this_worker(settings: Settings, config: str | None) -> Settings:
    """A config file named by a run's param gives settings, not a project folder: relative settings paths
    (data_dir's reports and caches, an embedded store) stay the worker's ($LLMOPS_PROJECT_DIR, else the folder of
    the worker's own config, else its working directory), never beside a shared input that other runs read."""
    if config:
        settings._root = project_root(None)[0]
    return settings


def task_workspace(params: dict[str, Any] | None, *, params_as_flags: bool = True) -> Workspace:
    """A task's workspace (use it in a ``with`` block): settings from the run's params (``settings_from_params``), or
    with ``params_as_flags=False`` from its config file only (a DAG whose params are not settings)."""
    if params_as_flags:
        return Workspace(settings_from_params(params))
    config = resolve_params({"config": (params or {}).get("config")}).get("config")
    return Workspace(_on_this_worker(load_settings(config or None).settings, config))


def outcome(partial: str | None) -> dict[str, str]:
    """The value a DAG's last task pushes under OUTCOME_XCOM_KEY: partial (with why) or ok."""
    return {"status": "partial", "message": partial} if partial else {"status": "ok", "message": ""}


def reported(result: dict[str, str], summary: dict[str, Any]) -> dict[str, Any]:
    """The value every llmops DAG pushes under OUTCOME_XCOM_KEY, one shape for all: {status, message, summary}
    (read back by `llmops trigger-dag --wait --json`, `runs get` and `xcom get`)."""
    return {**result, "summary": summary}


def eval_summary(report: dict[str, Any], report_path: str) -> dict[str, Any]:
    """The eval DAG's summary: what was evaluated, the metric means, the gates and where the full report is (no
    per-question rows: those stay in the report file)."""
    if report.get("kind") == "retrieval_check":
        keep = ("collection", "kind", "questions", "answered", "hit_rate")
        return {**{k: report.get(k) for k in keep}, "report": report_path}
    rows = report.get("rows")
    return {
        "collection": (report.get("config") or {}).get("collection"),
        "kind": "evaluation",
        "questions": len(rows) if isinstance(rows, list) else (report.get("dataset") or {}).get("rows"),
        "metrics": report.get("metrics") or {},
        "gates": report.get("gates") or [],
        "error_rows": report.get("error_rows") or 0,
        "eval_run_id": report.get("run_id"),
        "report": report_path,
    }


def matrix_summary(doc: dict[str, Any], report_path: str) -> dict[str, Any]:
    """The eval DAG's summary of a models x prompts matrix (``MatrixReport.to_dict()``): the leaderboard's order with
    each combination's metric means, the winners, the recorded runs and where the full report is."""
    board = doc.get("leaderboard") or {}
    return {
        "kind": "matrix",
        "matrix_id": doc.get("matrix_id"),
        "questions": (doc.get("dataset") or {}).get("rows"),
        "rank_by": board.get("rank_by"),
        "leaderboard": [
            {
                "rank": r["rank"],
                "label": r["label"],
                "run_id": r["run_id"],
                "metrics": {m: v.get("mean") for m, v in r["metrics"].items()},
            }
            for r in board.get("rows") or []
        ],
        "winners": board.get("winners") or {},
        "runs": doc.get("runs") or [],
        "error_rows": doc.get("error_rows") or 0,
        "report": report_path,
    }


def eval_outcome(summary: dict[str, Any]) -> dict[str, str]:
    """failed (a quality gate was not met: the task then fails the run), partial (some questions had errors, as
    `llmops eval` exits 3), else ok."""
    failed = [f"{g['metric']} {g['check']}" for g in summary.get("gates") or [] if not g.get("passed")]
    if failed:
        return {"status": "failed", "message": f"quality gate(s) failed: {'; '.join(failed)}"}
    if summary.get("error_rows"):
        return outcome(
            f"{summary['error_rows']} of {summary['questions']} questions had errors; their metrics are left out "
            f"of the means (see {summary['report']})"
        )
    return outcome(None)


def feedback_outcome(summary: dict[str, Any], planned: int) -> dict[str, str]:
    """partial when answers planned for review were left unreviewed (a judge error or failed call, as `llmops
    feedback review` exits 3, or a review batch that failed for good), else ok."""
    unreviewed = max(0, planned - summary.get("reviewed", 0))
    if not unreviewed and not summary.get("errors") and not summary.get("failed"):
        return outcome(None)
    lost = planned - summary.get("answers", 0)  # in batches whose task failed: no report came back
    why = [
        f"{n} {what}"
        for n, what in (
            (summary.get("errors", 0), "without a usable verdict"),
            (summary.get("failed", 0), "whose judge call failed"),
            (lost, "in review batches that failed"),
        )
        if n
    ]
    return outcome(f"{unreviewed} of {planned} answer(s) left unreviewed ({', '.join(why) or 'see the task logs'})")


def short_ledger(ledger: dict[str, list[str]]) -> dict[str, list[str]]:
    """source id -> chunk ids, shortened (16 hex of sha256) to keep the XCom small; still unique in practice."""
    return {sid: [c[:16] for c in ids] for sid, ids in ledger.items()}


def ingest_summary(
    collection: str,
    source_ids: list[str],
    before: dict[str, list[str]],
    after: dict[str, list[str]],
    reports: list[dict[str, Any]],
    *,
    sources_removed: int,
    chunks_total: int | None,
) -> dict[str, Any]:
    """The ingest run's summary from the store's own ledger (manifest: source id -> chunk ids) before the run and now,
    not from what each shard's last try did: a retried shard whose first try already wrote (then lost contact with the
    API server) reports 0 added, yet its chunks are in the store and were added by this run."""
    b = {c for sid in source_ids for c in (before.get(sid) or [])}
    a = {c for sid in source_ids for c in (after.get(sid) or [])}
    reported = {d["source"]: d.get("reason", "") for r in reports for d in (r.get("skipped") or [])}
    # skipped: every source a shard reported skipping (its older record may stay in the ledger), plus sources of the
    # run the ledger lacks beyond those (a report may name a source by path, so count, do not only match ids)
    skipped = [{"source": src, "reason": why} for src, why in reported.items()]
    ledger_missing = [sid for sid in source_ids if sid not in after]
    absent_reported = sum(1 for src in reported if src not in after)
    unexplained = [sid for sid in ledger_missing if sid not in reported][
        : max(0, len(ledger_missing) - absent_reported)
    ]
    skipped += [{"source": sid, "reason": "not in the store after the run"} for sid in unexplained]
    return {
        "collection": collection,
        "sources": len(source_ids),
        "sources_in_store": sum(1 for sid in source_ids if sid in after),
        "chunks": len(a),  # chunks of this run's sources now in the store
        "chunks_added": len(a - b),
        "chunks_removed": len(b - a),
        "chunks_total": chunks_total,
        "sources_removed": sources_removed,
        "skipped": len(skipped),
        "skipped_sources": skipped[:50],
    }


def ingest_outcome(summary: dict[str, Any]) -> dict[str, str]:
    if not summary["skipped"]:
        return outcome(None)
    shown = "; ".join(f"{d['source']} ({d['reason']})" for d in summary["skipped_sources"][:5])
    more = f" and {summary['skipped'] - 5} more" if summary["skipped"] > 5 else ""
    return outcome(f"{summary['skipped']} of {summary['sources']} source(s) skipped: {shown}{more}")


def batch_outcome(summary: dict[str, Any]) -> dict[str, str]:
    """ok / partial for a merged batch; raises when every request failed (the run must fail, not succeed)."""
    requests, answered, errors = summary.get("requests") or 0, summary.get("answered") or 0, summary.get("errors") or 0
    kinds = ", ".join(f"{k} {n}" for k, n in (summary.get("errors_by_kind") or {}).items())
    if requests and not answered and errors:
        first = (summary.get("error_samples") or [{}])[0]
        kept = (
            f"; the earlier results file {summary['output_kept']} was left as it was"
            if summary.get("output_kept")
            else ""
        )
        raise RuntimeError(
            f"all {requests} request(s) failed ({kinds or 'errors'}); first: {first.get('error', first)}{kept}"
        )
    if errors:
        return outcome(f"{errors} of {requests} request(s) failed ({kinds}); see {summary.get('errors_file')}")
    return outcome(None)


def store_is_embedded() -> bool:
    """True when the store is the embedded Chroma (no store.url / store.host), read at DAG parse time. An embedded
    Chroma (PersistentClient) is not safe for concurrent writers from several processes, so its writers then run
    one at a time (``writer_task_args``). A bad config counts as embedded: the safe choice."""
    try:
        return load_settings(None).settings.store.backend == "chroma"
    except Exception:  # noqa: BLE001 - parse time must never fail the DAG file
        return True


def writer_task_args(embedded: bool | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """@task arguments for a task that writes the vector store, decided at DAG parse time.

    Embedded store: one mapped task at a time within a run, and across runs and DAGs the store's file lock
    (core/store_lock.py: a writer waits for the one before, as local `llmops` commands do). When the DAG processor's
    environment names the pool (``$LLMOPS_EMBEDDED_STORE_POOL``, normally ``llmops_embedded_store``, one slot:
    `llmops pools ensure-llmops` creates it), these tasks also run in it, so a waiting writer holds no worker slot.
    The pool is opt-in because Airflow never schedules a task whose pool does not exist. A server store (store.url):
    no pool and no limit, writes run in parallel."""
    if embedded is None:
        embedded = store_is_embedded()
    if not embedded:
        return {}
    pool = (os.environ if environ is None else environ).get(POOL_ENV, "").strip()
    return {"max_active_tis_per_dagrun": 1, **({"pool": pool} if pool else {})}


def collection_from_events(triggering_asset_events: Any) -> str | None:
    """The collection named by the asset event that started an asset-scheduled run, if any."""
    try:
        for asset, _events in (triggering_asset_events or {}).items():
            name = collection_from_uri(getattr(asset, "uri", str(asset)))
            if name:
                return name
    except Exception:  # noqa: BLE001 - a manual run has no events; the param decides
        return None
    return None


def default_collection() -> str:
    """store.collection when a DAG file is parsed (the asset the eval DAG is scheduled on)."""
    try:
        return load_settings(None).settings.store.collection
    except Exception:  # noqa: BLE001 - parse time must never fail the DAG file
        return "docs"


def write_report(settings: Settings, dag_id: str, run_id: str | None, summary: dict[str, Any]) -> str:
    """A DAG's summary as JSON under <data_dir>/airflow-reports/<dag_id>/<run_id>.json; returns the path."""
    folder = settings.data_path / "airflow-reports" / dag_id
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "run")
    path = folder / f"{safe}.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return str(path)
