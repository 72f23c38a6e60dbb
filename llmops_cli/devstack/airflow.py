"""A real Airflow 3.3 on 127.0.0.1 for trying the Airflow side locally and for the tests (`llmops dev airflow`).

Airflow lives in its own venv with this project installed (editable from a source checkout, else the same
distribution that is installed here), so the shipped DAGs import ``llmops_cli`` and run the same core steps as the
local commands. Installing Airflow into the project's venv would let litellm and Airflow downgrade each other's
dependencies; one pip command that names both resolves cleanly. torch goes in first, pinned (anything else pulls
GBs of CUDA wheels).

Two executors:
- ``local``: LocalExecutor on SQLite; api-server, scheduler and dag-processor, tasks run by the scheduler.
- ``celery``: CeleryExecutor with a Redis broker (Debian's redis-server) and a PostgreSQL metadata database
  (``devstack.postgres``), plus N ``airflow celery worker`` processes. Each worker has its own HOME, working
  directory, AIRFLOW_HOME and log folder, and its own loopback address (127.0.0.2, 127.0.0.3, ...) as the
  hostname task instances record: that tells which worker ran a task, and lets the api-server fetch a task's log
  from that worker's own log server (all on one port, each bound to its worker's address).

Every process runs in its own session (setsid) with a pid file in AIRFLOW_HOME; ``down`` signals their process
groups. Credentials are TEST credentials for this loopback server: a random password in AIRFLOW_HOME/passwords.json
(mode 0600), never printed; the JWT secret likewise.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmops_cli.devstack import free_port

AIRFLOW_VERSION = "3.3.2"
# celery + postgres: the multi-worker set-up; installed always, so switching executors never reinstalls
# celery 5.7 dropped celery.backends.database.retry, which apache-airflow-providers-celery 3.26 imports ("Failed to
# import providers_configuration_loaded" when a worker starts): 5.6 until the provider follows
# openlineage: llmops tasks report their datasets through Airflow's OpenLineage integration (llmops_cli/airflow);
# it stays off until a transport is configured
AIRFLOW_REQUIREMENTS = [
    f"apache-airflow[celery,postgres]=={AIRFLOW_VERSION}",
    "celery==5.6.3",
    "apache-airflow-providers-openlineage==2.20.3",
]
TORCH_PIN = "torch==2.13.0"
DISTRIBUTION = "llmops-cli"
USERNAME = "admin"
SERVER_COMPONENTS = ("api-server", "scheduler", "dag-processor")
EXECUTORS = ("local", "celery")
STATE_FILE = "llmops-server.json"
PACKAGE_DAGS = Path(__file__).resolve().parents[1] / "dags"  # package data: there in a wheel install too
WORKER_ADDRESS_ENV = "LLMOPS_DEV_WORKER_ADDRESS"
POOL_ENV = "LLMOPS_EMBEDDED_STORE_POOL"  # entry/dag_support.py reads it at DAG parse time (writer_task_args)
AIRFLOW_DB = "airflow"

Log = Callable[[str], None]


def to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


class AirflowStartError(RuntimeError):
    """The local Airflow could not be installed or started (the message carries the log tail)."""


# ----------------------------------------------------------------------------------------------- install
def source_checkout() -> Path | None:
    """The source tree this package runs from (an editable install or the repository itself), else None."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        return root if f'name = "{DISTRIBUTION}"' in pyproject.read_text() else None
    except OSError:
        return None


def default_venv() -> Path:
    """Airflow's venv: LLMOPS_AIRFLOW_VENV; else .venv-airflow in a source checkout; else under the user's data."""
    if os.environ.get("LLMOPS_AIRFLOW_VENV"):
        return Path(os.environ["LLMOPS_AIRFLOW_VENV"]).expanduser()
    repo = source_checkout()
    if repo is not None:
        return repo / ".venv-airflow"
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "llmops" / f"venv-airflow-{AIRFLOW_VERSION}"


def default_home() -> Path:
    """AIRFLOW_HOME of the local server: LLMOPS_LOCAL_AIRFLOW_HOME, else .airflow in the current folder."""
    return Path(os.environ.get("LLMOPS_LOCAL_AIRFLOW_HOME") or Path.cwd() / ".airflow")


