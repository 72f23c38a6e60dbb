"""A local Redis (Debian's ``redis-server``) on 127.0.0.1: the Celery broker of a multi-worker local Airflow.

In-memory only (no RDB snapshots, no append-only file): a broker of a throw-away test set-up keeps nothing across
restarts. A generated password (``requirepass``, kept in the folder, mode 0600) keeps other local users out; the
broker URL that carries it goes into the Airflow processes' environment only, never to output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.devstack import free_port, read_state, wait_until, write_state

INSTALL_HINT = "install Debian's redis-server package (apt-get install redis-server)"


@dataclass
class RedisServer:
    folder: Path
    port: int
    pid: int

    @property
    def password(self) -> str:
        return (self.folder / "password").read_text().strip()

    @property
    def url(self) -> str:
        """The broker URL, password included: for process environments, never for output."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop(self.folder)


def executable() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )


def _alive(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def ping(port: int, password: str, timeout: float = 1.0) -> bool:
    """AUTH + PING in the Redis protocol (no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
        return data.startswith(b"+OK") and b"+PONG" in data
    except OSError:
        return False


def running(folder: Path | str) -> RedisServer | None:
    folder = Path(folder).resolve()
    state = read_state(folder)
    if not state or state.get("kind") != "redis" or not _alive(state["pid"]):
        return None
    server = RedisServer(folder, state["port"], state["pid"])
    return server if ping(server.port, server.password) else None


def start(folder: Path | str, *, port: int | None = None, timeout: float = 30) -> RedisServer:
    """Start redis-server on 127.0.0.1 for ``folder`` (reused when already running there)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    up = running(folder)
    if up is not None:
        return up
    exe = executable()
    if exe is None:
        raise FileNotFoundError(f"redis-server is not installed: {INSTALL_HINT}")
    pw_file = folder / "password"
    if not pw_file.exists():
        pw_file.touch(mode=0o600)
        pw_file.write_text(secrets.token_urlsafe(24) + "\n")
    port = port or (read_state(folder) or {}).get("port") or free_port()
    conf = folder / "redis.conf"  # the password in a file (mode 0600), not on a command line `ps` shows
    conf.touch(mode=0o600)
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {pw_file.read_text().strip()}\n"
        f'save ""\nappendonly no\ndir {folder}\ndaemonize no\nlogfile ""\n'
    )
    log = folder / "redis.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [exe, str(conf)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    write_state(folder, {"kind": "redis", "port": port, "pid": proc.pid, "log": str(log)})
    server = RedisServer(folder, port, proc.pid)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log.read_text(errors='replace')[-1500:]}")
        return ping(port, server.password)

    try:
        wait_until(ready, timeout, f"Redis on 127.0.0.1:{port}")
    except BaseException:
        stop(folder)
        raise
    return server


def stop(folder: Path | str, timeout: float = 10) -> bool:
    """Stop the redis-server of ``folder``; False when none was running."""
    folder = Path(folder).resolve()
    state = read_state(folder)
    if not state or state.get("kind") != "redis" or not _alive(state["pid"]):
        return False
    pid = state["pid"]
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(pid, signal.SIGKILL)
    return True
