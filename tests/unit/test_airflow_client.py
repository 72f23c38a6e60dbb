"""AirflowClient on a fake transport: urllib3's pool manager replaced (API calls) and httpx.MockTransport
(token exchange). No network."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import urllib3

from llmops_cli.adapters.airflow.client import AirflowClient, display_url, server_message
from llmops_cli.core.orchestration import TaskTry, read_log
from llmops_cli.errors import (
    AuthError,
    ConflictError,
    ExitCode,
    LlmopsError,
    NotFoundError,
    UnreachableError,
    UsageError,
)

URL = "http://airflow.test:8080"
PASSWORD = "s3cret-pass-word"


class FakePool:
    """Stands in for urllib3.PoolManager: routes (method, path regex) to scripted answers, records requests."""

    def __init__(self):
        self.routes: list[tuple[str, re.Pattern[str], list]] = []
        self.calls: list[dict] = []

    def add(self, method: str, path: str, *answers) -> None:
        """Each answer: (status, json body) or an exception instance; the last one repeats."""
        self.routes.append((method, re.compile(path + "$"), list(answers)))

    def request(self, method, url, body=None, headers=None, timeout=None, preload_content=True, **kw):
        parts = urlsplit(url)
        self.calls.append(
            {
                "method": method,
                "path": parts.path,
                "query": parse_qs(parts.query),
                "headers": dict(headers or {}),
                "body": json.loads(body) if body else None,
                "timeout": timeout,
            }
        )
        for m, pat, answers in self.routes:
            if m == method and pat.match(parts.path):
                ans = answers.pop(0) if len(answers) > 1 else answers[0]
                if isinstance(ans, BaseException):
                    raise ans
                status, data = ans
                return urllib3.HTTPResponse(
                    body=json.dumps(data).encode(),
                    status=status,
                    headers={"Content-Type": "application/json"},
                    preload_content=False,
                )
        raise AssertionError(f"unexpected request {method} {parts.path}")


class TokenServer:
    def __init__(self, status: int = 201, token: str = "tok-1"):
        self.status, self.token, self.requests = status, token, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        if self.status in (200, 201):
            return httpx.Response(self.status, json={"access_token": self.token})
        return httpx.Response(self.status, json={"detail": "Invalid credentials"})


def make(pool: FakePool, tokens: TokenServer | None = None, **kw) -> tuple[AirflowClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("username", "admin")
    kw.setdefault("password", PASSWORD)
    c = AirflowClient(
        URL, pool_manager=pool, token_transport=httpx.MockTransport(tokens or TokenServer()), sleep=sleeps.append, **kw
    )
    return c, sleeps


def never_connects() -> urllib3.exceptions.NewConnectionError:
    return urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )


def test_password_is_exchanged_for_a_token_used_as_bearer():
    pool, tokens = FakePool(), TokenServer(token="jwt-abc")
    pool.add("GET", "/api/v2/dags", (200, {"dags": [{"dag_id": "a"}], "total_entries": 1}))
    c, _ = make(pool, tokens)
    assert [d["dag_id"] for d in c.list_dags()] == ["a"]
    assert tokens.requests == [{"username": "admin", "password": PASSWORD}]
    assert pool.calls[0]["headers"]["Authorization"] == "Bearer jwt-abc"
    assert PASSWORD not in repr(c)


def test_a_given_token_is_used_as_is():
    pool, tokens = FakePool(), TokenServer()
    pool.add("GET", "/api/v2/dags/d1/dagRuns/r1", (200, {"dag_run_id": "r1", "state": "running"}))
    c, _ = make(pool, tokens, username=None, password=None, token="given-token")
    assert c.get_run("d1", "r1")["state"] == "running"
    assert tokens.requests == []
    assert pool.calls[0]["headers"]["Authorization"] == "Bearer given-token"


def test_wrong_password_is_an_auth_error_without_the_password():
    c, _ = make(FakePool(), TokenServer(status=401))
    with pytest.raises(AuthError) as e:
        c.list_dags()
    assert e.value.exit_code == ExitCode.AUTH
    assert "rejected the credentials" in e.value.message
    assert PASSWORD not in e.value.message + (e.value.hint or "")


def test_rejected_token_and_missing_credentials_say_what_to_set():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", (401, {"detail": "Not authenticated"}))
    c, _ = make(pool, username=None, password=None, token="expired")
    with pytest.raises(AuthError, match="rejected the credentials: the token is expired or invalid"):
        c.list_dags()
    c2, _ = make(pool, username=None, password=None)
    with pytest.raises(AuthError) as e:
        c2.list_dags()
    assert "LLMOPS_AIRFLOW_USERNAME" in (e.value.hint or "")


def test_an_invalid_token_is_rejected_credentials_not_a_missing_permission():
    # Airflow answers a garbage / wrongly signed token with 403 "Invalid JWT token" (an expired one with 401)
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", (403, {"detail": "Invalid JWT token"}))
    c, _ = make(pool, username=None, password=None, token="not-a-jwt")
    with pytest.raises(AuthError) as e:
        c.list_dags()
    assert e.value.exit_code == ExitCode.AUTH
    assert "rejected the credentials" in e.value.message and "Invalid JWT token" in e.value.message
    assert "LLMOPS_AIRFLOW_TOKEN" in e.value.hint and "permission" not in e.value.message + e.value.hint
    assert "not-a-jwt" not in e.value.message + e.value.hint


def test_a_real_403_keeps_the_permission_text():
    pool = FakePool()
    pool.add("POST", "/api/v2/dags/d/dagRuns", (403, {"detail": "Forbidden"}))
    c, _ = make(pool)
    with pytest.raises(AuthError) as e:
        c.trigger("d", run_id="r")
    assert "may not do this" in e.value.message and "permission" in e.value.hint


def test_our_own_token_refused_as_invalid_is_exchanged_again_once():
    pool, tokens = FakePool(), TokenServer()
    pool.add("GET", "/api/v2/dags", (403, {"detail": "Invalid JWT token"}), (200, {"dags": [], "total_entries": 0}))
    c, _ = make(pool, tokens)
    assert c.list_dags() == []
    assert len(tokens.requests) == 2


def test_expired_token_is_refreshed_once_from_the_password():
    pool, tokens = FakePool(), TokenServer()
    pool.add("GET", "/api/v2/dags", (401, {"detail": "expired"}), (200, {"dags": [], "total_entries": 0}))
    c, _ = make(pool, tokens)
    assert c.list_dags() == []
    assert len(tokens.requests) == 2


def test_transient_5xx_is_retried_with_backoff_then_succeeds():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags/d/dagRuns/r", (503, {"detail": "busy"}), (502, {}), (200, {"state": "success"}))
    c, sleeps = make(pool)
    assert c.get_run("d", "r")["state"] == "success"
    assert sleeps == [0.5, 1.0]


def test_persistent_5xx_gives_up_after_bounded_attempts():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags/d/dagRuns/r", (500, {"detail": "database is locked"}))
    c, sleeps = make(pool, max_attempts=3)
    with pytest.raises(LlmopsError, match="database is locked") as e:
        c.get_run("d", "r")
    assert e.value.exit_code == ExitCode.FAILURE
    assert len(pool.calls) == 3 and len(sleeps) == 2


def test_connection_refused_is_retried_then_unreachable_with_the_url():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", never_connects())
    c, sleeps = make(pool, token="t", username=None, password=None)
    with pytest.raises(UnreachableError) as e:
        c.list_dags()
    assert f"is the API server running at {URL}?" in e.value.message
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert len(pool.calls) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_a_read_timeout_is_not_retried_and_the_connect_timeout_is_short():
    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/dags",
        urllib3.exceptions.ReadTimeoutError(None, "/api/v2/dags", "Read timed out. (read timeout=30)"),
    )
    c, sleeps = make(pool, token="t", username=None, password=None)
    with pytest.raises(UnreachableError, match="did not answer within 30 s") as e:
        c.list_dags()
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert len(pool.calls) == 1 and sleeps == []  # a wedged server is not asked again


def test_token_exchange_read_timeout_is_not_retried():
    asked = []

    def hang(request):
        asked.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    c = AirflowClient(
        URL,
        username="admin",
        password=PASSWORD,
        token_transport=httpx.MockTransport(hang),
        sleep=lambda s: None,
        pool_manager=FakePool(),
        timeout=7,
    )
    with pytest.raises(UnreachableError, match="did not answer within 7 s"):
        c.list_dags()
    assert len(asked) == 1
    assert c.connect_timeout == 5.0 and AirflowClient(URL, timeout=2).connect_timeout == 2


def test_token_endpoint_unreachable_is_unreachable():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    c = AirflowClient(
        URL,
        username="admin",
        password=PASSWORD,
        token_transport=httpx.MockTransport(refuse),
        sleep=lambda s: None,
        pool_manager=FakePool(),
    )
    with pytest.raises(UnreachableError, match="connection refused") as e:
        c.list_dags()
    assert PASSWORD not in str(e.value)


def test_a_url_with_a_path_in_front_of_the_api_says_to_check_the_url():
    # Airflow's web UI answers a POST under an unknown path with 405 and a GET with its HTML page (200):
    # before, "token exchange ... failed: HTTP 405" without a hint, and "internal error: JSONDecodeError"
    c, _ = make(FakePool(), TokenServer(status=405))
    with pytest.raises(AuthError, match="has no /auth/token endpoint") as e:
        c.list_dags()
    assert "LLMOPS_AIRFLOW_URL" in (e.value.hint or "")

    class HtmlPool(FakePool):
        def request(self, method, url, **kw):
            return urllib3.HTTPResponse(
                body=b"<!doctype html><html></html>",
                status=200,
                headers={"Content-Type": "text/html"},
                preload_content=False,
            )

    c, _ = make(HtmlPool(), username=None, password=None, token="given")
    with pytest.raises(LlmopsError, match="not the Airflow REST API") as e:
        c.get_run("d1", "r1")
    assert "LLMOPS_AIRFLOW_URL" in (e.value.hint or "") and "JSONDecodeError" not in e.value.message


def test_404_names_the_thing_and_suggests_dags_list():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags/nope/details", (404, {"detail": "The Dag with ID: `nope` was not found"}))
    c, _ = make(pool)
    with pytest.raises(NotFoundError) as e:
        c.get_dag("nope")
    assert "DAG 'nope' not found" in e.value.message and "llmops dags list" in e.value.hint


def test_400_from_params_carries_the_servers_message():
    pool = FakePool()
    pool.add(
        "POST",
        "/api/v2/dags/d/dagRuns",
        (400, {"detail": "Invalid input for param n: 50 is greater than the maximum of 10"}),
    )
    c, _ = make(pool)
    with pytest.raises(UsageError, match="50 is greater than the maximum of 10"):
        c.trigger("d", conf={"n": 50})


def test_trigger_sends_conf_run_id_note_and_logical_date_key():
    pool = FakePool()
    pool.add("POST", "/api/v2/dags/d/dagRuns", (200, {"dag_run_id": "my-run", "state": "queued"}))
    c, _ = make(pool)
    run = c.trigger("d", conf={"a": [1]}, run_id="my-run", note="hi")
    assert run["dag_run_id"] == "my-run"
    body = pool.calls[0]["body"]
    assert body["conf"] == {"a": [1]} and body["dag_run_id"] == "my-run" and body["note"] == "hi"
    assert "logical_date" in body and body["logical_date"] is None  # the server requires the key


def test_existing_run_id_is_a_conflict():
    pool = FakePool()
    pool.add("POST", "/api/v2/dags/d/dagRuns", (409, {"detail": "DAG run already exists"}))
    c, _ = make(pool)
    with pytest.raises(ConflictError) as e:
        c.trigger("d", run_id="dup")
    assert "'dup'" in e.value.message and e.value.exit_code == ExitCode.CONFLICT


def test_trigger_retry_after_a_reset_does_not_start_a_second_run():
    """The run id is generated client-side: a 409 on the retry means the first attempt got through."""
    pool = FakePool()
    pool.add(
        "POST",
        "/api/v2/dags/d/dagRuns",
        urllib3.exceptions.ProtocolError("Connection reset by peer"),
        (409, {"detail": "exists"}),
    )
    pool.add("GET", "/api/v2/dags/d/dagRuns/[^/]+", (200, {"dag_run_id": "x", "state": "queued"}))
    c, _ = make(pool)
    run = c.trigger("d")
    posted = [call["body"]["dag_run_id"] for call in pool.calls if call["method"] == "POST"]
    assert len(posted) == 2 and posted[0] == posted[1] and posted[0].startswith("manual__")
    assert unquote(pool.calls[-1]["path"]).endswith("/dagRuns/" + posted[0])
    assert run["state"] == "queued"


def test_pagination_collects_every_page():
    pool = FakePool()
    pages = [
        (200, {"dags": [{"dag_id": f"d{i}"} for i in range(start, min(start + 100, 250))], "total_entries": 250})
        for start in (0, 100, 200)
    ]
    pool.add("GET", "/api/v2/dags", *pages)
    c, _ = make(pool)
    dags = c.list_dags()
    assert len(dags) == 250 and dags[-1]["dag_id"] == "d249"
    assert [call["query"]["offset"] for call in pool.calls] == [["0"], ["100"], ["200"]]
    assert c.list_dags(limit=30) and pool.calls[-1]["query"]["limit"] == ["30"]


def test_task_instances_include_mapped_ones():
    pool = FakePool()
    tis = [{"task_id": "plan", "map_index": -1, "state": "success", "start_date": "2026-01-01T00:00:00Z"}] + [
        {"task_id": "shard", "map_index": i, "state": "running", "start_date": f"2026-01-01T00:00:0{i + 1}Z"}
        for i in range(3)
    ]
    pool.add("GET", "/api/v2/dags/d/dagRuns/r/taskInstances", (200, {"task_instances": tis, "total_entries": 4}))
    pool.add(
        "GET",
        "/api/v2/dags/d/dagRuns/r/taskInstances/shard/2",
        (200, {"task_id": "shard", "map_index": 2, "try_number": 1}),
    )
    c, _ = make(pool)
    got = c.list_task_instances("d", "r")
    assert [(t["task_id"], t["map_index"]) for t in got] == [("plan", -1), ("shard", 0), ("shard", 1), ("shard", 2)]
    assert c.get_task_instance("d", "r", "shard", 2)["map_index"] == 2


def test_logs_keep_every_field_and_follow_continuation_tokens():
    pool = FakePool()
    page1 = {"content": [{"event": "hello", "level": "info", "timestamp": "t1"}], "continuation_token": "c1"}
    page2 = {
        "content": [
            {"event": "boom", "level": "error", "error_detail": [{"exc_type": "ValueError", "exc_value": "x"}]}
        ],
        "continuation_token": "c2",
    }
    pool.add(
        "GET",
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/logs/1",
        (200, page1),
        (200, page2),
        (200, {"content": [], "continuation_token": "c2"}),
    )
    c, _ = make(pool)
    events = read_log(c, TaskTry("d", "r", "t", 1, map_index=3))
    assert [e["event"] for e in events] == ["hello", "boom"]
    assert events[1]["level"] == "error" and events[1]["error_detail"][0]["exc_type"] == "ValueError"
    assert pool.calls[0]["query"]["map_index"] == ["3"]
    assert pool.calls[1]["query"]["token"] == ["c1"]
    assert pool.calls[0]["headers"]["Accept"] == "application/json"


def test_clear_sends_dry_run_explicitly():
    pool = FakePool()
    pool.add(
        "POST",
        "/api/v2/dags/d/clearTaskInstances",
        (200, {"task_instances": [{"task_id": "t", "map_index": 1}], "total_entries": 1}),
    )
    c, _ = make(pool)
    assert c.clear_failed("d", "r", dry_run=True)[0]["map_index"] == 1
    c.clear_failed("d", "r", dry_run=False)
    bodies = [call["body"] for call in pool.calls]
    assert [b["dry_run"] for b in bodies] == [True, False]
    assert all(b["only_failed"] and b["dag_run_id"] == "r" for b in bodies)


def test_asset_event_resolves_the_uri_to_its_id():
    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/assets",
        (
            200,
            {
                "assets": [
                    {"id": 3, "uri": "llmops://collections/docs-old"},
                    {"id": 7, "uri": "llmops://collections/docs"},
                ],
                "total_entries": 2,
            },
        ),
    )
    pool.add("POST", "/api/v2/assets/events", (200, {"id": 11, "asset_id": 7, "extra": {"by": "ci"}}))
    c, _ = make(pool)
    ev = c.create_asset_event("llmops://collections/docs", extra={"by": "ci"})
    assert ev["asset_id"] == 7
    assert pool.calls[-1]["body"]["asset_id"] == 7 and pool.calls[-1]["body"]["extra"] == {"by": "ci"}
    assert pool.calls[0]["query"]["only_active"] == ["false"]  # assets created through an alias are not "active"
    with pytest.raises(NotFoundError, match="no asset with URI"):
        c.find_asset("llmops://collections/missing")


def test_tls_verification_is_on_by_default():
    c = AirflowClient("https://airflow.example")
    c._api("DAGApi")
    assert c._api_client.configuration.verify_ssl is True


def test_urls_and_server_messages_are_safe_to_print():
    assert display_url("https://user:pw@host:8080/airflow/") == "https://host:8080/airflow"
    assert server_message(b'{"detail": [{"loc": ["body", "conf", "n"], "msg": "too big"}]}') == "conf.n: too big"
    assert "[REDACTED" in server_message(b'{"detail": "bad password=hunter2secret"}')
    schema_dump = {
        "detail": "Invalid input for DAG parameter 'sources': 'docs' does not match '^(/|[a-z]+://)'\n\n"
        "Failed validating 'pattern' in schema['items']:\n    {'type': 'string', 'pattern': '^(/|[a-z]+://)'}\n\n"
        "On instance[0]:\n    'docs'"
    }
    assert server_message(json.dumps(schema_dump).encode()) == (
        "Invalid input for DAG parameter 'sources': 'docs' does not match '^(/|[a-z]+://)'"
    )
    # the schema's description (what to pass instead) is kept, however pprint wrapped and quoted it
    schema_dump["detail"] = schema_dump["detail"].replace(
        "{'type': 'string',",
        "{'description': 'Folders. Must be an absolute path '\n"
        "                    \"a worker's own.\",\n     'type': 'string',",
    )
    assert server_message(json.dumps(schema_dump).encode()) == (
        "Invalid input for DAG parameter 'sources': 'docs' does not match '^(/|[a-z]+://)'. "
        "Folders. Must be an absolute path a worker's own."
    )


def test_import_errors_are_listed():
    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/importErrors",
        (200, {"import_errors": [{"filename": "x.py", "stack_trace": "E"}], "total_entries": 1}),
    )
    c, _ = make(pool)
    assert c.list_import_errors()[0]["filename"] == "x.py"


def test_lean_import_loads_few_modules_and_the_package_still_completes():
    """One API module without the ~155 eager imports; later `from airflow_client.client import X` still works."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from llmops_cli.adapters.airflow.client import AirflowClient\n"
        "AirflowClient('http://x')._api('DAGApi')\n"
        "lean = len([m for m in sys.modules if m.startswith('airflow_client')])\n"
        "from airflow_client.client import ApiClient, DAGApi\n"
        "import airflow_client.client.models as models\n"
        "assert models.DAGResponse and ApiClient and DAGApi\n"
        "print(lean, len([m for m in sys.modules if m.startswith('airflow_client')]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lean, full = map(int, r.stdout.split())
    assert lean < 80 < full