def project_requirement() -> tuple[list[str], bytes]:
    """What pip installs into Airflow's venv for the DAGs to import llmops_cli, and what identifies it (for the
    reinstall check): the checkout (editable), else the wheel or folder this copy was installed from (PEP 610
    direct_url.json), else the same version from the package index."""
    repo = source_checkout()
    if repo is not None:
        key = b"".join(
            name.encode() + b"\0" + ((repo / name).read_bytes() if (repo / name).exists() else b"")
            for name in ("pyproject.toml", "constraints.txt")
        )
        return ["-e", str(repo)], key
    dist = importlib.metadata.distribution(DISTRIBUTION)
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    url = direct.get("url", "")
    if url.startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
        if path.exists():
            spec = ["-e", str(path)] if (direct.get("dir_info") or {}).get("editable") else [str(path)]
            return spec, f"{url};{dist.version}".encode()
    return [f"{DISTRIBUTION}=={dist.version}"], dist.version.encode()


def ensure_installed(venv: Path | None = None, *, log: Log = to_stderr) -> Path:
    """Airflow + this project in ``venv``; reused while the project's requirement is unchanged. Returns
    bin/airflow."""
    venv = venv or default_venv()
    project, ident = project_requirement()
    stamp = venv / ".llmops-install-stamp"
    airflow = venv / "bin" / "airflow"
    key = hashlib.sha256(f"{AIRFLOW_REQUIREMENTS};{TORCH_PIN};".encode() + ident).hexdigest()
    if airflow.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return airflow
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    log(f"installing {TORCH_PIN} into {venv}")
    subprocess.run([*pip, TORCH_PIN], check=True)
    log(f"installing {' '.join(AIRFLOW_REQUIREMENTS)} and {' '.join(project)} into {venv} (one resolve)")
    subprocess.run([*pip, *AIRFLOW_REQUIREMENTS, *project], check=True)
    stamp.write_text(key + "\n")
    return airflow


# ------------------------------------------------------------------------------------------------ config
def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret, or create it (mode 0600) once so restarts keep tokens and passwords valid."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def worker_hostname() -> str:
    """Airflow's hostname_callable on a local Celery worker: its own loopback address (set by up())."""
    return os.environ[WORKER_ADDRESS_ENV]


@dataclass
class Worker:
    """One local Celery worker: its name, loopback address and folders (nothing on disk shared with the others)."""

    name: str
    address: str
    root: str

    @property
    def home(self) -> Path:  # HOME
        return Path(self.root) / "home"

    @property
    def workdir(self) -> Path:  # the working directory of the worker and its tasks
        return Path(self.root) / "work"

    @property
    def airflow_home(self) -> Path:
        return Path(self.root) / "airflow"

    @property
    def log_folder(self) -> Path:
        return self.airflow_home / "logs"


