"""A local Chroma server: ``chroma run --path DIR --host 127.0.0.1 --port P`` (the server ships with chromadb),
ready when ``GET /api/v2/heartbeat`` answers. Its pid, port and log are recorded in DIR, so ``stop(DIR)`` works from
any process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.devstack import free_port, read_state, wait_until, write_state


@dataclass
class ChromaServer:
    folder: Path
    port: int
    pid: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        stop(self.folder)

    def __enter__(self) -> ChromaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"  # the venv's own, whatever PATH says
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError("the `chroma` command (installed with the chromadb package) is not on PATH")
    return found


def heartbeat(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """``pid`` is a live chroma process (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"chroma" in cmdline


def running(folder: Path | str) -> ChromaServer | None:
    folder = Path(folder).resolve()
    state = read_state(folder)
    if not state or state.get("kind") != "chroma" or not _alive(state["pid"]):
        return None
    server = ChromaServer(folder, state["port"], state["pid"])
    return server if heartbeat(server.url) else None


def start(folder: Path | str, *, port: int | None = None, timeout: float = 60) -> ChromaServer:
    """Start a Chroma server on 127.0.0.1 keeping its data in ``folder``; a server already running there is
    returned as it is."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    up = running(folder)
    if up is not None:
        return up
    port = port or free_port()
    log = folder / "chroma-server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    cmd = [_chroma_executable(), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        # its own session: a Ctrl-C in the terminal that started it does not reach it; stop() ends the group
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    server = ChromaServer(folder, port, proc.pid)
    write_state(folder, {"kind": "chroma", "port": port, "pid": proc.pid, "log": str(log)})

    def ready() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chroma run exited with {proc.returncode}: {tail}")
        return heartbeat(server.url)

    try:
        wait_until(ready, timeout, f"Chroma server on 127.0.0.1:{port}")
    except BaseException:
        stop(folder)
        raise
    return server


def stop(folder: Path | str, timeout: float = 20) -> bool:
    """Stop the server of ``folder`` (SIGTERM to its process group, SIGKILL after ``timeout``)."""
    folder = Path(folder).resolve()
    state = read_state(folder)
    if not state or state.get("kind") != "chroma" or not _alive(state["pid"]):
        return False
    pid = state["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent
        except ChildProcessError:
            waited = 0
        if waited == pid or not _alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
