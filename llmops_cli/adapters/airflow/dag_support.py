"""Run-time glue for the DAGs shipped in ``llmops_cli/dags``: DAG params -> settings, asset URIs.

Kept out of the DAG files so they stay thin (Airflow parses them every few seconds) and so this is unit-tested.
Nothing here imports Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.settings import Settings

ASSET_SCHEME = "llmops"  # Airflow 3 accepts custom schemes (only "airflow" is reserved)
COLLECTIONS_ALIAS = "llmops-collections"  # the ingest DAG attaches each updated collection's asset to it

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
    return uri[len(prefix):] or None if uri.startswith(prefix) else None


def settings_from_params(params: dict[str, Any] | None) -> "Settings":
    """Effective settings for a task: config file (param ``config``, $LLMOPS_CONFIG, ...), env, then the run's
    params as flags (None = not given). Same precedence as the CLI."""
    from llmops_cli.settings import load_settings

    params = dict(params or {})
    flags = {key: params.get(name) for name, key in PARAM_TO_SETTING.items() if params.get(name) not in (None, "")}
    return load_settings(params.get("config") or None, flags=flags).settings


def store_is_embedded() -> bool:
    """True unless store.host is configured (at DAG parse time). An embedded Chroma (PersistentClient) is not
    safe for concurrent writers from several processes, so mapped writes then run one at a time. A bad config
    counts as embedded: the safe choice."""
    try:
        from llmops_cli.settings import load_settings

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
        from llmops_cli.settings import load_settings

        return load_settings(None).settings.store.collection
    except Exception:  # noqa: BLE001 - parse time must never fail the DAG file
        return "docs"


def write_report(settings: "Settings", dag_id: str, run_id: str | None, summary: dict[str, Any]) -> str:
    """A DAG's summary as JSON under <data_dir>/airflow-reports/<dag_id>/<run_id>.json; returns the path."""
    import json
    import re

    folder = settings.data_path / "airflow-reports" / dag_id
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "run")
    path = folder / f"{safe}.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return str(path)