@dataclass
class LocalAirflow:
    """Where a local server lives and how to reach it; persisted to AIRFLOW_HOME/llmops-server.json."""

    home: Path
    venv: Path = field(default_factory=default_venv)
    port: int = 0
    log_server_port: int = 0
    extra_dags: list[str] = field(default_factory=list)
    task_env: dict[str, str] = field(default_factory=dict)
    executor: str = "local"
    workers: list[Worker] = field(default_factory=list)
    worker_concurrency: int = 2
    postgres_folder: str | None = None  # celery: the metadata database's server
    owns_postgres: bool = False  # started by up() (stopped by down()), not handed in by `llmops dev up`
    paused_at_creation: bool = False  # tests that must not share the workers with the shipped scheduled DAGs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    @property
    def password(self) -> str:
        return json.loads(self.passwords_file.read_text())[USERNAME]

    @property
    def redis_folder(self) -> Path:
        return self.home / "redis"

    def client_env(self) -> dict[str, str]:
        """What llmops needs to talk to this server (the password is read from the file, not printed)."""
        return {
            "LLMOPS_AIRFLOW_URL": self.url,
            "LLMOPS_AIRFLOW_USERNAME": USERNAME,
            "LLMOPS_AIRFLOW_PASSWORD": self.password,
        }

    def same_setup(self, other: LocalAirflow) -> bool:
        return (
            self.extra_dags == other.extra_dags
            and self.task_env == other.task_env
            and self.executor == other.executor
            and [w.name for w in self.workers] == [w.name for w in other.workers]
            and self.worker_concurrency == other.worker_concurrency
            and self.postgres_folder == other.postgres_folder
            and self.paused_at_creation == other.paused_at_creation
        )

    # --- persistence ---
    def save(self) -> None:
        data = {
            "port": self.port,
            "log_server_port": self.log_server_port,
            "venv": str(self.venv),
            "extra_dags": self.extra_dags,
            "task_env": self.task_env,
            "executor": self.executor,
            "workers": [asdict(w) for w in self.workers],
            "worker_concurrency": self.worker_concurrency,
            "postgres_folder": self.postgres_folder,
            "owns_postgres": self.owns_postgres,
            "paused_at_creation": self.paused_at_creation,
        }
        path = self.home / STATE_FILE
        path.touch(mode=0o600)  # task_env may carry a store or state URL with its password
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, home: Path) -> LocalAirflow | None:
        p = home / STATE_FILE
        if not p.exists():
            return None
        d = json.loads(p.read_text())
        return cls(
            home=home,
            venv=Path(d["venv"]),
            port=d["port"],
            log_server_port=d["log_server_port"],
            extra_dags=d.get("extra_dags", []),
            task_env=d.get("task_env", {}),
            executor=d.get("executor", "local"),
            workers=[Worker(**w) for w in d.get("workers", [])],
            worker_concurrency=d.get("worker_concurrency", 2),
            postgres_folder=d.get("postgres_folder"),
            owns_postgres=d.get("owns_postgres", False),
            paused_at_creation=d.get("paused_at_creation", False),
        )

    # --- environment of the Airflow processes ---
    def _metadata_db(self) -> str:
        if self.executor != "celery":
            return f"sqlite:///{self.home / 'airflow.db'}"
        from llmops_cli.devstack import postgres

        assert self.postgres_folder is not None
        server = postgres.running(self.postgres_folder)
        if server is None:
            raise AirflowStartError(f"the PostgreSQL of {self.postgres_folder} (Airflow's metadata database) is down")
        return server.url_for(AIRFLOW_DB).replace("postgresql://", "postgresql+psycopg2://", 1)

    def airflow_env(self) -> dict[str, str]:
        home = self.home
        jwt = secret_file(home / "jwt_secret", lambda: secrets.token_urlsafe(64))  # >= 64 bytes
        # one [api] secret_key for all: the api-server's requests for a task's log are signed with it, and a
        # worker's log server refuses them otherwise
        secret_key = secret_file(home / "secret_key", lambda: secrets.token_urlsafe(32))
        secret_file(self.passwords_file, lambda: json.dumps({USERNAME: secrets.token_urlsafe(18)}))
        bundles = [
            {
                "name": "llmops",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(PACKAGE_DAGS), "refresh_interval": 3},
            }
        ]
        for i, d in enumerate(self.extra_dags):
            bundles.append(
                {
                    "name": f"extra-{i}",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(Path(d).resolve()), "refresh_interval": 3},
                }
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LLMOPS_AIRFLOW_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.executor == "celery" else "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._metadata_db(),
                "AIRFLOW__CORE__PARALLELISM": "4" if self.executor == "local" else str(max(4, self._slots())),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(PACKAGE_DAGS),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",  # re-parse of changed files; lower burns CPU
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(self.paused_at_creation),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__API_AUTH__JWT_SECRET": jwt,
                "AIRFLOW__API__SECRET_KEY": secret_key,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_port),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "True",
                # quick turn-around for tests: the scheduler loop and task state checks
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                # a task's calls to the execution API (start, heartbeat, XCom): 5 s by default, which a busy
                # api-server on a loaded 2-core machine missed five times in a row (the task was killed before
                # it ran a line of its own)
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                # llmops inside tasks: no network, no price-map download
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1",  # component logs complete even when a process is killed
            }
        )
        if self.executor == "celery":
            from llmops_cli.devstack import redis

            broker = redis.running(self.redis_folder)
            if broker is None:
                raise AirflowStartError(f"the Redis of {self.redis_folder} (the Celery broker) is down")
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": broker.url,
                    # a task whose worker died (SIGKILL, lost machine) is failed, and retried, within ~30 s
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                }
            )
        # the embedded store's writers run in the one-slot pool _start creates (dag_support.writer_task_args), so a
        # writer waiting for another holds no worker slot; a task_env value (e.g. "") overrides it
        from llmops_cli.adapters.airflow.ops import LLMOPS_POOL

        env[POOL_ENV] = LLMOPS_POOL
        env.update(self.task_env)
        return env

    def _slots(self) -> int:
        return len(self.workers) * self.worker_concurrency

    def worker_env(self, worker: Worker) -> dict[str, str]:
        """A worker's own HOME, working directory, AIRFLOW_HOME, log folder and hostname (its loopback address)."""
        env = self.airflow_env()
        env.update(
            {
                "HOME": str(worker.home),
                "PWD": str(worker.workdir),
                "AIRFLOW_HOME": str(worker.airflow_home),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(worker.log_folder),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
                WORKER_ADDRESS_ENV: worker.address,
            }
        )
        return env

    # --- processes ---
    def components(self) -> list[str]:
        names = list(SERVER_COMPONENTS)
        for w in self.workers:
            names += [w.name, f"{w.name}-logs"]
        return names

    def pid_file(self, component: str) -> Path:
        return self.home / f"{component}.pid"

    def running(self) -> dict[str, int]:
        out = {}
        for c in self.components():
            pid = _read_pid(self.pid_file(c))
            if pid and _is_our_process(pid):
                out[c] = pid
        return out

    def healthy(self, timeout: float = 2.0) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=timeout) as r:
                data = json.loads(r.read())
        except (OSError, ValueError):
            return None
        wanted = ("metadatabase", "scheduler", "dag_processor")
        if all((data.get(k) or {}).get("status") == "healthy" for k in wanted):
            return data
        return None

    def worker(self, name_or_address: str) -> Worker:
        for w in self.workers:
            if name_or_address in (w.name, w.address):
                return w
        raise KeyError(f"no worker {name_or_address!r} (workers: {', '.join(w.name for w in self.workers) or 'none'})")


