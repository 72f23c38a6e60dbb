"""Typos in configuration, caught before any work: unknown ``LLMOPS_*`` environment variables and unknown config-file
keys, each named with the closest valid one (``LLMOPS_LLM_MODLE`` -> ``LLMOPS_LLM_MODEL``).

An unknown environment variable would otherwise be ignored in silence (the setting keeps its default); an unknown
file key is refused by the settings, and the warning adds the key that was meant. The valid names come from the
settings models themselves, plus the few variables that are not settings (ENV_NOT_SETTINGS).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops_cli.errors import closest

# Variables llmops reads that are not settings keys (settings keys are LLMOPS_<SECTION>_<KEY>, see settings.py).
# tests/unit/test_config_check.py holds that every LLMOPS_ name the package reads is known here or as a setting.
ENV_NOT_SETTINGS = frozenset(
    {
        "LLMOPS_CONFIG",  # the config file
        "LLMOPS_PROJECT_DIR",  # the project folder relative paths resolve against
        "LLMOPS_DEBUG",  # tracebacks on errors
        "LLMOPS_FORMAT",  # the root --format
        "LLMOPS_AIRFLOW_PROFILE",  # the root --profile
        "LLMOPS_CACHE_DIR",  # embedder model cache
        "LLMOPS_CEILING_DIRECTORIES",  # where the search for a project stops
        "LLMOPS_TOKEN_STORE",  # where `auth login` keeps the token
        "LLMOPS_WAIT_LOCK",  # wait for the store's writer lock
        "LLMOPS_INGEST_SOURCE_ROOT",  # DAG tasks: where relative sources resolve
        "LLMOPS_POOL",  # DAG pools
        "LLMOPS_POOL_DESCRIPTION",
        "LLMOPS_EMBEDDED_STORE_POOL",
        "LLMOPS_FINETUNE_POOL",  # the fine-tuning DAG's pool and queue
        "LLMOPS_FINETUNE_QUEUE",
        "LLMOPS_DEV_HOME",  # llmops dev up
        "LLMOPS_DEV_WORKER_ADDRESS",
        "LLMOPS_LOCAL_AIRFLOW_HOME",
        "LLMOPS_AIRFLOW_VENV",
        "LLMOPS_SERVE_OPTIONS",  # llmops serve hands its options to uvicorn's workers
        "LLMOPS_SERVE_API_KEYS",  # llmops serve
        "LLMOPS_SERVE_CORS_ORIGINS",
        "LLMOPS_SERVE_SLACK_API_BASE",
        "LLMOPS_SERVE_SLACK_BOT_TOKEN",
        "LLMOPS_SERVE_SLACK_SIGNING_SECRET",
        "_LLMOPS_COMPLETE",  # shell completion (Typer sets it)
    }
)
# prefixes of variables that tests, benchmarks and the example DAGs (llmops_cli/airflow/examples) read
ENV_PREFIXES_NOT_SETTINGS = ("LLMOPS_TEST_", "LLMOPS_BENCH_", "LLMOPS_EXAMPLE_")


def setting_keys() -> list[str]:
    """Every dotted settings key (``llm.model``), from the settings models."""
    from llmops_cli.settings import Settings, _leaf_keys  # pydantic: only when a command reads settings

    return _leaf_keys(Settings)


def known_env_vars() -> set[str]:
    from llmops_cli.settings import env_var_for

    return {env_var_for(k) for k in setting_keys()} | set(ENV_NOT_SETTINGS)


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """One message per unknown ``LLMOPS_*`` variable, with the closest known one."""
    known = known_env_vars()
    out = []
    for var in sorted(environ):
        if not var.startswith("LLMOPS_") or var in known or var.startswith(ENV_PREFIXES_NOT_SETTINGS):
            continue
        guess = closest(var, known)
        out.append(f"unknown environment variable {var} (ignored)" + (f"; did you mean {guess}?" if guess else ""))
    return out


def _file_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k == "profiles" and prefix == "airflow.":
            continue  # each profile holds airflow connection keys: checked below
        if isinstance(v, dict):
            keys.extend(_file_keys(v, key + "."))
        else:
            keys.append(key)
    return keys


def unknown_file_keys(data: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Dotted keys of a config file's mapping that are no setting (quoted), each with a did-you-mean or None."""
    valid = set(setting_keys())
    sections = {k.split(".")[0] for k in valid if "." in k}
    keys = _file_keys(data)
    profiles = (data.get("airflow") or {}).get("profiles") if isinstance(data.get("airflow"), dict) else None
    airflow_keys = {k.split(".", 1)[1] for k in valid if k.startswith("airflow.")}
    out = []
    for key in keys:
        if key in valid or key in sections:
            continue
        guess = closest(key, valid)
        out.append((f"'{key}'", f"did you mean '{guess}'?" if guess else None))
    for name, prof in (profiles or {}).items() if isinstance(profiles, dict) else ():
        for k in prof if isinstance(prof, dict) else ():
            if k not in airflow_keys:
                guess = closest(k, airflow_keys)
                out.append((f"'airflow.profiles.{name}.{k}'", f"did you mean '{guess}'?" if guess else None))
    return out


def problems(config_file: Path | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Warnings (one line each) for unknown LLMOPS_* variables and unknown keys in ``config_file``. A file that
    cannot be read or parsed gives none here: loading it reports that as the error it is."""
    environ = os.environ if environ is None else environ
    msgs = unknown_env_vars(environ)
    if config_file is not None:
        import yaml

        try:
            data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        if isinstance(data, dict):
            msgs += [
                f"unknown config key {k} in {config_file}" + (f"; {guess}" if guess else "")
                for k, guess in unknown_file_keys(data)
            ]
    return msgs