def test_run_outcome_is_read_from_the_llmops_outcome_xcom():
    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/dags/d/dagRuns/r/taskInstances/~/xcomEntries",
        (
            200,
            {
                "xcom_entries": [{"task_id": "finalize", "map_index": -1, "key": "llmops_outcome", "timestamp": "t"}],
                "total_entries": 1,
            },
        ),
    )
    pool.add(
        "GET",
        "/api/v2/dags/d/dagRuns/r/taskInstances/finalize/xcomEntries/llmops_outcome",
        (200, {"key": "llmops_outcome", "value": {"status": "partial", "message": "1 of 2 source(s) skipped"}}),
    )
    c, _ = make(pool, token="t", username=None, password=None)
    assert c.get_run_outcome("d", "r") == {"status": "partial", "message": "1 of 2 source(s) skipped"}
    assert pool.calls[0]["query"]["xcom_key"] == ["llmops_outcome"]
    other = FakePool()
    other.add(
        "GET", "/api/v2/dags/d/dagRuns/r/taskInstances/~/xcomEntries", (200, {"xcom_entries": [], "total_entries": 0})
    )
    assert make(other, token="t", username=None, password=None)[0].get_run_outcome("d", "r") is None  # a DAG not ours


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_budget_caps_each_calls_wait_and_ends_the_command_when_spent():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", (200, {"dags": [], "total_entries": 0}))
    c, _ = make(pool, token="t", username=None, password=None, timeout=30)
    c._clock = clock = Clock()
    c.set_budget(4)
    c.list_dags()
    assert pool.calls[-1]["timeout"].read_timeout == 4 and pool.calls[-1]["timeout"].connect_timeout == 4
    clock.t += 3.5
    c.list_dags()
    assert pool.calls[-1]["timeout"].read_timeout == pytest.approx(0.5)
    clock.t += 1
    with pytest.raises(UnreachableError, match="within --timeout 4 s") as e:
        c.list_dags()
    assert e.value.exit_code == ExitCode.UNREACHABLE and len(pool.calls) == 2  # nothing sent past the budget
    c.allow(10)  # the report of an ended wait gets its own few seconds
    c.list_dags()
    assert pool.calls[-1]["timeout"].read_timeout == 10


