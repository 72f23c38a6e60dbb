"""The ``llmops`` Airflow connection as llmops settings (pure: no Airflow import, unit-tested).

A connection of type ``llmops`` (default id ``llmops_default``) carries what differs between deployments:

- ``host``: the store URL (``http://chroma:8000``, ``postgresql://user@db/llmops``; empty: the embedded store);
  the connection's ``login`` / ``password`` are NOT put into it: a store URL carries its own credentials;
- ``password``: the LLM API key (``llm.api_key``): kept secret by Airflow's secrets backends and masked in logs;
- ``extra`` (JSON): ``state_url``, ``llm_model``, ``llm_api_base``, ``collection``, ``config`` (an llmops config file
  location), and ``settings``: any other dotted settings keys (``{"retrieval.k": 8}``).

The values become the ``LLMOPS_*`` environment of the settings load (``environment_for``), so precedence is the
CLI's: a run's params (as flags) > the connection > the worker's own LLMOPS_* env > the config file > defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CONN_TYPE = "llmops"
DEFAULT_CONN_ID = "llmops_default"

# extra key -> dotted settings key
EXTRA_TO_SETTING = {
    "store_url": "store.url",
    "state_url": "state.url",
    "llm_model": "llm.model",
    "llm_api_base": "llm.api_base",
    "collection": "store.collection",
}


def env_name(dotted: str) -> str:
    """``llm.api_key`` -> ``LLMOPS_LLM_API_KEY`` (settings.py's rule for env names)."""
    return "LLMOPS_" + dotted.replace(".", "_").upper()


def parse_extra(extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        data = json.loads(extra)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the llmops connection's extra is not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError("the llmops connection's extra must be a JSON object")
    return data


def settings_from_connection(
    *, host: str | None = None, password: str | None = None, extra: str | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Dotted settings keys from a connection's fields (None and empty values left out)."""
    data = parse_extra(extra)
    out: dict[str, Any] = {}
    if host:
        out["store.url"] = host
    for key, dotted in EXTRA_TO_SETTING.items():
        if data.get(key) not in (None, ""):
            out[dotted] = data[key]
    for dotted, value in (data.get("settings") or {}).items():
        if value not in (None, ""):
            out[dotted] = value
    if password:
        out["llm.api_key"] = password
    unknown = set(data) - set(EXTRA_TO_SETTING) - {"settings", "config"}
    if unknown:
        raise ValueError(
            f"unknown key(s) in the llmops connection's extra: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted([*EXTRA_TO_SETTING, 'config', 'settings']))})"
        )
    return out


def environment_for(settings: Mapping[str, Any]) -> dict[str, str]:
    """The LLMOPS_* variables that give these settings."""
    return {env_name(k): v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}


def config_from_connection(extra: str | Mapping[str, Any] | None) -> str | None:
    return parse_extra(extra).get("config") or None


def ui_field_behaviour() -> dict[str, Any]:
    """How Airflow's connection form shows an llmops connection."""
    return {
        "hidden_fields": ["port", "login", "schema"],
        "relabeling": {"host": "Store URL", "password": "LLM API key"},
        "placeholders": {
            "host": "http://chroma:8000 or postgresql://user:pass@db/llmops (empty: embedded store)",
            "extra": json.dumps(
                {"state_url": "postgresql://user:pass@db/llmops", "llm_model": "openai/gpt-4o-mini", "settings": {}}
            ),
        },
    }
