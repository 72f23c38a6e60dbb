"""``LlmopsHook``: an Airflow connection of type ``llmops`` as llmops settings (connection.py says which field is
which). Secrets backends, ``AIRFLOW_CONN_LLMOPS_DEFAULT`` and the UI all work, as for any Airflow connection."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from llmops_cli.airflow.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    config_from_connection,
    environment_for,
    settings_from_connection,
    ui_field_behaviour,
)
from llmops_cli.errors import ConfigError


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LlmopsHook(BaseHook):
    """llmops settings from an Airflow connection. A missing ``llmops_default`` is fine (the workers' config file
    and LLMOPS_* env then say everything); a missing connection named explicitly is a configuration error."""

    conn_name_attr = "llmops_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "llmops"

    def __init__(self, llmops_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llmops_conn_id = llmops_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour()

    def connection_values(self) -> tuple[dict[str, Any], str | None]:
        """(dotted settings keys, config file location) from the connection."""
        try:
            conn = self.get_connection(self.llmops_conn_id)
        except AirflowNotFoundException:
            if self.llmops_conn_id == DEFAULT_CONN_ID:
                return {}, None
            raise ConfigError(
                f"Airflow connection {self.llmops_conn_id!r} not found",
                hint="create it (type llmops: store URL as host, LLM key as password) or pass another llmops_conn_id",
            ) from None
        try:
            values = settings_from_connection(host=conn.host, password=conn.password, extra=conn.extra)
            return values, config_from_connection(conn.extra)
        except ValueError as exc:
            raise ConfigError(f"Airflow connection {self.llmops_conn_id!r}: {exc}") from None

    def get_settings(self, params: Mapping[str, Any] | None = None):
        """Settings for a task: a run's params (dag_support.settings_from_params: collection, k, mode, chunking...,
        config) > this connection > the worker's LLMOPS_* env > the config file > defaults."""
        from llmops_cli.entry.dag_support import settings_from_params

        values, config = self.connection_values()
        params = dict(params or {})
        if not params.get("config") and config:
            params["config"] = config
        try:
            with _environ(environment_for(values)):
                return settings_from_params(params)
        except ValueError as exc:  # a relative config path: resolve_params says what to pass
            raise ConfigError(str(exc)) from None

    def test_connection(self) -> tuple[bool, str]:
        try:
            s = self.get_settings()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        return True, f"settings load; store {s.store.backend}, collection {s.store.collection}"