def test_a_hung_call_cut_by_the_budget_says_so_and_retries_stop_at_the_budget():
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", urllib3.exceptions.ReadTimeoutError(None, "/api/v2/dags", "Read timed out."))
    c, _ = make(pool, token="t", username=None, password=None, timeout=30)
    c.set_budget(2)
    with pytest.raises(UnreachableError, match=r"did not answer within 2 s \(the rest of --timeout\)"):
        c.list_dags()
    refused = FakePool()
    refused.add("GET", "/api/v2/dags", never_connects())
    c, sleeps = make(refused, token="t", username=None, password=None)
    c._clock = clock = Clock()

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock.t += s

    c._sleep = sleep
    c.set_budget(1.2)  # room for the first backoff (0.5 s), not the second (1 s)
    with pytest.raises(UnreachableError, match="within --timeout 1.2 s") as e:
        c.list_dags()
    assert "connection refused" in e.value.message and sleeps == [0.5]


def test_run_operations_send_what_the_api_expects():
    pool = FakePool()
    pool.add("PATCH", "/api/v2/dags/d/dagRuns/r", (200, {"dag_run_id": "r", "state": "failed"}))
    pool.add("DELETE", "/api/v2/dags/d/dagRuns/r", (204, None))
    pool.add("GET", "/api/v2/dags/~/dagRuns", (200, {"dag_runs": [{"dag_run_id": "x"}], "total_entries": 1}))
    c, _ = make(pool, token="t", username=None, password=None)
    c.patch_run("d", "r", state="failed")
    assert pool.calls[-1]["body"] == {"state": "failed"} and pool.calls[-1]["query"]["update_mask"] == ["state"]
    c.patch_run("d", "r", note="")
    assert pool.calls[-1]["body"] == {"note": ""} and pool.calls[-1]["query"]["update_mask"] == ["note"]
    c.delete_run("d", "r")
    assert pool.calls[-1]["method"] == "DELETE"
    from datetime import UTC, datetime

    assert c.list_runs(None, since=datetime(2026, 1, 1, tzinfo=UTC), state=["failed"]) == [{"dag_run_id": "x"}]
    q = pool.calls[-1]["query"]
    assert q["run_after_gte"][0].startswith("2026-01-01T00:00:00") and q["state"] == ["failed"]


