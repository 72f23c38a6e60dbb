"""``AirflowClient``: the Airflow 3 REST API (v2) through apache-airflow-client, with our error model.

- Auth: username/password exchanged for a JWT at ``POST {url}/auth/token`` (httpx; the generated client has no
  call for it), or a given token used as is. The token is refreshed once on a 401 when we hold the password.
- Every API call goes through ``_call``: the ``*_without_preload_content`` variants, so we parse the server's
  JSON ourselves (exact fields, no model validation surprises, and the log endpoint keeps level/error fields),
  bounded retries with backoff for refused connections and 5xx, and translation of statuses into
  ``llmops_cli.errors`` (one line, a hint, an exit code). Exceptions are re-raised ``from None``: no library
  traceback, request or header (Authorization) ever reaches the user.
- Timeouts: a short connect timeout, and ``timeout`` (airflow.timeout) for each answer. A read timeout is NOT
  retried: a server that accepts and never answers is wedged, and retrying it only multiplies the wait. A command's
  ``--timeout`` is a budget for all its calls together (``set_budget``): each call waits at most what is left of it,
  and no retry starts past it, so a command ends within its budget whatever the server does.
- Results are plain JSON dicts as the server sent them, so ``--json`` output is the API's own vocabulary.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from llmops_cli.adapters.airflow.lean_import import import_module
from llmops_cli.core.orchestration import OUTCOME_XCOM_KEY, LogPage, TaskTry
from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import AuthError, ConflictError, LlmopsError, NotFoundError, UnreachableError, UsageError

if TYPE_CHECKING:
    import httpx

    from llmops_cli.adapters.airflow.token_store import TokenStore
    from llmops_cli.settings import AirflowConnection

RETRY_STATUSES = {500, 502, 503, 504}


def display_url(url: str) -> str:
    """The URL without any user:password@ part (safe to print)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts).rstrip("/")


# "'description': 'a string'" in a schema printed by pprint, whose long strings come as adjacent literals
_DESCRIPTION = re.compile(r"""['"]description['"]:\s*((?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\s)+)""")


def _schema_description(dump: str) -> str:
    found = _DESCRIPTION.search(dump)
    if not found:
        return ""
    try:
        return str(ast.literal_eval(f"({found.group(1).strip()})"))
    except (ValueError, SyntaxError):
        return ""


def server_message(body: bytes | str | None) -> str:
    """The human part of an error body: FastAPI's ``detail`` (a string, or a list of {loc, msg})."""
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return redact_secrets(text.strip()[:500])
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, list):
        msgs = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(p) for p in d.get("loc", []) if p != "body")
                msgs.append(f"{loc}: {d.get('msg', d)}" if loc else str(d.get("msg", d)))
            else:
                msgs.append(str(d))
        msg = "; ".join(msgs)
    elif isinstance(detail, dict):
        msg = str(detail.get("reason") or detail.get("message") or json.dumps(detail))
    else:
        msg = str(detail)
    # a DAG param that fails its schema: jsonschema's first paragraph says what and why; the rest is the whole
    # schema and instance ("Failed validating ... in schema: {...} On instance: ..."), hundreds of characters, of
    # which only the schema's description (what to pass instead) is kept
    msg, _, dump = msg.partition("\n\nFailed validating")
    description = _schema_description(dump)
    if description:
        msg = f"{msg.rstrip('.')}. {description}"
    return redact_secrets(" ".join(msg.split())[:1000])


