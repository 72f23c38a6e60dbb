"""Deployment operations and the token store, on fakes: the client on a fake urllib3 pool and an httpx MockTransport
(tests/unit/test_airflow_client.py), the token store in tmp_path, a keyring backend held in memory. No network."""

from __future__ import annotations

import base64
import json
import os
import stat
import time

import httpx
import pytest
from typer.testing import CliRunner

from llmops_cli.adapters.airflow.client import AirflowClient
from llmops_cli.adapters.airflow.ops import (
    LLMOPS_POOL,
    MASK,
    AirflowOps,
    mask_connection,
    mask_variable,
    unhealthy_components,
)
from llmops_cli.adapters.airflow.token_store import TokenStore, token_expiry
from llmops_cli.errors import AuthError, ExitCode, NotFoundError, UsageError
from tests.unit.test_airflow_client import PASSWORD, URL, FakePool, TokenServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def jwt(exp: float, sub: str = "admin") -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS512'})}.{part({'sub': sub, 'exp': int(exp)})}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def client(pool: FakePool, tokens: TokenServer, store: TokenStore | None, **kw) -> AirflowClient:
    kw.setdefault("username", "admin")
    kw.setdefault("password", PASSWORD)
    return AirflowClient(
        URL,
        pool_manager=pool,
        token_transport=httpx.MockTransport(tokens),
        token_store=store,
        sleep=lambda s: None,
        **kw,
    )


def dags_pool(*answers) -> FakePool:
    pool = FakePool()
    pool.add("GET", "/api/v2/dags", *(answers or [(200, {"dags": [], "total_entries": 0})]))
    return pool


# ------------------------------------------------------------------------------------------------ the token store
def test_the_file_store_is_0600_written_atomically_and_never_holds_other_files(tmp_path):
    store = TokenStore(tmp_path / "cfg" / "tokens.json", backend="file")
    token = jwt(time.time() + 3600)
    login = store.put(URL, "admin", token, profile="prod")
    path = tmp_path / "cfg" / "tokens.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokens.json"]  # no temporary file left behind
    assert login.storage == "file" and login.profile == "prod" and not login.expired()
    assert abs(login.expires_at - token_expiry(token)) < 1
    assert store.token_for(URL, "admin", can_refresh=False) == token
    assert store.token_for(URL, None, can_refresh=False) == token  # no user configured: the one login of this URL
    assert store.token_for(URL, "someone-else", can_refresh=True) is None
    assert token not in json.dumps(login.as_dict())