def test_xcom_and_backfill_calls():
    from datetime import UTC, datetime

    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/dags/d/dagRuns/r/taskInstances/square/xcomEntries/return_value",
        (200, {"key": "return_value", "map_index": 2, "value": "[1, 2]"}),
    )
    pool.add("POST", "/api/v2/backfills/dry_run", (200, {"backfills": [{"logical_date": "2026-01-01T00:00:00Z"}]}))
    pool.add("POST", "/api/v2/backfills", (200, {"id": 3, "dag_id": "d"}))
    pool.add("PUT", "/api/v2/backfills/3/cancel", (200, {"id": 3, "completed_at": "t"}))
    c, _ = make(pool, token="t", username=None, password=None)
    assert c.get_xcom("d", "r", "square", map_index=2)["value"] == [1, 2]  # JSON text decoded
    assert pool.calls[-1]["query"]["map_index"] == ["2"]
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    kw = {"reprocess": "failed", "max_active_runs": 2, "conf": {"n": 1}, "backwards": False}
    assert len(c.backfill_dry_run("d", start, end, **kw)) == 1
    assert c.create_backfill("d", start, end, **kw)["id"] == 3
    body = pool.calls[-1]["body"]
    assert body["reprocess_behavior"] == "failed" and body["max_active_runs"] == 2 and body["dag_run_conf"] == {"n": 1}
    assert body["from_date"].startswith("2026-01-01") and body["to_date"].startswith("2026-01-03")
    assert c.backfill_action(3, "cancel")["completed_at"] == "t"


