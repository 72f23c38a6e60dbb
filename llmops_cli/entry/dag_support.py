"""Run-time glue for the DAGs shipped in ``llmops_cli/dags``: DAG params -> settings and a workspace, paths, asset
URIs, the collection-name pattern, summaries and outcomes.

The DAG side of the entry layer: kept out of the DAG files so they stay thin (Airflow parses them every few seconds)
and so this is unit-tested. Nothing here imports Airflow.

Paths in DAG params (sources, input, output, dataset, config...) that are relative resolve against ONE project
root, never the worker's working directory (Airflow runs tasks in AIRFLOW_HOME or a temporary folder): the folder
named by ``$LLMOPS_PROJECT_DIR`` on the workers, else the folder the config file in use belongs to (the folder of
``llmops.yaml``, or the parent of ``configs/llmops.yaml``). With neither, a relative path is an error that says so.

A DAG's last task pushes its outcome to XCom under ``llmops_outcome`` ({"status": "ok" | "partial", "message"}):
``llmops trigger-dag --wait`` / ``runs wait`` exit 3 on a successful run whose outcome is partial (an ingest that
skipped files, a batch where some rows failed), as the local commands do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from llmops_cli.core.collection_meta import MANIFEST_SUFFIX
from llmops_cli.settings import PROJECT_DIR_ENV, Settings, load_settings
from llmops_cli.settings import project_root as settings_project_root
from llmops_cli.wiring import Workspace

ASSET_SCHEME = "llmops"  # Airflow 3 accepts custom schemes (only "airflow" is reserved)
COLLECTIONS_ALIAS = "llmops-collections"  # the ingest DAG attaches each updated collection's asset to it
OUTCOME_XCOM_KEY = "llmops_outcome"  # read by the CLI after a successful run (exit 3 when "partial")
# DAG params that hold paths on the workers (one path, or a list of them)
PATH_PARAMS = ("sources", "input", "output", "template", "schema", "run_dir", "dataset", "config")

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


def project_root(config: str | None = None) -> tuple[Path | None, str]:
    """The folder relative paths in DAG params resolve against, and where that choice came from (for messages):
    settings.project_root, with the run's ``config`` param when it is an absolute path."""
    cfg = (
        Path(config).expanduser()
        if config and Path(config).expanduser().is_absolute() and Path(config).expanduser().is_file()
        else None
    )
    return settings_project_root(cfg)


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The run's params with every path in PATH_PARAMS made absolute against the project root (see the module doc).
    Absolute paths are kept; a relative one without a project root raises a ValueError that says what to set."""
    params = dict(params or {})
    relative = [(k, v) for k in PATH_PARAMS for v in _paths(params.get(k)) if not Path(v).expanduser().is_absolute()]
    if not relative:
        return params
    cfg = params.get("config")
    root, why = project_root(cfg if isinstance(cfg, str) else None)
    if root is None:
        key, value = relative[0]
        raise ValueError(
            f"param {key}: relative path {value!r} needs a project root to resolve against (the task's working "
            f"directory, {os.getcwd()}, is Airflow's, not yours): set {PROJECT_DIR_ENV} on the Airflow workers "
            "or LLMOPS_CONFIG to the project's config file, or pass absolute paths"
        )

    def absolute(v: str) -> str:
        p = Path(v).expanduser()
        return str(p if p.is_absolute() else (root / p).resolve())

    for k in PATH_PARAMS:
        v = params.get(k)
        if isinstance(v, str) and v:
            params[k] = absolute(v)
        elif isinstance(v, list):
            params[k] = [absolute(x) if isinstance(x, str) and x else x for x in v]
    params["_project_root"] = f"{root} ({why})"
    return params


def _paths(v: Any) -> list[str]:
    if isinstance(v, str) and v:
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str) and x]
    return []


def check_sources_exist(params: dict[str, Any]) -> None:
    """Fail with the absolute paths looked at (and the project root they came from) when a source is missing."""
    missing = [p for p in _paths(params.get("sources")) if not Path(p).exists()]
    if missing:
        root = params.get("_project_root")
        raise FileNotFoundError(
            f"source(s) not found on the worker: {', '.join(missing)}"
            + (f" (relative paths resolve against {root})" if root else "")
        )


def settings_from_params(params: dict[str, Any] | None) -> Settings:
    """Effective settings for a task: config file (param ``config``, $LLMOPS_CONFIG, ...), env, then the run's
    params as flags (None = not given). Same precedence as the CLI."""
    params = dict(params or {})
    config = resolve_params({"config": params.get("config")}).get("config")  # only the path this needs
    flags = {key: params.get(name) for name, key in PARAM_TO_SETTING.items() if params.get(name) not in (None, "")}
    return load_settings(config or None, flags=flags).settings


def task_workspace(params: dict[str, Any] | None, *, params_as_flags: bool = True) -> Workspace:
    """A task's workspace (use it in a ``with`` block): settings from the run's params (``settings_from_params``), or
    with ``params_as_flags=False`` from its config file only (a DAG whose params are not settings)."""
    if params_as_flags:
        return Workspace(settings_from_params(params))
    config = resolve_params({"config": (params or {}).get("config")}).get("config")
    return Workspace(load_settings(config or None).settings)


def outcome(partial: str | None) -> dict[str, str]:
    """The value a DAG's last task pushes under OUTCOME_XCOM_KEY: partial (with why) or ok."""
    return {"status": "partial", "message": partial} if partial else {"status": "ok", "message": ""}


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
    """True unless store.host is configured (at DAG parse time). An embedded Chroma (PersistentClient) is not
    safe for concurrent writers from several processes, so mapped writes then run one at a time. A bad config
    counts as embedded: the safe choice."""
    try:
        return not load_settings(None).settings.store.host
    except Exception:  # noqa: BLE001 - parse time must never fail the DAG file
        return True


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
