"""Operating an Airflow deployment over its REST API: import errors and DAG warnings, DAG versions, pools, variables,
connections, assets, health and versions.

Every call goes through ``AirflowClient._call`` / ``_paged`` (the same session, auth, retries and error translation as
the run commands). Health and version are read without credentials (Airflow serves them to anyone), so `llmops health`
answers even when the password is wrong. Secrets leave this module masked, for tables and ``--json`` alike:
connection passwords are never returned, and variable values and connection extras are masked by Airflow's own rule
(a key whose name says secret: password, secret, token, api_key...; ``core.redaction.is_secret_key``), plus passwords
inside URLs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llmops_cli.adapters.airflow import client as _client
from llmops_cli.core.redaction import is_secret_key, redact_secrets
from llmops_cli.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    import httpx

    from llmops_cli.adapters.airflow.client import AirflowClient

MASK = "***"
# The pool that serialises writers of an embedded vector store across DAGs (ingest shards, feedback promotion): one
# slot, so two tasks never write the same on-disk store at once. `llmops pools ensure-llmops` creates it.
LLMOPS_POOL = "llmops_embedded_store"
LLMOPS_POOL_DESCRIPTION = "llmops: one writer at a time for an embedded vector store (created by llmops)"

# The generated API classes these calls use, added to the client's map (the client imports each on first use).
_client._API_MODULES.update(
    {
        "PoolApi": "api.pool_api",
        "VariableApi": "api.variable_api",
        "ConnectionApi": "api.connection_api",
        "DagWarningApi": "api.dag_warning_api",
        "DagVersionApi": "api.dag_version_api",
    }
)

_POOLS_HINT = "`llmops pools list` lists the pools"
_VARS_HINT = "`llmops variables list` lists the variables"
_CONNS_HINT = "`llmops connections list` lists the connections"


def mask_value(key: str, value: Any) -> Any:
    """A variable's value as shown: masked whole when the key names a secret, else with URL passwords and
    recognisable keys/tokens masked inside it."""
    if value is None:
        return None
    if is_secret_key(key):
        return MASK
    return redact_secrets(value) if isinstance(value, str) else value


def mask_variable(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "value": mask_value(str(v.get("key", "")), v.get("value"))}


def mask_extra(extra: Any) -> Any:
    """A connection's extra (a JSON text): each secret-named key masked, at any depth."""
    if not extra:
        return extra
    try:
        data = json.loads(extra) if isinstance(extra, str) else extra
    except ValueError:
        return redact_secrets(str(extra))

    def walk(o: Any, key: str = "") -> Any:
        if isinstance(o, dict):
            return {k: walk(v, str(k)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, key) for v in o]
        return mask_value(key, o) if key else (redact_secrets(o) if isinstance(o, str) else o)

    return json.dumps(walk(data))


def mask_connection(c: dict[str, Any]) -> dict[str, Any]:
    """A connection as shown: never its password (only whether it has one), the extra masked."""
    out = {k: v for k, v in c.items() if k != "password"}
    out["password"] = MASK if c.get("password") else None
    out["extra"] = mask_extra(c.get("extra"))
    return out