def test_an_xcom_of_a_run_that_does_not_exist_names_the_run():
    pool = FakePool()
    xcom = "/api/v2/dags/d/dagRuns/[^/]+/taskInstances/t/xcomEntries/return_value"
    pool.add("GET", xcom, (404, {"detail": "XCom entry with key: `return_value` not found"}))
    pool.add("GET", "/api/v2/dags/d/dagRuns/nope", (404, {"detail": "The DagRun with dag_id: `d` was not found"}))
    pool.add("GET", "/api/v2/dags/d/dagRuns/r", (200, {"dag_run_id": "r", "dag_id": "d", "state": "success"}))
    c, _ = make(pool, token="t", username=None, password=None)
    with pytest.raises(NotFoundError) as ei:
        c.get_xcom("d", "nope", "t")
    assert "DAG run 'nope'" in ei.value.message and "runs list d" in ei.value.hint
    with pytest.raises(NotFoundError) as ei:  # the run exists: the XCom is what is missing
        c.get_xcom("d", "r", "t")
    assert "XCom 'return_value'" in ei.value.message


def test_a_second_backfill_of_a_dag_says_one_runs_at_a_time():
    from datetime import UTC, datetime

    pool = FakePool()
    pool.add("POST", "/api/v2/backfills", (409, {"detail": "There is already a running backfill for dag d"}))
    c, _ = make(pool, token="t", username=None, password=None)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ConflictError, match="already has a backfill that is not completed") as e:
        c.create_backfill("d", when, when, reprocess=None, max_active_runs=None, conf=None, backwards=False)
    assert "llmops backfill list d" in e.value.hint and "--run-id" not in e.value.hint


def test_a_backfill_refused_as_locked_is_asked_again_other_errors_are_not():
    from datetime import UTC, datetime

    locked = (503, {"detail": "Database is locked. Backfill creation is not supported on SQLite"})
    pool = FakePool()
    pool.add("POST", "/api/v2/backfills", locked, (200, {"id": 4}))
    c, sleeps = make(pool, token="t", username=None, password=None)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    kw = {"reprocess": None, "max_active_runs": None, "conf": None, "backwards": False}
    assert c.create_backfill("d", when, when, **kw)["id"] == 4 and sleeps == [0.5]
    pool = FakePool()
    pool.add("POST", "/api/v2/backfills", (500, {"detail": "boom"}), (200, {"id": 5}))
    c, _ = make(pool, token="t", username=None, password=None)
    with pytest.raises(LlmopsError, match="HTTP 500"):  # it may have been created: not asked twice
        c.create_backfill("d", when, when, **kw)
    assert len(pool.calls) == 1