def test_an_expired_login_without_a_password_says_to_log_in_again(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    store.put(URL, "admin", jwt(time.time() - 10))
    assert store.token_for(URL, "admin", can_refresh=True) is None  # the password will get a new one
    with pytest.raises(AuthError) as e:
        store.token_for(URL, "admin", can_refresh=False)
    assert e.value.exit_code == ExitCode.AUTH and "llmops auth login" in e.value.hint


def test_a_token_close_to_its_expiry_counts_as_expired(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    store.put(URL, "admin", jwt(time.time() + 30))  # inside the margin: it could lapse mid-command
    assert store.token_for(URL, "admin", can_refresh=True) is None


def test_a_damaged_index_reads_as_logged_out(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    store = TokenStore(path, backend="file")
    assert store.get(URL, "admin") is None
    store.put(URL, "admin", jwt(time.time() + 3600))
    assert store.get(URL, "admin") is not None


class MemoryKeyring:
    """A keyring backend held in memory (priority 1: a usable one)."""

    priority = 1

    def __init__(self):
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service, user):
        return self.secrets.get((service, user))

    def set_password(self, service, user, pw):
        self.secrets[(service, user)] = pw

    def delete_password(self, service, user):
        self.secrets.pop((service, user), None)


def test_with_a_usable_keyring_the_token_lives_there_and_the_file_only_indexes_it(tmp_path, monkeypatch):
    import llmops_cli.adapters.airflow.token_store as ts

    kr = MemoryKeyring()

    class FakeKeyringModule:
        @staticmethod
        def get_keyring():
            return kr

        get_password, set_password, delete_password = kr.get_password, kr.set_password, kr.delete_password

    monkeypatch.setattr(ts, "_keyring", lambda: FakeKeyringModule)
    monkeypatch.delenv("LLMOPS_TOKEN_STORE", raising=False)
    store = TokenStore(tmp_path / "tokens.json")
    token = jwt(time.time() + 3600)
    assert store.put(URL, "admin", token).storage == "keyring"
    assert token not in (tmp_path / "tokens.json").read_text()
    assert list(kr.secrets.values()) == [token]
    assert store.token_for(URL, "admin", can_refresh=False) == token
    store.delete(URL, "admin")
    assert kr.secrets == {} and store.get(URL, "admin") is None


def test_without_a_usable_keyring_backend_the_file_is_used(tmp_path, monkeypatch):
    import llmops_cli.adapters.airflow.token_store as ts

    class FailKeyring:
        priority = 0

    class FakeKeyringModule:
        @staticmethod
        def get_keyring():
            return FailKeyring()

    monkeypatch.setattr(ts, "_keyring", lambda: FakeKeyringModule)
    monkeypatch.delenv("LLMOPS_TOKEN_STORE", raising=False)
    assert TokenStore(tmp_path / "tokens.json").put(URL, "admin", jwt(time.time() + 60)).storage == "file"


# ------------------------------------------------------------------------------------------------ the client's use
def test_a_stored_login_is_reused_by_every_command_and_the_password_is_not_posted(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    tokens = TokenServer(token=jwt(time.time() + 3600))
    pool = dags_pool()
    first = client(pool, tokens, store)
    store.put(first.shown_url, "admin", first.login())
    for _ in range(5):  # five commands, each its own client
        client(pool, tokens, store).list_dags()
    assert len(tokens.requests) == 1
    assert {c["headers"]["Authorization"] for c in pool.calls} == {f"Bearer {tokens.token}"}


def test_without_a_login_nothing_is_stored_and_each_command_logs_in(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    tokens = TokenServer(token=jwt(time.time() + 3600))
    for _ in range(2):
        client(dags_pool(), tokens, store).list_dags()
    assert len(tokens.requests) == 2 and not (tmp_path / "tokens.json").exists()


def test_an_expired_login_is_renewed_with_the_password_and_kept(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    store.put(URL, "admin", jwt(time.time() - 5))
    fresh = jwt(time.time() + 3600)
    tokens = TokenServer(token=fresh)
    client(dags_pool(), tokens, store).list_dags()
    assert len(tokens.requests) == 1
    assert store.token_for(URL, "admin", can_refresh=False) == fresh


def test_a_login_the_server_rejects_is_renewed_with_the_password(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    store.put(URL, "admin", jwt(time.time() + 3600, sub="old"))
    fresh = jwt(time.time() + 3600, sub="new")
    tokens = TokenServer(token=fresh)
    pool = dags_pool((403, {"detail": "Invalid JWT token"}), (200, {"dags": [], "total_entries": 0}))
    client(pool, tokens, store).list_dags()
    assert len(tokens.requests) == 1 and pool.calls[-1]["headers"]["Authorization"] == f"Bearer {fresh}"
    assert store.token_for(URL, "admin", can_refresh=False) == fresh


def test_a_rejected_login_without_a_password_exits_8_and_is_not_sent_again(tmp_path):
    store = TokenStore(tmp_path / "tokens.json", backend="file")
    store.put(URL, "admin", jwt(time.time() + 3600))
    pool = dags_pool((401, {"detail": "Token Expired"}))
    with pytest.raises(AuthError) as e:
        client(pool, TokenServer(), store, password=None).list_dags()
    assert e.value.exit_code == ExitCode.AUTH and "llmops auth login" in e.value.hint
    with pytest.raises(AuthError, match="rejected by the server"):
        client(pool, TokenServer(), store, password=None).list_dags()
    assert len(pool.calls) == 1  # the second command did not send the rejected token


def test_a_given_token_bypasses_the_store(tmp_path):
    from llmops_cli.settings import AirflowConnection

    conn = AirflowConnection(url=URL, token="given")
    assert AirflowClient.from_settings(conn)._token_store is None
    assert AirflowClient.from_settings(AirflowConnection(url=URL, username="a", password="b"))._token_store is not None


# ------------------------------------------------------------------------------------------------ masking
def test_variables_are_masked_by_airflows_sensitive_key_rule():
    assert mask_variable({"key": "slack_api_key", "value": "xoxb-1"})["value"] == MASK
    assert mask_variable({"key": "DB_PASSWORD", "value": "pw"})["value"] == MASK
    assert mask_variable({"key": "auth_token", "value": "t"})["value"] == MASK
    assert mask_variable({"key": "max_tokens", "value": "512"})["value"] == "512"  # a count, not a token
    url = mask_variable({"key": "db_url", "value": "postgres://u:hunter2@db/x"})["value"]
    assert "hunter2" not in url and url.startswith("postgres://u:")


def test_connections_never_show_the_password_and_mask_secret_extras():
    c = mask_connection(
        {
            "connection_id": "c",
            "conn_type": "http",
            "login": "bot",
            "password": "pw-real",
            "extra": json.dumps({"headers": {"Authorization-Token": "t0k"}, "client_secret": "s", "timeout": 30}),
        }
    )
    assert c["password"] == MASK and "pw-real" not in json.dumps(c)
    extra = json.loads(c["extra"])
    assert extra == {"headers": {"Authorization-Token": MASK}, "client_secret": MASK, "timeout": 30}
    assert mask_connection({"connection_id": "c", "password": None, "extra": None})["password"] is None


# ------------------------------------------------------------------------------------------------ operations
def test_pools_set_creates_then_patches_only_the_given_fields():
    pool = FakePool()
    pool.add(
        "GET",
        "/api/v2/pools/p",
        (404, {"detail": "not found"}),
        (200, {"name": "p", "slots": 2, "description": "d", "include_deferred": False}),
    )
    pool.add("POST", "/api/v2/pools", (201, {"name": "p", "slots": 2}))
    pool.add("PATCH", "/api/v2/pools/p", (200, {"name": "p", "slots": 5}))
    ops = AirflowOps(client(pool, TokenServer(), None))
    assert ops.set_pool("p", slots=2, description="d") == ({"name": "p", "slots": 2}, True)
    assert ops.set_pool("p", slots=5) == ({"name": "p", "slots": 5}, False)
    patch = pool.calls[-1]
    assert patch["query"]["update_mask"] == ["slots"]
    assert patch["body"] == {"pool": "p", "slots": 5, "description": "d", "include_deferred": False}


def test_pools_set_of_a_missing_pool_without_slots_is_not_found():
    pool = FakePool()
    pool.add("GET", "/api/v2/pools/p", (404, {"detail": "not found"}))
    with pytest.raises(NotFoundError, match="pool 'p' does not exist"):
        AirflowOps(client(pool, TokenServer(), None)).set_pool("p", slots=None)


def test_the_llmops_pool_is_created_once_and_an_existing_one_is_left_alone():
    pool = FakePool()
    pool.add("GET", f"/api/v2/pools/{LLMOPS_POOL}", (404, {"detail": "x"}), (200, {"name": LLMOPS_POOL, "slots": 3}))
    pool.add("POST", "/api/v2/pools", (201, {"name": LLMOPS_POOL, "slots": 1}))
    ops = AirflowOps(client(pool, TokenServer(), None))
    assert ops.ensure_llmops_pool() == ({"name": LLMOPS_POOL, "slots": 1}, True)
    assert [c["body"]["slots"] for c in pool.calls if c["method"] == "POST"] == [1]
    assert ops.ensure_llmops_pool() == ({"name": LLMOPS_POOL, "slots": 3}, False)  # resized by an admin: kept


def test_deleting_default_pool_is_a_usage_error_with_the_servers_reason():
    pool = FakePool()
    pool.add("DELETE", "/api/v2/pools/default_pool", (400, {"detail": "Default Pool can't be deleted"}))
    with pytest.raises(UsageError, match="Default Pool can't be deleted"):
        AirflowOps(client(pool, TokenServer(), None)).delete_pool("default_pool")


def test_a_connection_that_does_not_exist_needs_its_type():
    pool = FakePool()
    pool.add("GET", "/api/v2/connections/c", (404, {"detail": "x"}))
    with pytest.raises(UsageError, match="its type is needed"):
        AirflowOps(client(pool, TokenServer(), None)).set_connection("c", {"host": "h"})


def test_asset_show_has_queued_events_and_an_empty_queue_is_not_an_error():
    pool = FakePool()
    pool.add("GET", "/api/v2/assets/7", (200, {"id": 7, "uri": "x://a", "scheduled_dags": [{"dag_id": "d"}]}))
    pool.add(
        "GET", "/api/v2/assets/7/queuedEvents", (200, {"queued_events": [{"dag_id": "d", "asset_id": 7}]}), (404, {})
    )
    pool.add("GET", "/api/v2/assets/events", (200, {"asset_events": [{"id": 1}], "total_entries": 1}))
    ops = AirflowOps(client(pool, TokenServer(), None))
    a = ops.asset("7")
    assert a["queued_events"] == [{"dag_id": "d", "asset_id": 7}] and a["recent_events"] == [{"id": 1}]
    assert ops.asset("7")["queued_events"] == []


def _health_transport(status: int, body: dict, seen: list) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/version"):
            return httpx.Response(200, json={"version": "3.3.2"})
        return httpx.Response(status, json=body)

    return httpx.MockTransport(answer)


def test_health_needs_no_credentials_and_names_unhealthy_components():
    seen: list[httpx.Request] = []
    body = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy"}, "triggerer": {"status": None}}
    tokens = TokenServer(status=401)  # a wrong password must not stop a health check
    ops = AirflowOps(client(FakePool(), tokens, None), transport=_health_transport(503, body, seen))
    doc = ops.health()
    assert doc["version"]["version"] == "3.3.2" and doc["components"] == body
    assert unhealthy_components(doc) == ["scheduler"]  # a triggerer that never ran is not "unhealthy"
    assert tokens.requests == [] and all("authorization" not in r.headers for r in seen)


def test_health_command_exits_1_when_a_component_is_unhealthy_and_0_when_all_are_healthy(monkeypatch):
    import llmops_cli.cli.airflow_watch as watch
    import llmops_cli.cli.ops_cmd as ops_cmd
    from llmops_cli.cli.app import app

    monkeypatch.setattr(watch, "connect", lambda url=None: client(FakePool(), TokenServer(), None))
    for status, code in (("unhealthy", 1), ("healthy", 0)):
        body = {"scheduler": {"status": status}}
        transport = _health_transport(200, body, [])
        monkeypatch.setattr(
            ops_cmd,
            "ops_session",
            lambda url, json_out, timeout=None, t=transport: (
                watch.Output(json_out),
                AirflowOps(watch.connect(url), transport=t),
            ),
        )
        r = CliRunner().invoke(app, ["health", "--json"])
        assert r.exit_code == code, r.output
        assert json.loads(r.stdout)["healthy"] is (code == 0)


# ------------------------------------------------------------------------------------------------ auth commands
def test_auth_login_with_a_profile_keeps_the_token_and_status_and_logout_never_print_it(monkeypatch, tmp_path):
    import llmops_cli.wiring as wiring
    from llmops_cli.cli.app import app

    for k in [k for k in os.environ if k.startswith("LLMOPS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("LLMOPS_TOKEN_STORE", "file")
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text(
        f"airflow:\n  profiles:\n    prod:\n      url: {URL}\n      username: ci\n      password: {PASSWORD}\n"
    )
    tokens = TokenServer(token=jwt(time.time() + 3600, sub="ci"))
    monkeypatch.setattr(
        wiring,
        "build_airflow_client",
        lambda s: AirflowClient.from_settings(s.airflow, token_transport=httpx.MockTransport(tokens)),
    )

    def run(*args: str):
        r = CliRunner().invoke(app, ["--config", str(cfg), *args])
        assert tokens.token not in r.output and PASSWORD not in r.output
        return r

    r = run("auth", "login", "--profile", "prod", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["url"], doc["username"], doc["profile"], doc["valid"]) == (URL, "ci", "prod", True)
    assert tokens.requests == [{"username": "ci", "password": PASSWORD}]
    assert run("auth", "status", "--profile", "prod").exit_code == 0
    assert json.loads(run("auth", "logout", "--profile", "prod", "--json").stdout)["logged_out"] is True
    assert run("auth", "status", "--profile", "prod").exit_code == 8