def _read_pid(p: Path) -> int | None:
    try:
        return int(p.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_process(pid: int) -> bool:
    """Alive and an airflow process (a stale pid file must not make us signal a stranger); a Celery worker retitles
    itself "[celeryd: ...]"."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"airflow" in cmd or cmd.startswith(b"[celeryd: ")


def _commands(af: LocalAirflow) -> dict[str, list[str]]:
    airflow = str(af.venv / "bin" / "airflow")
    cmds = {
        "api-server": [airflow, "api-server", "--port", str(af.port), "--host", "127.0.0.1"],
        # the log server would listen on 0.0.0.0; LocalExecutor's tasks write AIRFLOW_HOME/logs, which the
        # api-server reads directly, so it is not needed
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
    }
    for w in af.workers:
        cmds[w.name] = [
            airflow,
            "celery",
            "worker",
            "--celery-hostname",
            f"{w.name}@llmops",
            "--concurrency",
            str(af.worker_concurrency),
            "--skip-serve-logs",  # its log server runs beside it, bound to the worker's own address
        ]
        # Airflow's log server binds every address on one port; ours binds the worker's address only, so several
        # workers on one machine serve their logs on the one port the api-server asks
        cmds[f"{w.name}-logs"] = [
            str(af.venv / "bin" / "python"),
            "-m",
            "uvicorn",
            "airflow.utils.serve_logs.log_server:get_app",
            "--factory",
            "--host",
            w.address,
            "--port",
            str(af.log_server_port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return cmds


def _start_process(af: LocalAirflow, name: str, cmd: list[str]) -> subprocess.Popen:
    worker = next((w for w in af.workers if name in (w.name, f"{w.name}-logs")), None)
    env = af.worker_env(worker) if worker else af.airflow_env()
    cwd = worker.workdir if worker else af.home
    log_file = process_log(af, name)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # setsid: its own process group, signalled as one by down()
    af.pid_file(name).write_text(f"{proc.pid}\n")
    return proc


def process_log(af: LocalAirflow, name: str) -> Path:
    worker = next((w for w in af.workers if name in (w.name, f"{w.name}-logs")), None)
    return Path(worker.root) / f"{name}.log" if worker else af.home / "process-logs" / f"{name}.log"


# -------------------------------------------------------------------------------------------- up / down
def up(
    home: Path | None = None,
    *,
    venv: Path | None = None,
    extra_dags: list[str] | None = None,
    task_env: dict[str, str] | None = None,
    executor: str = "local",
    workers: int = 2,
    worker_concurrency: int = 2,
    postgres_folder: Path | None = None,
    paused_at_creation: bool = False,
    wait_s: float = 180.0,
    log: Log = to_stderr,
) -> LocalAirflow:
    """Start (or reuse, when already healthy with the same set-up) a local Airflow; returns when healthy.

    ``executor="celery"`` also starts Redis (under AIRFLOW_HOME) and, unless ``postgres_folder`` names a running
    one, a PostgreSQL for the metadata database (in ``postgres_folder``, default under AIRFLOW_HOME; stopped by
    down()), then ``workers`` Celery
    workers of ``worker_concurrency`` slots each. ``paused_at_creation``: new DAGs start paused (``unpause`` them)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    home = (home or default_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    venv = (venv or default_venv()).resolve()
    extra = [str(Path(d).resolve()) for d in (extra_dags or [])]
    wanted = LocalAirflow(
        home=home,
        venv=venv,
        extra_dags=extra,
        task_env=dict(task_env or {}),
        executor=executor,
        paused_at_creation=paused_at_creation,
    )
    if executor == "celery":
        wanted.worker_concurrency = worker_concurrency
        wanted.workers = [
            Worker(name=f"worker-{i}", address=f"127.0.0.{i + 1}", root=str(home / "workers" / f"worker-{i}"))
            for i in range(1, workers + 1)
        ]
        wanted.postgres_folder = str((postgres_folder or home / "postgres").resolve())
    prev = LocalAirflow.load(home)
    if prev and prev.running():
        if prev.healthy(timeout=15) and prev.same_setup(wanted) and len(prev.running()) == len(prev.components()):
            log(f"Airflow already running at {prev.url}")
            return prev
        down(home, log=log, keep_services=True)
    airflow = ensure_installed(venv, log=log)
    af = wanted
    # keep the previous port when it is free, so the printed URL stays valid across restarts
    af.port = prev.port if prev and prev.port and _port_is_free(prev.port) else free_port()
    af.log_server_port = free_port()
    while af.log_server_port == af.port:
        af.log_server_port = free_port()
    af.save()  # down() finds what to stop here, whatever fails below
    try:
        if executor == "celery":
            _start_services(af, log)
        return _start(af, airflow, wait_s, log)
    except BaseException:
        down(home, log=log)
        raise


def _start(af: LocalAirflow, airflow: Path, wait_s: float, log: Log) -> LocalAirflow:
    """Migrate the metadata database, start every component and wait until healthy (workers: consuming)."""
    home = af.home
    for w in af.workers:
        for d in (w.home, w.workdir, w.log_folder):
            d.mkdir(parents=True, exist_ok=True)
    env = af.airflow_env()
    af.save()
    (home / "process-logs").mkdir(exist_ok=True)
    log(f"airflow db migrate ({home}, {af.executor} executor)")
    r = subprocess.run([str(airflow), "db", "migrate"], env=env, cwd=home, capture_output=True, text=True)
    if r.returncode != 0:
        raise AirflowStartError(f"airflow db migrate failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    pool = _create_pool(af, airflow, env)  # alongside the components' start: the CLI takes seconds to import Airflow
    seen = {w.name: _log_size(process_log(af, w.name)) for w in af.workers}  # logs of earlier runs are appended to
    procs = {name: _start_process(af, name, cmd) for name, cmd in _commands(af).items()}
    deadline = time.monotonic() + wait_s
    pending_workers = {w.name for w in af.workers}
    while time.monotonic() < deadline:
        pending_workers = {n for n in pending_workers if not _worker_ready(af, n, since=seen[n])}
        if not pending_workers and pool.poll() is not None and af.healthy():
            if pool.returncode != 0:
                raise AirflowStartError(f"airflow pools set failed:\n{_tail(home / 'process-logs' / 'pools.log')}")
            log(f"Airflow {AIRFLOW_VERSION} healthy at {af.url}" + _workers_note(af))
            return af
        dead = [c for c, p in procs.items() if p.poll() is not None]
        if dead:
            tails = "\n".join(f"--- {c}:\n" + _tail(process_log(af, c)) for c in dead)
            raise AirflowStartError(f"Airflow component(s) exited during start-up: {', '.join(dead)}\n{tails}")
        time.sleep(0.5)
    raise AirflowStartError(f"Airflow was not healthy after {wait_s:.0f} s (logs in {home / 'process-logs'})")


def _create_pool(af: LocalAirflow, airflow: Path, env: dict[str, str]) -> subprocess.Popen:
    """Create (or keep) the one-slot pool of the embedded store's writers, as `llmops pools ensure-llmops` would over
    the API: the tasks' environment names it, and Airflow never schedules a task whose pool does not exist."""
    from llmops_cli.adapters.airflow.ops import LLMOPS_POOL, LLMOPS_POOL_DESCRIPTION

    out = open(af.home / "process-logs" / "pools.log", "ab")  # the child keeps its own handle
    try:
        return subprocess.Popen(
            [str(airflow), "pools", "set", LLMOPS_POOL, "1", LLMOPS_POOL_DESCRIPTION],
            env=env,
            cwd=af.home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        out.close()


def _workers_note(af: LocalAirflow) -> str:
    if not af.workers:
        return ""
    return f" ({len(af.workers)} Celery workers: {', '.join(f'{w.name} {w.address}' for w in af.workers)})"


def _worker_ready(af: LocalAirflow, name: str, *, since: int = 0) -> bool:
    """Celery prints '<hostname> ready.' once it consumes from the broker (looked for after byte ``since``)."""
    try:
        with open(process_log(af, name), "rb") as f:
            f.seek(since)
            return f"{name}@llmops ready.".encode() in f.read()
    except OSError:
        return False


def _start_services(af: LocalAirflow, log: Log) -> None:
    """Redis (the broker) and the PostgreSQL of the metadata database, with its `airflow` database."""
    from llmops_cli.devstack import postgres, redis

    try:
        broker = redis.start(af.redis_folder)
    except FileNotFoundError as e:
        raise AirflowStartError(str(e)) from e
    log(f"Redis on 127.0.0.1:{broker.port}")
    folder = Path(af.postgres_folder or af.home / "postgres")
    server = postgres.running(folder)
    af.owns_postgres = server is None  # one handed in running (`llmops dev up`) is stopped by its owner
    af.save()
    if server is None:
        folder.mkdir(parents=True, exist_ok=True)
        password = secret_file(folder.parent / f"{folder.name}.password", lambda: secrets.token_urlsafe(24))
        server = postgres.start(folder, password=password)
    server.create_database(AIRFLOW_DB)
    log(f"PostgreSQL on 127.0.0.1:{server.port} (database {AIRFLOW_DB})")


def _tail(p: Path, n: int = 3000) -> str:
    try:
        return p.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def down(
    home: Path | None = None, *, grace_s: float = 10.0, log: Log = to_stderr, keep_services: bool = False
) -> list[str]:
    """Stop what up() started (by pid file, whole process groups; then Redis and an own PostgreSQL unless
    ``keep_services``); returns the components stopped."""
    home = (home or default_home()).resolve()
    af = LocalAirflow.load(home) or LocalAirflow(home=home)
    pids = af.running()
    groups = {c: _group_of(pid) for c, pid in pids.items()}
    for pgid in groups.values():
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups.values()):
        time.sleep(0.2)
    for pgid in groups.values():
        if _group_alive(pgid):  # e.g. a scheduler waiting for its running tasks: the whole group goes
            _signal_group(pgid, signal.SIGKILL)
    for c in af.components():
        af.pid_file(c).unlink(missing_ok=True)
    stopped = list(pids)
    if af.executor == "celery" and not keep_services:
        from llmops_cli.devstack import postgres, redis

        if redis.stop(af.redis_folder):
            stopped.append("redis")
        if af.owns_postgres and af.postgres_folder and postgres.stop(af.postgres_folder):
            stopped.append("postgres")
    log(f"stopped {', '.join(stopped)}" if stopped else "no local Airflow was running")
    return stopped


def _group_of(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid  # setsid: a component leads its own group


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def status(home: Path | None = None) -> dict:
    """Where the server is and what runs (no secrets: the passwords file is named, not read)."""
    home = (home or default_home()).resolve()
    af = LocalAirflow.load(home)
    if af is None:
        return {"home": str(home), "running": {}, "healthy": False}
    out = {
        "home": str(home),
        "url": af.url,
        "executor": af.executor,
        "running": af.running(),
        "healthy": af.healthy(timeout=15) is not None,  # a busy api-server is slow, not down
        "passwords_file": str(af.passwords_file),
    }
    if af.workers:
        out["workers"] = [{"name": w.name, "hostname": w.address, "folder": w.root} for w in af.workers]
    return out


def restart_component(home: Path, component: str, *, down_s: float = 0.0) -> int:
    """Stop one component (its process group) and start it again with the same set-up (tests of restarts)."""
    af = LocalAirflow.load(home.resolve())
    if af is None:
        raise AirflowStartError(f"no local Airflow in {home}")
    stop_component(af, component, grace_s=5.0)  # uvicorn waits for idle keep-alive clients; do not wait long
    time.sleep(down_s)
    return _start_process(af, component, _commands(af)[component]).pid


def stop_component(af: LocalAirflow, component: str, *, sig: int = signal.SIGTERM, grace_s: float = 5.0) -> bool:
    """Signal one component's process group (SIGKILL after ``grace_s`` when ``sig`` is not already SIGKILL)."""
    pid = af.running().get(component)
    if not pid:
        return False
    pgid = _group_of(pid)
    _signal_group(pgid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
    return True


def kill_worker(home: Path, worker: str) -> int:
    """SIGKILL a Celery worker and every task it runs (its whole process group), as a lost machine would; its
    log server stays up. Returns the pid killed."""
    af = LocalAirflow.load(home.resolve())
    if af is None:
        raise AirflowStartError(f"no local Airflow in {home}")
    w = af.worker(worker)
    pid = af.running().get(w.name)
    if not pid:
        raise AirflowStartError(f"{w.name} is not running")
    stop_component(af, w.name, sig=signal.SIGKILL, grace_s=5.0)
    af.pid_file(w.name).unlink(missing_ok=True)
    return pid


def start_worker(home: Path, worker: str, *, wait_s: float = 90.0) -> int:
    """Start a Celery worker that is down (e.g. after kill_worker); returns its pid once it consumes from the
    broker."""
    af = LocalAirflow.load(home.resolve())
    if af is None:
        raise AirflowStartError(f"no local Airflow in {home}")
    w = af.worker(worker)
    return af.running().get(w.name) or _restart_workers(af, [w.name], wait_s=wait_s)[w.name]


def _restart_workers(af: LocalAirflow, names: list[str], *, grace_s: float = 30.0, wait_s: float = 90.0) -> dict:
    """Stop these workers together (a warm shutdown lets running tasks finish), start them together, and wait
    until each consumes from the broker again; returns their new pids."""
    groups = [_group_of(pid) for n, pid in af.running().items() if n in names]
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
        time.sleep(0.2)
    for pgid in groups:
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    seen = {n: _log_size(process_log(af, n)) for n in names}  # a "ready." written before does not count
    procs = {n: _start_process(af, n, _commands(af)[n]) for n in names}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if all(_worker_ready(af, n, since=seen[n]) for n in names):
            return {n: p.pid for n, p in procs.items()}
        for n, p in procs.items():
            if p.poll() is not None:
                raise AirflowStartError(f"{n} exited: {_tail(process_log(af, n))}")
        time.sleep(0.3)
    raise AirflowStartError(f"{', '.join(names)} not ready after {wait_s:.0f} s (logs in {af.home / 'workers'})")


def _log_size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def set_task_env(home: Path, updates: dict[str, str | None]) -> LocalAirflow:
    """Change the tasks' environment (None removes a variable) and restart the Celery workers with it (tasks run
    on the workers only, so the other components keep theirs). E.g. point the tasks at another store without a
    new Airflow."""
    af = LocalAirflow.load(home.resolve())
    if af is None or af.executor != "celery":
        raise AirflowStartError(f"no local Celery Airflow in {home}")
    for key, value in updates.items():
        if value is None:
            af.task_env.pop(key, None)
        else:
            af.task_env[key] = value
    af.save()
    _restart_workers(af, [w.name for w in af.workers])
    return af


# ------------------------------------------------------------------------------------------- REST helpers
def token(af: LocalAirflow) -> str:
    req = urllib.request.Request(
        f"{af.url}/auth/token",
        data=json.dumps({"username": USERNAME, "password": af.password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


def api_get(af: LocalAirflow, path: str, *, bearer: str | None = None) -> dict:
    """GET /api/v2/<path> as the admin user."""
    req = urllib.request.Request(
        f"{af.url}/api/v2/{path.lstrip('/')}", headers={"Authorization": f"Bearer {bearer or token(af)}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def task_placements(af: LocalAirflow, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of a run (map indexes included) with the worker that ran it: its task id, map index,
    state, try number, hostname (a Celery worker's loopback address), worker name, start and end dates."""
    quoted = urllib.parse.quote(run_id, safe="")
    tis = api_get(af, f"dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=1000")["task_instances"]
    names = {w.address: w.name for w in af.workers}
    return [
        {
            "task_id": t["task_id"],
            "map_index": t.get("map_index", -1),
            "state": t.get("state"),
            "try_number": t.get("try_number"),
            "hostname": t.get("hostname") or "",
            "worker": names.get(t.get("hostname") or ""),
            "start_date": t.get("start_date"),
            "end_date": t.get("end_date"),
        }
        for t in tis
    ]


def unpause(af: LocalAirflow, dag_ids: list[str]) -> None:
    bearer = token(af)
    for dag_id in dag_ids:
        req = urllib.request.Request(
            f"{af.url}/api/v2/dags/{dag_id}",
            data=json.dumps({"is_paused": False}).encode(),
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
            method="PATCH",
        )
        with urllib.request.urlopen(req, timeout=30):
            pass


def wait_for_dags(af: LocalAirflow, dag_ids: list[str], timeout_s: float = 90.0) -> None:
    """Block until the server lists these DAGs (the dag-processor parses new files every few seconds)."""
    bearer = token(af)
    deadline = time.monotonic() + timeout_s
    missing = set(dag_ids)
    while time.monotonic() < deadline:
        present = {d["dag_id"] for d in api_get(af, "dags?limit=1000", bearer=bearer)["dags"]}
        missing = set(dag_ids) - present
        if not missing:
            return
        time.sleep(1.0)
    raise AirflowStartError(
        f"DAGs not parsed after {timeout_s:.0f} s: {sorted(missing)} (see {af.home / 'process-logs'})"
    )


# ------------------------------------------------------------------------------------- for a user's project
def project_task_env(project: Path) -> dict[str, str]:
    """The Airflow tasks use the project's store, data dir and config (absolute; the ones `llmops` run in the project
    folder uses, LLMOPS_* variables of this shell included), so `llmops query` there sees what a DAG wrote; and
    relative paths in DAG params (sources, input, dataset...) resolve against the project (LLMOPS_PROJECT_DIR), not
    the tasks' own working directory (AIRFLOW_HOME)."""
    from llmops_cli.settings import load_settings

    project = project.resolve()
    loaded = load_settings(cwd=project)

    def absolute(p: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else project / path)

    env = {
        "LLMOPS_PROJECT_DIR": str(project),
        "LLMOPS_STORE_PATH": absolute(loaded.settings.store.path),
        "LLMOPS_DATA_DIR": absolute(loaded.settings.data_dir),
    }
    if loaded.config_file is not None:
        env["LLMOPS_CONFIG"] = str(Path(loaded.config_file).resolve())
    return env


def shell_env_lines(af: LocalAirflow) -> list[str]:
    """Shell lines for eval: the password is read from its file when they run, never printed."""
    read = f"python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"{USERNAME}\"])' {af.passwords_file}"
    return [
        f"export LLMOPS_AIRFLOW_URL={af.url}",
        f"export LLMOPS_AIRFLOW_USERNAME={USERNAME}",
        f'export LLMOPS_AIRFLOW_PASSWORD="$({read})"',
    ]