class AirflowClient:
    """One Airflow API server. Construct with ``from_settings`` (or directly in tests with fakes)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        pool_manager: Any = None,
        token_transport: httpx.BaseTransport | None = None,
        token_store: TokenStore | None = None,
    ):
        self.url = url.rstrip("/")
        self.shown_url = display_url(self.url)
        self.username = username
        self._password = password
        self._token = token
        self._token_is_ours = False  # True when we exchanged the password for it (so we may refresh it)
        self._token_store = token_store  # logins kept by `llmops auth login`; None: every command logs in anew
        self._token_from_store = False
        self.verify_tls = verify_tls
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.connect_timeout = min(
            connect_timeout, timeout
        )  # on loopback/LAN a connect takes ms; a dead host should not cost 30 s
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._pool_manager = pool_manager
        self._token_transport = token_transport
        self._api_client: Any = None
        self._apis: dict[str, Any] = {}
        self._clock = time.monotonic
        self._deadline: float | None = None  # set_budget: the end of the command's --timeout
        self._budget_s: float | None = None

    @classmethod
    def from_settings(cls, conn: AirflowConnection, **kw: Any) -> AirflowClient:
        if "token_store" not in kw and not conn.token:  # a given token is used as is; else a stored login first
            from llmops_cli.adapters.airflow.token_store import TokenStore

            kw["token_store"] = TokenStore()
        return cls(
            conn.url,
            username=conn.username,
            password=conn.password.get_secret_value() if conn.password else None,
            token=conn.token.get_secret_value() if conn.token else None,
            verify_tls=conn.verify_tls,
            ca_bundle=conn.ca_bundle,
            timeout=conn.timeout,
            **kw,
        )

    def __repr__(self) -> str:  # never the password or token
        return f"AirflowClient({self.shown_url!r}, username={self.username!r})"

    # ------------------------------------------------------------------------------------ plumbing
    def _unreachable(self, reason: str) -> UnreachableError:
        return UnreachableError(
            f"cannot reach the Airflow API server at {self.shown_url} ({reason}): "
            f"is the API server running at {self.shown_url}?",
            hint="start it (make airflow-up for a local one) or point llmops at yours: "
            "LLMOPS_AIRFLOW_URL, --profile, or airflow.url in llmops.yaml",
        )

    def _no_answer(self, waited: float | None = None) -> UnreachableError:
        waited = self.timeout if waited is None else waited
        by_budget = waited < self.timeout  # cut short by the command's --timeout
        return UnreachableError(
            f"the Airflow API server at {self.shown_url} accepted the connection "
            f"but did not answer within {round(waited, 1):g} s" + (" (the rest of --timeout)" if by_budget else ""),
            hint="the server is overloaded or hung: check its health (`llmops health`, GET /api/v2/monitor/health) "
            "and logs; raise airflow.timeout (LLMOPS_AIRFLOW_TIMEOUT) or --timeout only if it is merely slow",
        )

    # ------------------------------------------------------------------------------------ the command's budget
    def set_budget(self, seconds: float | None) -> None:
        """All further calls together end within ``seconds`` (None: no total bound, each call its own timeout)."""
        self._budget_s = seconds
        self._deadline = None if seconds is None else self._clock() + seconds

    def allow(self, seconds: float) -> None:
        """At least ``seconds`` more for the calls that report an ended wait (log tails, the outcome), when a
        budget is set."""
        if self._deadline is not None:
            self._deadline = max(self._deadline, self._clock() + seconds)

    def _read_timeout(self) -> float:
        """How long the next call may wait for its answer: airflow.timeout, or less when the budget ends sooner."""
        if self._deadline is None:
            return self.timeout
        left = self._deadline - self._clock()
        if left <= 0.05:
            raise self._out_of_budget()
        return min(self.timeout, left)

    def _out_of_budget(self, last: str | None = None) -> UnreachableError:
        return UnreachableError(
            f"no answer from the Airflow API server at {self.shown_url} within --timeout {self._budget_s:g} s"
            + (f" ({last})" if last else ""),
            hint="check the server's health (`llmops health`) and logs; give the command a longer --timeout "
            "if the server is merely slow",
        )

    def _backoff(self, delay: float, last: str) -> None:
        """Sleep before a retry, unless the budget would end first (then give up now, naming the last cause)."""
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            raise self._out_of_budget(last)
        self._sleep(delay)

    def _tls_verify(self) -> Any:
        if not self.verify_tls:
            return False
        if self.ca_bundle:
            import ssl

            return ssl.create_default_context(cafile=self.ca_bundle)
        return True

    def _fetch_token(self) -> str:
        """Exchange username/password for an access token at /auth/token (201 + access_token)."""
        import httpx

        endpoint = f"{self.url}/auth/token"
        last = ""
        for attempt in range(self.max_attempts):
            read = self._read_timeout()
            try:
                with httpx.Client(
                    verify=self._tls_verify(),
                    timeout=httpx.Timeout(read, connect=min(self.connect_timeout, read)),
                    transport=self._token_transport,
                ) as c:
                    r = c.post(endpoint, json={"username": self.username, "password": self._password})
            except (httpx.ReadTimeout, httpx.WriteTimeout):
                raise self._no_answer(read) from None  # connected but no answer: retrying would only wait again
            except httpx.TransportError as e:
                if "CERTIFICATE_VERIFY_FAILED" in str(e):
                    raise UnreachableError(
                        f"TLS certificate of {self.shown_url} could not be verified",
                        hint="set airflow.ca_bundle to your CA file (verify_tls: false only for a trusted test server)",
                    ) from None
                last = _reason(e)
                if attempt + 1 < self.max_attempts:
                    self._backoff(self.backoff_s * 2**attempt, last)
                    continue
                raise self._unreachable(last) from None
            if r.status_code in RETRY_STATUSES and attempt + 1 < self.max_attempts:
                self._backoff(self.backoff_s * 2**attempt, f"HTTP {r.status_code}")
                continue
            if r.status_code in (200, 201):
                try:
                    return str(r.json()["access_token"])
                except (ValueError, KeyError, TypeError):
                    raise LlmopsError(f"{endpoint} answered {r.status_code} without an access_token") from None
            if r.status_code in (400, 401, 403, 422):
                raise AuthError(
                    f"Airflow at {self.shown_url} rejected the credentials of user {self.username!r}",
                    hint="check LLMOPS_AIRFLOW_USERNAME / LLMOPS_AIRFLOW_PASSWORD "
                    "(or the profile's username/password), or use LLMOPS_AIRFLOW_TOKEN",
                )
            if r.status_code in (404, 405):  # 405: Airflow's web UI answers GET only under any unknown path
                raise AuthError(
                    f"{self.shown_url} has no /auth/token endpoint (is this an Airflow 3 API server?)",
                    hint="check LLMOPS_AIRFLOW_URL (the API server's base URL, e.g. http://host:8080), "
                    "or pass a token with LLMOPS_AIRFLOW_TOKEN",
                )
            raise LlmopsError(
                f"token exchange at {self.shown_url}/auth/token failed: "
                f"HTTP {r.status_code} {server_message(r.content)}"
            )
        raise self._unreachable(last)  # pragma: no cover - loop always returns or raises

    def login(self) -> str:
        """Exchange the password for a token now (`llmops auth login`), whether or not one is held."""
        self._token = self._fetch_token()
        self._token_is_ours, self._token_from_store = True, False
        return self._token

    def _can_login(self) -> bool:
        return bool(self.username) and self._password is not None

    def _ensure_token(self) -> None:
        if self._token is None and self._token_store is not None:
            # a stored login's token, unexpired; an expired one without a password is exit 8 "run llmops auth login"
            self._token = self._token_store.token_for(self.shown_url, self.username, can_refresh=self._can_login())
            self._token_is_ours = self._token_from_store = self._token is not None
        if self._token is None and self._can_login():
            self._token = self._fetch_token()
            self._token_is_ours, self._token_from_store = True, False
            if self._token_store is not None:  # keeps a stored login current; stores nothing without one
                self._token_store.refreshed(self.shown_url, self.username, self._token)
        if self._api_client is not None:
            self._api_client.configuration.access_token = self._token

    def _api(self, name: str) -> Any:
        """A generated API class (DAGApi, DagRunApi, ...) bound to our ApiClient (imported on first use)."""
        if name not in self._apis:
            if self._api_client is None:
                cfg = _lean("configuration").Configuration(host=self.url)
                cfg.verify_ssl = self.verify_tls
                cfg.ssl_ca_cert = self.ca_bundle
                cfg.retries = False  # we own the retry loop (bounded, with backoff, status-aware)
                self._api_client = _lean("api_client").ApiClient(cfg)
                if self._pool_manager is not None:
                    self._api_client.rest_client.pool_manager = self._pool_manager
            self._apis[name] = getattr(_lean(_API_MODULES[name]), name)(self._api_client)
        return self._apis[name]

    def _call(
        self,
        api: str,
        method: str,
        *args: Any,
        what: str = "",
        not_found_hint: str | None = None,
        idempotent: bool = True,
        not_done_statuses: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """Call ``api.method_without_preload_content``; return the parsed JSON or raise an LlmopsError.
        ``not_done_statuses``: answers after which even a call that is not idempotent is known not to have happened
        (so it is retried like the others)."""
        import urllib3

        fn = getattr(self._api(api), f"{method}_without_preload_content")
        refreshed = False
        attempt = 0
        while True:
            self._ensure_token()
            read = self._read_timeout()
            try:
                resp = fn(*args, _request_timeout=(min(self.connect_timeout, read), read), **kwargs)
            except urllib3.exceptions.ReadTimeoutError:
                raise self._no_answer(read) from None  # connected but no answer: retrying would only wait again
            except (urllib3.exceptions.HTTPError, OSError) as e:
                # a refused/failed connect never reached the server: always safe to retry; a reset mid-request
                # is retried only for idempotent calls (the caller makes trigger idempotent with its run id)
                never_sent = isinstance(
                    e,
                    (
                        urllib3.exceptions.NewConnectionError,
                        urllib3.exceptions.ConnectTimeoutError,
                        ConnectionRefusedError,
                    ),
                )
                attempt += 1
                if (never_sent or idempotent) and attempt < self.max_attempts:
                    self._backoff(self.backoff_s * 2 ** (attempt - 1), _reason(e))
                    continue
                raise self._unreachable(_reason(e)) from None
            except Exception as e:  # the generated client turns TLS errors into ApiException(status=0)
                if getattr(e, "status", None) == 0:
                    raise UnreachableError(
                        f"TLS connection to {self.shown_url} failed: {getattr(e, 'reason', '')}"[:300],
                        hint="set airflow.ca_bundle to your CA file (verify_tls: false only for a trusted test server)",
                    ) from None
                raise
            status = resp.status
            try:
                body = resp.data
            finally:
                resp.release_conn()
            if 200 <= status < 300:
                try:
                    return json.loads(body) if body else None
                except ValueError:  # the web UI's HTML page: the URL has a path in front of the API's
                    raise LlmopsError(
                        f"{self.shown_url} answered {what or 'an API call'} with a page that is not the Airflow "
                        "REST API's JSON",
                        hint="check LLMOPS_AIRFLOW_URL: the API server's base URL, e.g. http://host:8080",
                    ) from None
            retry = idempotent or status in not_done_statuses
            if status in RETRY_STATUSES and retry and attempt + 1 < self.max_attempts:
                attempt += 1
                self._backoff(self._retry_after(resp) or self.backoff_s * 2 ** (attempt - 1), f"HTTP {status}")
                continue
            if _token_rejected(status, body) and self._token_is_ours and not refreshed:
                if self._token_from_store and self._token_store is not None:
                    self._token_store.rejected(self.shown_url, self.username)
                    if not self._can_login():
                        raise AuthError(
                            f"Airflow at {self.shown_url} rejected the stored token",
                            hint="run `llmops auth login`, or set LLMOPS_AIRFLOW_PASSWORD",
                        )
                self._token, refreshed = (
                    None,
                    True,
                )  # expired (or the server's key changed): exchange the password again, once
                continue
            raise self._translate(status, body, what=what, not_found_hint=not_found_hint)

    @staticmethod
    def _retry_after(resp: Any) -> float | None:
        try:
            return min(10.0, float(resp.headers.get("Retry-After")))
        except (TypeError, ValueError):
            return None

    def _translate(self, status: int, body: bytes, *, what: str, not_found_hint: str | None) -> LlmopsError:
        msg = server_message(body)
        if _token_rejected(
            status, body
        ):  # Airflow: 401 "Token Expired", 403 "Invalid JWT token"; not a permission problem
            if self._token is not None and not self._token_is_ours:
                return AuthError(
                    f"Airflow at {self.shown_url} rejected the credentials: the token is expired or invalid"
                    + (f" ({msg})" if msg else ""),
                    hint="get a new one (POST /auth/token) and set LLMOPS_AIRFLOW_TOKEN, or use username/password",
                )
            if self._token is None:
                return AuthError(
                    f"Airflow at {self.shown_url} needs credentials",
                    hint="set LLMOPS_AIRFLOW_USERNAME and LLMOPS_AIRFLOW_PASSWORD (or LLMOPS_AIRFLOW_TOKEN), "
                    "or a --profile",
                )
            return AuthError(
                f"Airflow at {self.shown_url} rejected the credentials of user {self.username!r}",
                hint="check LLMOPS_AIRFLOW_USERNAME / LLMOPS_AIRFLOW_PASSWORD",
            )
        if status == 403:
            return AuthError(
                f"user {self.username or '(token)'} may not do this on {self.shown_url}: {msg or 'forbidden'}",
                hint="ask an Airflow admin for the permission, or use another account",
            )
        if status == 404:
            return NotFoundError(
                f"{what or 'resource'} not found on {self.shown_url}" + (f" ({msg})" if msg else ""),
                hint=not_found_hint,
            )
        if status == 409:
            return ConflictError(
                f"{what or 'resource'} already exists" + (f" ({msg})" if msg else ""),
                hint="pick another id (e.g. another --run-id), or omit it to let one be generated",
            )
        if status in (400, 422):
            return UsageError(
                f"Airflow rejected the request for {what or 'this call'}: {msg or f'HTTP {status}'}",
                hint="fix the values named above (for DAG params: `llmops dags show DAG_ID` lists them)",
            )
        if 500 <= status <= 599:
            return LlmopsError(
                f"Airflow API server error (HTTP {status}) for {what or 'this call'}: {msg or 'no detail'}",
                hint="retried; check the API server's log",
            )
        return LlmopsError(f"unexpected HTTP {status} from {self.shown_url} for {what or 'this call'}: {msg}")

    def _paged(
        self, api: str, method: str, key: str, *args: Any, limit: int | None = None, page_size: int = 100, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """All items of a list endpoint (offset pagination over total_entries), at most ``limit``."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            want = page_size if limit is None else min(page_size, limit - len(out))
            page = self._call(api, method, *args, limit=want, offset=offset, **kwargs) or {}
            items = page.get(key) or []
            out.extend(items)
            offset += len(items)
            total = page.get("total_entries")
            if not items or (limit is not None and len(out) >= limit) or (total is not None and offset >= total):
                return out

    # ------------------------------------------------------------------------------------ DAGs
    def list_dags(self, *, limit: int | None = None, paused: bool | None = None) -> list[dict[str, Any]]:
        kw = {} if paused is None else {"paused": paused}
        return self._paged("DAGApi", "get_dags", "dags", limit=limit, order_by=["dag_id"], **kw)

    def list_import_errors(self) -> list[dict[str, Any]]:
        """DAG files that failed to import (filename, bundle_name, stack_trace)."""
        return self._paged("ImportErrorApi", "get_import_errors", "import_errors", what="import errors")

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return self._call("DAGApi", "get_dag_details", dag_id, what=f"DAG {dag_id!r}", not_found_hint=_DAGS_HINT)

    def list_tasks(self, dag_id: str) -> list[dict[str, Any]]:
        data = self._call("TaskApi", "get_tasks", dag_id, what=f"DAG {dag_id!r}", not_found_hint=_DAGS_HINT) or {}
        return data.get("tasks") or []

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        DAGPatchBody = _lean("models.dag_patch_body").DAGPatchBody  # noqa: N806

        return self._call(
            "DAGApi",
            "patch_dag",
            dag_id,
            DAGPatchBody(is_paused=paused),
            update_mask=["is_paused"],
            what=f"DAG {dag_id!r}",
            not_found_hint=_DAGS_HINT,
        )

    # ------------------------------------------------------------------------------------ runs
    def trigger(
        self,
        dag_id: str,
        *,
        conf: dict[str, Any] | None = None,
        run_id: str | None = None,
        logical_date: datetime | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Create a DAG run. Without ``run_id`` one is generated here, so a retry after a connection reset
        cannot start a second run: a 409 on a retry means our first attempt got through."""
        TriggerDAGRunPostBody = _lean("models.trigger_dag_run_post_body").TriggerDAGRunPostBody  # noqa: N806

        given = run_id is not None
        now = datetime.now(UTC)
        run_id = run_id or f"manual__{now.isoformat()}"
        body = TriggerDAGRunPostBody(dag_run_id=run_id, conf=conf or {}, logical_date=logical_date, note=note)
        try:
            return self._call(
                "DagRunApi",
                "trigger_dag_run",
                dag_id,
                body,
                what=f"DAG run {run_id!r} of {dag_id!r}" if given else f"DAG {dag_id!r}",
                not_found_hint=_DAGS_HINT,
                idempotent=True,
            )
        except ConflictError:
            if given:
                raise ConflictError(
                    f"DAG {dag_id!r} already has a run with id {run_id!r}",
                    hint="pick another --run-id, or omit it to let llmops generate one",
                ) from None
            return self.get_run(dag_id, run_id)

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._call(
            "DagRunApi",
            "get_dag_run",
            dag_id,
            run_id,
            what=f"DAG run {run_id!r} of DAG {dag_id!r}",
            not_found_hint=f"`llmops runs list {dag_id}` lists its runs; `llmops dags list` the DAGs",
        )

    def list_runs(
        self,
        dag_id: str | None,
        *,
        state: list[str] | None = None,
        limit: int | None = 25,
        since: datetime | None = None,
        until: datetime | None = None,
        run_type: list[str] | None = None,
        logical_from: datetime | None = None,
        logical_to: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Runs of one DAG (``dag_id`` None: of every DAG), newest first; ``since``/``until`` bound ``run_after``
        (when the run was due: its trigger time for a manual run), ``logical_from``/``logical_to`` its logical date."""
        kw: dict[str, Any] = {"order_by": ["-run_after"]}
        for key, value in (
            ("state", state),
            ("run_after_gte", since),
            ("run_after_lte", until),
            ("run_type", run_type),
            ("logical_date_gte", logical_from),
            ("logical_date_lte", logical_to),
        ):
            if value:
                kw[key] = value
        return self._paged(
            "DagRunApi",
            "get_dag_runs",
            "dag_runs",
            dag_id or "~",  # the API's "every DAG"
            limit=limit,
            what=f"DAG {dag_id!r}" if dag_id else "DAG runs",
            not_found_hint=_DAGS_HINT,
            **kw,
        )

    def patch_run(
        self, dag_id: str, run_id: str, *, state: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """Set a run's note and/or state (``failed`` stops its running tasks and skips those not started)."""
        DAGRunPatchBody = _lean("models.dag_run_patch_body").DAGRunPatchBody  # noqa: N806

        fields = {k: v for k, v in (("state", state), ("note", note)) if v is not None}
        return self._call(
            "DagRunApi",
            "patch_dag_run",
            dag_id,
            run_id,
            DAGRunPatchBody(**fields),
            update_mask=sorted(fields),
            what=f"DAG run {run_id!r} of DAG {dag_id!r}",
            not_found_hint=f"`llmops runs list {dag_id}` lists its runs",
        )

    def delete_run(self, dag_id: str, run_id: str) -> None:
        self._call(
            "DagRunApi",
            "delete_dag_run",
            dag_id,
            run_id,
            what=f"DAG run {run_id!r} of DAG {dag_id!r}",
            not_found_hint=f"`llmops runs list {dag_id}` lists its runs",
        )

    def get_xcom(
        self, dag_id: str, run_id: str, task_id: str, *, key: str = "return_value", map_index: int | None = None
    ) -> dict[str, Any]:
        """One XCom entry with its value as the task pushed it (deserialised to JSON by the server)."""
        mi = -1 if map_index is None else map_index
        try:
            entry = self._xcom_entry(dag_id, run_id, task_id, key, mi)
        except NotFoundError:
            self.get_run(dag_id, run_id)  # a run (or DAG) that does not exist is named as such, not as a missing XCom
            raise
        value = entry.get("value")
        if isinstance(value, str):  # a server that returns the stored JSON text
            try:
                entry["value"] = json.loads(value)
            except ValueError:
                pass
        return entry

    def _xcom_entry(self, dag_id: str, run_id: str, task_id: str, key: str, mi: int) -> dict[str, Any]:
        return (
            self._call(
                "XComApi",
                "get_xcom_entry",
                dag_id,
                task_id,
                run_id,
                key,
                map_index=mi,
                deserialize=True,
                stringify=False,
                what=f"XCom {key!r} of task {task_id!r}" + (f" [{mi}]" if mi >= 0 else "") + f" in run {run_id!r}",
                not_found_hint=f"`llmops tasks list {dag_id} {run_id}` lists the run's tasks (a mapped one needs "
                "--map-index N); a task pushes its return value under the key return_value",
            )
            or {}
        )

    def get_run_outcome(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """What the run's DAG reported about its own outcome (XCom ``llmops_outcome``: {"status": "ok" | "partial",
        "message"}), or None when no task pushed one (DAGs other than llmops's)."""
        what = f"DAG run {run_id!r} of DAG {dag_id!r}"
        try:
            page = (
                self._call("XComApi", "get_xcom_entries", dag_id, run_id, "~", xcom_key=OUTCOME_XCOM_KEY, what=what)
                or {}
            )
        except NotFoundError:  # no XCom at all for this run: nothing was reported
            return None
        entries = page.get("xcom_entries") or []
        if not entries:
            return None
        last = max(entries, key=lambda e: str(e.get("timestamp") or ""))
        entry = (
            self._call(
                "XComApi",
                "get_xcom_entry",
                dag_id,
                last["task_id"],
                run_id,
                OUTCOME_XCOM_KEY,
                map_index=last.get("map_index", -1),
                deserialize=True,
                stringify=False,
                what=what,
            )
            or {}
        )
        value = entry.get("value")
        if isinstance(value, str):  # a server that returns the stored JSON text
            try:
                value = json.loads(value)
            except ValueError:
                return None
        return value if isinstance(value, dict) else None

    # ------------------------------------------------------------------------------------ backfills
    def _backfill_body(
        self,
        dag_id: str,
        start: datetime,
        end: datetime,
        *,
        reprocess: str | None,
        max_active_runs: int | None,
        conf: dict[str, Any] | None,
        backwards: bool,
    ) -> Any:
        BackfillPostBody = _lean("models.backfill_post_body").BackfillPostBody  # noqa: N806
        ReprocessBehavior = _lean("models.reprocess_behavior").ReprocessBehavior  # noqa: N806

        kw: dict[str, Any] = {"dag_id": dag_id, "from_date": start, "to_date": end, "run_backwards": backwards}
        if reprocess:
            kw["reprocess_behavior"] = ReprocessBehavior(reprocess)
        if max_active_runs:
            kw["max_active_runs"] = max_active_runs
        if conf:
            kw["dag_run_conf"] = conf
        return BackfillPostBody(**kw)

    def backfill_dry_run(self, dag_id: str, start: datetime, end: datetime, **kw: Any) -> list[dict[str, Any]]:
        """The logical dates a backfill over [start, end] would run (or rerun), without creating it."""
        data = (
            self._call(
                "BackfillApi",
                "create_backfill_dry_run",
                self._backfill_body(dag_id, start, end, **kw),
                what=f"a backfill of DAG {dag_id!r}",
                not_found_hint=_DAGS_HINT,
            )
            or {}
        )
        return data.get("backfills") or []

    def create_backfill(self, dag_id: str, start: datetime, end: datetime, **kw: Any) -> dict[str, Any]:
        # not idempotent: a reset mid-request is not retried (a second backfill would be refused, 409, anyway)
        try:
            return self._call(
                "BackfillApi",
                "create_backfill",
                self._backfill_body(dag_id, start, end, **kw),
                what=f"a backfill of DAG {dag_id!r}",
                not_found_hint=_DAGS_HINT,
                idempotent=False,
                # on SQLite, Airflow answers 503 "Database is locked" when the scheduler holds the lock: nothing was
                # created, so it is asked again
                not_done_statuses=frozenset({503}),
            )
        except ConflictError as e:
            raise ConflictError(
                f"DAG {dag_id!r} already has a backfill that is not completed ({e.message})",
                hint=f"Airflow runs one backfill of a DAG at a time: `llmops backfill list {dag_id}` shows it; wait "
                "for it (`llmops backfill get ID --wait`) or cancel it. The scheduler marks a backfill whose runs "
                "all ended completed within 30 s",
            ) from None

    def list_backfills(self, dag_id: str, *, limit: int | None = 25) -> list[dict[str, Any]]:
        return self._paged(
            "BackfillApi",
            "list_backfills",
            "backfills",
            dag_id,
            limit=limit,
            order_by=["-id"],
            what=f"backfills of DAG {dag_id!r}",
            not_found_hint=_DAGS_HINT,
        )

    def backfill_action(self, backfill_id: int, action: str) -> dict[str, Any]:
        """``get``, ``pause``, ``unpause`` or ``cancel`` one backfill (cancel fails its queued runs)."""
        method = {"get": "get_backfill", "pause": "pause_backfill", "unpause": "unpause_backfill"}.get(
            action, "cancel_backfill"
        )
        return self._call(
            "BackfillApi",
            method,
            backfill_id,
            what=f"backfill {backfill_id}",
            not_found_hint="`llmops backfill list DAG_ID` lists a DAG's backfills",
        )

    def backfill_runs(self, backfill: dict[str, Any]) -> list[dict[str, Any]]:
        """The runs of a backfill: its DAG's backfill runs whose logical date lies in its range (a date rerun by a
        later backfill counts for that one), oldest logical date first."""
        runs = self.list_runs(
            backfill["dag_id"],
            run_type=["backfill"],
            logical_from=_as_datetime(backfill["from_date"]),
            logical_to=_as_datetime(backfill["to_date"]),
            limit=None,
        )
        return sorted(runs, key=lambda r: str(r.get("logical_date") or ""))

    # ------------------------------------------------------------------------------------ task instances
    def list_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, each map index of mapped tasks included (a not-yet-expanded mapped
        task shows as one placeholder with map_index -1)."""
        tis = self._paged(
            "TaskInstanceApi",
            "get_task_instances",
            "task_instances",
            dag_id,
            run_id,
            what=f"DAG run {run_id!r} of DAG {dag_id!r}",
            not_found_hint=f"`llmops runs list {dag_id}` lists its runs",
            page_size=500,
        )
        return sorted(tis, key=lambda t: (t.get("start_date") or "~", t["task_id"], t.get("map_index", -1)))

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> dict[str, Any]:
        what = (
            f"task {task_id!r}"
            + (f" [{map_index}]" if map_index is not None and map_index >= 0 else "")
            + f" in run {run_id!r} of DAG {dag_id!r}"
        )
        hint = f"`llmops tasks list {dag_id} {run_id}` lists its task instances (mapped ones need --map-index)"
        if map_index is not None and map_index >= 0:
            return self._call(
                "TaskInstanceApi",
                "get_mapped_task_instance",
                dag_id,
                run_id,
                task_id,
                map_index,
                what=what,
                not_found_hint=hint,
            )
        return self._call(
            "TaskInstanceApi", "get_task_instance", dag_id, run_id, task_id, what=what, not_found_hint=hint
        )

    def get_log(self, task: TaskTry, token: str | None = None) -> LogPage:
        """One page of a task try's structured log: (events, continuation token). Each event keeps every field
        the server sends (event, timestamp, level, logger, error_detail...)."""
        kw: dict[str, Any] = {"accept": "application/json"}
        if task.map_index >= 0:
            kw["map_index"] = task.map_index
        if token:
            kw["token"] = token
        t = task
        data = (
            self._call(
                "TaskInstanceApi",
                "get_log",
                t.dag_id,
                t.run_id,
                t.task_id,
                t.try_number,
                what=f"log of task {t.task_id!r} (try {t.try_number}) in run {t.run_id!r} of DAG {t.dag_id!r}",
                not_found_hint=f"`llmops tasks list {t.dag_id} {t.run_id}` shows each task's map index and try number",
                **kw,
            )
            or {}
        )
        content = data.get("content") or []
        events = [e if isinstance(e, dict) else {"event": str(e)} for e in content]
        return events, data.get("continuation_token")

    def clear_failed(
        self, dag_id: str, run_id: str, *, dry_run: bool, task_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Clear the failed task instances of a run (the API's dry_run defaults to TRUE: we always say it)."""
        ClearTaskInstancesBody = _lean("models.clear_task_instances_body").ClearTaskInstancesBody  # noqa: N806

        body = ClearTaskInstancesBody(
            dag_run_id=run_id,
            dry_run=dry_run,
            only_failed=True,
            reset_dag_runs=True,
            include_downstream=True,
            task_ids=task_ids,
        )
        data = (
            self._call(
                "TaskInstanceApi",
                "post_clear_task_instances",
                dag_id,
                body,
                what=f"DAG run {run_id!r} of DAG {dag_id!r}",
                not_found_hint=f"`llmops runs list {dag_id}` lists its runs",
            )
            or {}
        )
        return data.get("task_instances") or []

    # ------------------------------------------------------------------------------------ assets
    def find_asset(self, uri: str) -> dict[str, Any]:
        """The asset with exactly this URI (the API filters by pattern; we match exactly). Inactive assets count:
        one created at run time through an alias (like the ingest DAG's collections) is not "active" until a
        parsed DAG names it, yet it takes events."""
        found = [
            a
            for a in self._paged(
                "AssetApi", "get_assets", "assets", uri_pattern=uri, only_active=False, what=f"assets matching {uri!r}"
            )
            if a.get("uri") == uri
        ]
        if found:
            return min(found, key=lambda a: (not a.get("scheduled_dags"), a.get("id", 0)))
        raise NotFoundError(
            f"no asset with URI {uri!r} on {self.shown_url}",
            hint="assets are registered when a DAG that produces or consumes them is parsed; "
            "check the URI (`llmops dags show DAG_ID`)",
        )

    def create_asset_event(self, uri: str, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        CreateAssetEventsBody = _lean("models.create_asset_events_body").CreateAssetEventsBody  # noqa: N806

        asset = self.find_asset(uri)
        body = CreateAssetEventsBody(asset_id=int(asset["id"]), extra=extra or {})
        # not idempotent: a reset mid-request is not retried (a refused connect still is)
        return self._call("AssetApi", "create_asset_event", body, what=f"asset {uri!r}", idempotent=False)


_API_MODULES = {
    "DAGApi": "api.dag_api",
    "DagRunApi": "api.dag_run_api",
    "TaskInstanceApi": "api.task_instance_api",
    "TaskApi": "api.task_api",
    "AssetApi": "api.asset_api",
    "ImportErrorApi": "api.import_error_api",
    "XComApi": "api.x_com_api",
    "BackfillApi": "api.backfill_api",
}


def _as_datetime(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def _lean(module: str) -> Any:
    """One module of airflow_client.client, without the package imports of all 155 generated modules (~1 s)."""
    return import_module(f"airflow_client.client.{module}")


_DAGS_HINT = "`llmops dags list` shows the DAGs this server knows (new DAG files take a few seconds to be parsed)"


def _token_rejected(status: int, body: bytes | None) -> bool:
    """The credentials themselves were refused (as opposed to a 403 for a missing permission): Airflow answers an
    expired token with 401 and an invalid one (bad signature, garbage) with 403 "Invalid JWT token"."""
    if status == 401:
        return True
    return status == 403 and any(w in server_message(body).lower() for w in ("jwt", "token"))


def _reason(e: BaseException) -> str:
    """A short cause for a connection failure, without the library's long repr."""
    text = str(getattr(e, "reason", None) or e)
    for known in (
        "Connection refused",
        "Connection reset",
        "timed out",
        "Name or service not known",
        "No route to host",
    ):
        if known.lower() in text.lower():
            return known.lower()
    return type(e).__name__
