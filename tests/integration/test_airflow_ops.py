"""Operating a real Airflow 3.3 (the session's ``airflow_server``) with llmops: docs/ci.md's operations block run as
written, with one token exchange for all its commands; the exit codes of the README table; a DAG file that does not
import, listed by `dags errors`. Every command runs as a subprocess: no traceback, no password or secret printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_airflow_cli import llmops

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
TEST_DAGS = REPO / "tests" / "integration" / "airflow_dags"
SECTION = "## Operate a deployment without the web UI"
CI_API_KEY = "ci-key-0123456789-not-for-output"
CI_DB_PASSWORD = "ci-db-pass-9876-not-for-output"


def docs_block() -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, f"no bash block in docs/ci.md's {SECTION!r}"
    return m.group(1)


def token_posts(srv) -> int:
    """POST /auth/token requests in the API server's access log so far."""
    log = srv.home / "process-logs" / "api-server.log"
    return sum("path=/auth/token" in ln and "method=POST" in ln for ln in log.read_text(errors="replace").splitlines())


def own_env(srv, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The session's connection, with a token store of this test's own (never the developer's)."""
    env = {**srv.env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "LLMOPS_TOKEN_STORE": "file", **extra}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `llmops` as a CI job has it
    return env


def test_docs_ci_operations_block_runs_with_one_token_exchange(airflow_server, tmp_path):
    srv = airflow_server
    script = docs_block()
    commands = [ln for ln in script.splitlines() if ln.strip().startswith(("llmops ", "printf "))]
    assert len(commands) >= 15 and commands[0].startswith("llmops auth login")
    env = own_env(srv, tmp_path, CI_API_KEY=CI_API_KEY, CI_DB_PASSWORD=CI_DB_PASSWORD)
    before = token_posts(srv)
    r = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=srv.home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"the docs/ci.md block failed (exit {r.returncode}):\n{out[-6000:]}"
    assert "Traceback" not in out
    for secret in (srv.server.password, CI_API_KEY, CI_DB_PASSWORD):
        assert secret not in out, "a secret was printed"
    assert '"key": "ci_api_key"' in r.stdout and '"value": "***"' in r.stdout  # masked in --json too
    assert "llmops_embedded_store" in r.stdout and "ci_jobs" in r.stdout
    time.sleep(1.0)  # the access log is written as requests finish
    # one exchange for the whole block (auth login); without the stored login each command would post the password
    assert token_posts(srv) - before == 1
    assert json.loads((tmp_path / "config" / "llmops" / "tokens.json").read_text())["logins"] == {}  # logged out


def test_exit_codes_of_the_operations(airflow_server, tmp_path):
    srv = airflow_server
    env = own_env(srv, tmp_path)

    def code(*args: str, env: dict[str, str] = env) -> int:
        return llmops(srv, *args, env=env).returncode

    health = json.loads(llmops(srv, "health", "--json", env=env).stdout)
    assert health["healthy"] and health["version"]["version"].startswith("3.")
    assert health["components"]["scheduler"]["status"] == "healthy"
    assert code("variables", "get", "no_such_variable") == 9
    assert code("pools", "set", "no_such_pool") == 9  # creating needs --slots
    assert code("pools", "delete", "default_pool") == 2
    assert code("connections", "set", "no_such_connection", "--host", "h") == 2  # creating needs --conn-type
    assert code("auth", "status") == 8  # not logged in

    closed = own_env(srv, tmp_path, LLMOPS_AIRFLOW_URL="http://127.0.0.1:9")  # nothing listens on port 9
    r = llmops(srv, "health", env=closed)
    assert r.returncode == 7 and "cannot reach" in r.stderr

    wrong = own_env(srv, tmp_path, LLMOPS_AIRFLOW_PASSWORD="not-the-password")
    assert code("auth", "login", env=wrong) == 8

    # a stored login the server rejects, with no password to renew it: exit 8 and "run llmops auth login"
    assert code("auth", "login") == 0
    path = tmp_path / "config" / "llmops" / "tokens.json"
    index = json.loads(path.read_text())
    for entry in index["logins"].values():
        entry["token"] = entry["token"][:-8] + "AAAAAAAA"  # signature no longer matches
    path.write_text(json.dumps(index))
    no_password = {k: v for k, v in env.items() if k != "LLMOPS_AIRFLOW_PASSWORD"}
    r = llmops(srv, "pools", "list", env=no_password)
    assert r.returncode == 8 and "llmops auth login" in r.stderr
    assert code("pools", "list") == 0  # with the password the login is renewed by itself


def test_a_dag_file_that_does_not_import_is_listed_by_dags_errors(airflow_server, tmp_path):
    srv = airflow_server
    env = own_env(srv, tmp_path)
    marker = f"LLMOPS-TEST-BROKEN-{os.getpid()}"
    # it breaks only in this session's Airflow: other sessions parsing the same folder see a file without DAGs
    broken = TEST_DAGS / f"llmops_test_broken_{os.getpid()}.py"
    broken.write_text(
        "# an airflow DAG file that does not import (the words 'airflow' and 'dag' make the processor parse it)\n"
        "import os\n\n"
        f"if os.environ.get('AIRFLOW_HOME') == {str(srv.home)!r}:\n"
        f"    raise RuntimeError({marker!r})\n"
    )

    def errors(*flags: str) -> subprocess.CompletedProcess:
        # not test_airflow_cli.llmops: the import error's own stack trace is part of the answer here
        r = subprocess.run(
            [sys.executable, "-m", "llmops_cli", "dags", "errors", *flags], env=env, capture_output=True, text=True
        )
        assert srv.server.password not in r.stdout + r.stderr and "Traceback" not in r.stderr
        return r

    def listed() -> list[dict]:
        doc = json.loads(errors("--json").stdout)
        return [e for e in doc["import_errors"] if marker in (e.get("stack_trace") or "")]

    try:
        deadline = time.monotonic() + 60
        while not listed() and time.monotonic() < deadline:
            time.sleep(1)
        found = listed()
        assert found and found[0]["filename"].endswith(broken.name)
        r = errors("--strict")
        assert r.returncode == 1 and broken.name in r.stdout and "do not import" in r.stderr
        assert marker in r.stdout  # the last line of the stack trace names the cause
    finally:
        broken.unlink(missing_ok=True)
    deadline = time.monotonic() + 60  # leave the server as we found it for the tests after this one
    while listed() and time.monotonic() < deadline:
        time.sleep(1)
    assert not listed()
