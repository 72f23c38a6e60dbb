"""An Airflow API server that accepts connections and never answers: llmops must give up quickly with exit 7.

A real listening socket on 127.0.0.1 (the kernel completes the TCP handshake; nothing ever reads or writes), and
`llmops` as a subprocess, as a user would run it. No Airflow needed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.conftest import llmops_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def hung_server():
    """Accepts every connection, reads nothing, answers nothing (a wedged API server behind a live port)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)  # kept open, never answered

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}", held
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


@pytest.mark.parametrize("auth", ["password", "token"])
def test_a_hung_api_server_exits_7_within_seconds(hung_server, tmp_path, auth):
    url, held = hung_server
    creds = (
        {"LLMOPS_AIRFLOW_USERNAME": "admin", "LLMOPS_AIRFLOW_PASSWORD": "pw-not-shown"}
        if auth == "password"
        else {"LLMOPS_AIRFLOW_TOKEN": "tok-not-shown"}
    )
    # a 2 s read timeout: the one try it gets must be the only one (before: 4 tries x the timeout, plus backoff)
    env = llmops_env(tmp_path, LLMOPS_AIRFLOW_URL=url, LLMOPS_AIRFLOW_TIMEOUT="2", **creds)
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "dags", "list"], env=env, capture_output=True, text=True, timeout=90
    )
    took = time.monotonic() - start
    assert r.returncode == 7, r.stderr
    assert took < 6, f"took {took:.1f} s to give up on a server that never answers"
    assert "did not answer" in r.stderr and url in r.stderr
    assert "Traceback" not in r.stderr and "not-shown" not in r.stderr
    assert len(held) == 1, f"{len(held)} connections: a read timeout must not be retried"


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--timeout", "1.5"],
        ["trigger-dag", "d", "--timeout", "1.5"],
        ["runs", "wait", "d", "r", "--timeout", "1.5"],  # a wait: its budget runs 2 s past --timeout
    ],
)
def test_timeout_bounds_a_command_whatever_airflow_timeout_says(hung_server, tmp_path, args):
    url, _held = hung_server
    # airflow.timeout stays at its default (30 s): --timeout alone bounds the command
    env = llmops_env(tmp_path, LLMOPS_AIRFLOW_URL=url, LLMOPS_AIRFLOW_TOKEN="tok-not-shown")
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "llmops_cli", *args], env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    assert r.returncode == 7, r.stderr
    assert took < 7, f"took {took:.1f} s with --timeout 1.5"
    assert "--timeout" in r.stderr and url in r.stderr and "Traceback" not in r.stderr