class AirflowOps:
    """The operations of `llmops dags errors|versions`, `pools`, `variables`, `connections`, `assets`, `health`."""

    def __init__(self, client: AirflowClient, *, transport: httpx.BaseTransport | None = None):
        self.client = client
        self._transport = transport  # tests: an httpx.MockTransport for the unauthenticated health/version reads

    # ------------------------------------------------------------------------------------ DAG diagnostics
    def import_errors(self) -> list[dict[str, Any]]:
        return self.client.list_import_errors()

    def dag_warnings(self, dag_id: str | None = None) -> list[dict[str, Any]]:
        kw = {"dag_id": dag_id} if dag_id else {}
        return self.client._paged("DagWarningApi", "list_dag_warnings", "dag_warnings", what="DAG warnings", **kw)

    def dag_versions(self, dag_id: str) -> list[dict[str, Any]]:
        self.client.get_dag(dag_id)  # an unknown DAG is "not found" (exit 9), not an empty list
        return self.client._paged(
            "DagVersionApi",
            "get_dag_versions",
            "dag_versions",
            dag_id,
            order_by=["-version_number"],
            what=f"versions of DAG {dag_id!r}",
        )

    # ------------------------------------------------------------------------------------ pools
    def pools(self) -> list[dict[str, Any]]:
        return self.client._paged("PoolApi", "get_pools", "pools", order_by=["name"], what="pools")

    def get_pool(self, name: str) -> dict[str, Any]:
        return self.client._call("PoolApi", "get_pool", name, what=f"pool {name!r}", not_found_hint=_POOLS_HINT)

    def set_pool(
        self, name: str, *, slots: int | None, description: str | None = None, include_deferred: bool | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Create the pool, or change the given fields of an existing one. Returns (pool, created)."""
        try:
            current = self.get_pool(name)
        except NotFoundError:
            if slots is None:
                raise NotFoundError(
                    f"pool {name!r} does not exist", hint=f"create it with `llmops pools set {name} --slots N`"
                ) from None
            return self._create_pool(name, slots, description, bool(include_deferred)), True
        fields = {"slots": slots, "description": description, "include_deferred": include_deferred}
        mask = [k for k, v in fields.items() if v is not None]
        if not mask:
            return self.get_pool(name), False
        # the server validates the whole body (include_deferred is required), the mask says what changes
        merged = {k: current.get(k) if v is None else v for k, v in fields.items()}
        merged["include_deferred"] = bool(merged["include_deferred"])
        body = _lean("models.pool_patch_body").PoolPatchBody(pool=name, **merged)
        pool = self.client._call(
            "PoolApi", "patch_pool", name, body, update_mask=mask, what=f"pool {name!r}", not_found_hint=_POOLS_HINT
        )
        return pool, False

    def _create_pool(self, name: str, slots: int, description: str | None, include_deferred: bool) -> dict[str, Any]:
        body = _lean("models.pool_body").PoolBody(
            name=name, slots=slots, description=description, include_deferred=include_deferred
        )
        return self.client._call("PoolApi", "post_pool", body, what=f"pool {name!r}", idempotent=False)

    def delete_pool(self, name: str) -> None:
        try:
            self.client._call("PoolApi", "delete_pool", name, what=f"pool {name!r}", not_found_hint=_POOLS_HINT)
        except UsageError as e:  # e.g. default_pool: the server's reason is the message; the generic hint misleads
            raise UsageError(
                e.message, hint="default_pool cannot be deleted; resize it with `llmops pools set`"
            ) from None

    def ensure_llmops_pool(self, slots: int = 1) -> tuple[dict[str, Any], bool]:
        """The llmops writers' pool: created with ``slots`` when missing; an existing one is left as its admin set
        it. Returns (pool, created)."""
        try:
            return self.get_pool(LLMOPS_POOL), False
        except NotFoundError:
            return self._create_pool(LLMOPS_POOL, slots, LLMOPS_POOL_DESCRIPTION, False), True

    # ------------------------------------------------------------------------------------ variables
    def variables(self) -> list[dict[str, Any]]:
        items = self.client._paged("VariableApi", "get_variables", "variables", order_by=["key"], what="variables")
        return [mask_variable(v) for v in items]

    def get_variable(self, key: str) -> dict[str, Any]:
        v = self.client._call("VariableApi", "get_variable", key, what=f"variable {key!r}", not_found_hint=_VARS_HINT)
        return mask_variable(v)

    def set_variable(self, key: str, value: str, *, description: str | None = None) -> tuple[dict[str, Any], bool]:
        VariableBody = _lean("models.variable_body").VariableBody  # noqa: N806

        body = VariableBody(key=key, value=value, description=description)
        try:
            self.client._call("VariableApi", "get_variable", key, what=f"variable {key!r}")
        except NotFoundError:
            v = self.client._call("VariableApi", "post_variable", body, what=f"variable {key!r}", idempotent=False)
            return mask_variable(v), True
        mask = ["value"] + (["description"] if description is not None else [])
        v = self.client._call("VariableApi", "patch_variable", key, body, update_mask=mask, what=f"variable {key!r}")
        return mask_variable(v), False

    def delete_variable(self, key: str) -> None:
        self.client._call("VariableApi", "delete_variable", key, what=f"variable {key!r}", not_found_hint=_VARS_HINT)

    # ------------------------------------------------------------------------------------ connections
    def connections(self) -> list[dict[str, Any]]:
        items = self.client._paged(
            "ConnectionApi", "get_connections", "connections", order_by=["connection_id"], what="connections"
        )
        return [mask_connection(c) for c in items]

    def get_connection(self, conn_id: str) -> dict[str, Any]:
        c = self.client._call(
            "ConnectionApi", "get_connection", conn_id, what=f"connection {conn_id!r}", not_found_hint=_CONNS_HINT
        )
        return mask_connection(c)

    def set_connection(self, conn_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the connection (``conn_type`` needed), or change only the given ``fields`` of an existing one.
        ``fields``: conn_type, host, port, login, password, schema, extra (JSON text), description."""
        ConnectionBody = _lean("models.connection_body").ConnectionBody  # noqa: N806

        given = {k: v for k, v in fields.items() if v is not None}
        try:
            current = self.client._call("ConnectionApi", "get_connection", conn_id, what=f"connection {conn_id!r}")
        except NotFoundError:
            current = None
        if current is None:
            if not given.get("conn_type"):
                raise UsageError(
                    f"connection {conn_id!r} does not exist yet: its type is needed",
                    hint=f"add --conn-type (e.g. `llmops connections set {conn_id} --conn-type http --host ...`)",
                )
            body = ConnectionBody(connection_id=conn_id, **given)
            c = self.client._call(
                "ConnectionApi", "post_connection", body, what=f"connection {conn_id!r}", idempotent=False
            )
            return mask_connection(c), True
        body = ConnectionBody(
            connection_id=conn_id,
            conn_type=given.get("conn_type") or current["conn_type"],
            **{k: v for k, v in given.items() if k != "conn_type"},
        )
        mask = sorted(given)
        c = self.client._call(
            "ConnectionApi", "patch_connection", conn_id, body, update_mask=mask, what=f"connection {conn_id!r}"
        )
        return mask_connection(c), False

    def delete_connection(self, conn_id: str) -> None:
        self.client._call(
            "ConnectionApi", "delete_connection", conn_id, what=f"connection {conn_id!r}", not_found_hint=_CONNS_HINT
        )

    # ------------------------------------------------------------------------------------ assets
    def assets(self) -> list[dict[str, Any]]:
        return self.client._paged(
            "AssetApi", "get_assets", "assets", only_active=False, order_by=["uri"], what="assets"
        )

    def asset(self, uri_or_id: str, *, events: int = 5) -> dict[str, Any]:
        """One asset (by URI, or by its numeric id) with the DAGs it schedules, its queued events (DAGs waiting for
        their other assets) and its latest ``events`` events."""
        if uri_or_id.isdigit():
            aid = int(uri_or_id)
        else:
            aid = int(self.client.find_asset(uri_or_id)["id"])
        what = f"asset {uri_or_id!r}"
        asset = self.client._call(
            "AssetApi", "get_asset", aid, what=what, not_found_hint="`llmops assets list` lists the assets"
        )
        try:
            queued = self.client._call("AssetApi", "get_asset_queued_events", aid, what=what) or {}
        except NotFoundError:  # Airflow answers 404 when nothing is queued
            queued = {}
        recent = (
            self.client._call(
                "AssetApi", "get_asset_events", asset_id=aid, limit=events, order_by=["-timestamp"], what=what
            )
            or {}
        )
        return {
            **asset,
            "queued_events": queued.get("queued_events") or [],
            "recent_events": recent.get("asset_events") or [],
        }

    # ------------------------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """Each component's status (metadatabase, scheduler, triggerer, dag_processor) and the server's versions."""
        return {
            "url": self.client.shown_url,
            "components": self._public_get("/api/v2/monitor/health") or {},
            "version": self._public_get("/api/v2/version") or {},
        }

    def _public_get(self, path: str) -> Any:
        """A GET that needs no credentials, so a health check works when the login does not."""
        import httpx

        c = self.client
        read = c._read_timeout()  # airflow.timeout, or what is left of the command's --timeout
        try:
            with httpx.Client(
                verify=c._tls_verify(),
                timeout=httpx.Timeout(read, connect=min(c.connect_timeout, read)),
                transport=self._transport,
            ) as h:
                r = h.get(c.url + path)
        except (httpx.ReadTimeout, httpx.WriteTimeout):
            raise c._no_answer(read) from None
        except httpx.TransportError as e:
            raise c._unreachable(_client._reason(e)) from None
        # a degraded server answers the health check with 503 and the same JSON body
        if r.status_code in (200, 503):
            try:
                return r.json()
            except ValueError:
                pass
        raise c._translate(r.status_code, r.content, what=f"GET {path}", not_found_hint="is this an Airflow 3 server?")


def unhealthy_components(health: dict[str, Any]) -> list[str]:
    """The components whose status is "unhealthy" (a component never started, like a triggerer a deployment does
    not run, reports no status and is not counted)."""
    comps = health.get("components") or {}
    return sorted(k for k, v in comps.items() if isinstance(v, dict) and str(v.get("status")).lower() == "unhealthy")


def _lean(module: str) -> Any:
    return _client._lean(module)
