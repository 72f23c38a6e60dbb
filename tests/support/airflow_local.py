"""A real Airflow 3.3 on 127.0.0.1 for tests and for trying the Airflow side locally.

    python -m tests.support.airflow_local up [--home DIR] [--dags-folder DIR]   # install if needed, start, wait healthy
    python -m tests.support.airflow_local status | down

Airflow lives in its own venv (.venv-airflow at the repo root) with this project installed editable, so the
shipped DAGs import ``llmops_cli`` and run the same core steps as the local commands. Installing Airflow into
the project's venv would let litellm and Airflow downgrade each other's dependencies; one pip command that
names both resolves cleanly. torch goes in first, pinned (anything else pulls GBs of CUDA wheels).

api-server, scheduler and dag-processor run as separate processes, each in its own session (setsid) with a
pid file in AIRFLOW_HOME; ``down`` signals their process groups. Credentials are TEST credentials for this
loopback server: a random password in AIRFLOW_HOME/passwords.json (mode 0600), never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv-airflow"
# LLMOPS_LOCAL_AIRFLOW_HOME moves it (the README test runs `make airflow-up` in a temporary home, not the developer's)
DEFAULT_HOME = Path(os.environ.get("LLMOPS_LOCAL_AIRFLOW_HOME") or REPO / ".airflow")
AIRFLOW_VERSION = "3.3.2"
TORCH_PIN = "torch==2.13.0"
USERNAME = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
STATE_FILE = "llmops-server.json"
PACKAGE_DAGS = REPO / "llmops_cli" / "dags"


# ----------------------------------------------------------------------------------------------- install
def _install_key(repo: Path) -> str:
    h = hashlib.sha256(f"apache-airflow=={AIRFLOW_VERSION};{TORCH_PIN}".encode())
    for name in ("pyproject.toml", "constraints.txt"):
        p = repo / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b""))
    return h.hexdigest()


def ensure_installed(venv: Path = DEFAULT_VENV, repo: Path = REPO, *, log=print) -> Path:
    """Airflow + this project in ``venv``; reused while pyproject.toml / constraints.txt are unchanged. Returns bin/airflow."""
    stamp = venv / ".llmops-install-stamp"
    airflow = venv / "bin" / "airflow"
    key = _install_key(repo)
    if airflow.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return airflow
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating {venv}")
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    log(f"installing {TORCH_PIN} into {venv}")
    subprocess.run([*pip, TORCH_PIN], check=True)
    log(f"installing apache-airflow=={AIRFLOW_VERSION} and llmops (editable) into {venv} (one resolve)")
    subprocess.run([*pip, f"apache-airflow=={AIRFLOW_VERSION}", "-e", str(repo)], check=True)
    stamp.write_text(key + "\n")
    return airflow


# ------------------------------------------------------------------------------------------------ config
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _secret_file(path: Path, make) -> str:
    """Read a generated secret, or create it (mode 0600) once so restarts keep tokens and passwords valid."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


@dataclass
class LocalAirflow:
    """Where a local server lives and how to reach it; persisted to AIRFLOW_HOME/llmops-server.json."""

    home: Path
    venv: Path = DEFAULT_VENV
    port: int = 0
    log_server_port: int = 0
    extra_dags: list[str] = field(default_factory=list)
    task_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    @property
    def password(self) -> str:
        return json.loads(self.passwords_file.read_text())[USERNAME]

    def client_env(self) -> dict[str, str]:
        """What llmops needs to talk to this server (the password is read from the file, not printed)."""
        return {
            "LLMOPS_AIRFLOW_URL": self.url,
            "LLMOPS_AIRFLOW_USERNAME": USERNAME,
            "LLMOPS_AIRFLOW_PASSWORD": self.password,
        }

    # --- persistence ---
    def save(self) -> None:
        data = {
            "port": self.port,
            "log_server_port": self.log_server_port,
            "venv": str(self.venv),
            "extra_dags": self.extra_dags,
            "task_env": self.task_env,
        }
        (self.home / STATE_FILE).write_text(json.dumps(data, indent=2) + "\n")

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
        )

    # --- environment of the Airflow processes ---
    def airflow_env(self) -> dict[str, str]:
        home = self.home
        jwt = _secret_file(home / "jwt_secret", lambda: secrets.token_urlsafe(64))  # >= 64 bytes
        _secret_file(self.passwords_file, lambda: json.dumps({USERNAME: secrets.token_urlsafe(18)}))
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
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(PACKAGE_DAGS),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",  # re-parse of changed files; lower burns CPU
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__API_AUTH__JWT_SECRET": jwt,
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
                # llmops inside tasks: no network, no price-map download
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1",  # component logs complete even when a process is killed
            }
        )
        env.update(self.task_env)
        return env

    # --- processes ---
    def pid_file(self, component: str) -> Path:
        return self.home / f"{component}.pid"

    def running(self) -> dict[str, int]:
        out = {}
        for c in COMPONENTS:
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


def _read_pid(p: Path) -> int | None:
    try:
        return int(p.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_process(pid: int) -> bool:
    """Alive and an airflow process (a stale pid file must not make us signal a stranger)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"airflow" in cmd


# -------------------------------------------------------------------------------------------- up / down
def up(
    home: Path = DEFAULT_HOME,
    *,
    venv: Path = DEFAULT_VENV,
    extra_dags: list[str] | None = None,
    task_env: dict[str, str] | None = None,
    wait_s: float = 120.0,
    log=print,
) -> LocalAirflow:
    """Start (or reuse, when already healthy with the same set-up) a local Airflow; returns when healthy."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    extra = [str(Path(d).resolve()) for d in (extra_dags or [])]
    prev = LocalAirflow.load(home)
    if prev and prev.running() and prev.healthy():
        if prev.extra_dags == extra and prev.task_env == (task_env or {}):
            log(f"Airflow already running at {prev.url}")
            return prev
        down(home, log=log)
    elif prev and prev.running():
        down(home, log=log)
    airflow = ensure_installed(venv, log=log)
    af = LocalAirflow(home=home, venv=venv, extra_dags=extra, task_env=dict(task_env or {}))
    # keep the previous port when it is free, so the printed URL stays valid across restarts
    af.port = prev.port if prev and prev.port and _port_is_free(prev.port) else free_port()
    af.log_server_port = free_port()
    while af.log_server_port == af.port:
        af.log_server_port = free_port()
    env = af.airflow_env()
    af.save()
    logs = home / "process-logs"
    logs.mkdir(exist_ok=True)
    log(f"airflow db migrate ({home})")
    r = subprocess.run([str(airflow), "db", "migrate"], env=env, cwd=home, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    commands = {
        "api-server": [str(airflow), "api-server", "--port", str(af.port), "--host", "127.0.0.1"],
        # the log server would listen on 0.0.0.0; every process here shares AIRFLOW_HOME/logs, so it is not needed
        "scheduler": [str(airflow), "scheduler", "--skip-serve-logs"],
        "dag-processor": [str(airflow), "dag-processor"],
    }
    procs: dict[str, subprocess.Popen] = {}
    for name, cmd in commands.items():
        with open(logs / f"{name}.log", "ab") as out:
            procs[name] = subprocess.Popen(
                cmd,
                env=env,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # setsid: its own process group, signalled as one by down()
        af.pid_file(name).write_text(f"{procs[name].pid}\n")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if af.healthy():
            log(f"Airflow {AIRFLOW_VERSION} healthy at {af.url}")
            return af
        dead = [c for c, p in procs.items() if p.poll() is not None]
        if dead:
            tails = "\n".join(f"--- {c}:\n" + _tail(logs / f"{c}.log") for c in dead)
            down(home, log=log)
            raise RuntimeError(f"Airflow component(s) exited during start-up: {', '.join(dead)}\n{tails}")
        time.sleep(0.5)
    down(home, log=log)
    raise RuntimeError(f"Airflow was not healthy after {wait_s:.0f} s (logs in {logs})")


def _tail(p: Path, n: int = 3000) -> str:
    try:
        return p.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def down(home: Path = DEFAULT_HOME, *, grace_s: float = 10.0, log=print) -> list[str]:
    """Stop the components started by up() (by pid file, whole process groups); returns what was stopped."""
    home = home.resolve()
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
    for c in COMPONENTS:
        af.pid_file(c).unlink(missing_ok=True)
    if pids:
        log(f"stopped {', '.join(pids)}")
    else:
        log("no local Airflow was running")
    return list(pids)


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


def status(home: Path = DEFAULT_HOME) -> dict:
    home = home.resolve()
    af = LocalAirflow.load(home)
    if af is None:
        return {"home": str(home), "running": {}, "healthy": False}
    return {
        "home": str(home),
        "url": af.url,
        "running": af.running(),
        "healthy": af.healthy() is not None,
        "passwords_file": str(af.passwords_file),
    }


def restart_component(home: Path, component: str, *, down_s: float = 0.0) -> int:
    """Stop one component (its process group) and start it again with the same set-up (tests of restarts)."""
    af = LocalAirflow.load(home.resolve())
    assert af is not None, f"no local Airflow in {home}"
    pid = af.running().get(component)
    if pid:
        pgid = _group_of(pid)
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5  # uvicorn waits for idle keep-alive clients; do not wait long for it
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    time.sleep(down_s)
    airflow = af.venv / "bin" / "airflow"
    cmd = {
        "api-server": [str(airflow), "api-server", "--port", str(af.port), "--host", "127.0.0.1"],
        "scheduler": [str(airflow), "scheduler", "--skip-serve-logs"],
        "dag-processor": [str(airflow), "dag-processor"],
    }[component]
    with open(af.home / "process-logs" / f"{component}.log", "ab") as out:
        p = subprocess.Popen(
            cmd,
            env=af.airflow_env(),
            cwd=af.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    af.pid_file(component).write_text(f"{p.pid}\n")
    return p.pid


def wait_for_dags(af: LocalAirflow, dag_ids: list[str], timeout_s: float = 90.0) -> None:
    """Block until the server lists these DAGs (the dag-processor parses new files every few seconds)."""
    req = urllib.request.Request(
        f"{af.url}/auth/token",
        data=json.dumps({"username": USERNAME, "password": af.password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.loads(r.read())["access_token"]
    deadline = time.monotonic() + timeout_s
    missing = set(dag_ids)
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{af.url}/api/v2/dags?limit=1000", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            present = {d["dag_id"] for d in json.loads(r.read())["dags"]}
        missing = set(dag_ids) - present
        if not missing:
            return
        time.sleep(1.0)
    raise RuntimeError(f"DAGs not parsed after {timeout_s:.0f} s: {sorted(missing)} (see {af.home / 'process-logs'})")


@dataclass
class AirflowForTests:
    """A session's Airflow for tests: where it is, and the environment for `llmops` subprocesses (the Airflow
    connection plus the same store and data dir as the Airflow tasks, so `llmops query` sees what a DAG wrote)."""

    server: LocalAirflow
    env: dict[str, str]
    store_path: Path
    data_dir: Path
    project: Path  # LLMOPS_PROJECT_DIR of the tasks: relative paths in DAG params resolve here

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def home(self) -> Path:
        return self.server.home


TEST_DAGS = REPO / "tests" / "integration" / "airflow_dags"


@contextlib.contextmanager
def airflow_for_tests(base: Path, *, dag_ids: list[str] | None = None):
    """Start a fresh Airflow under ``base`` (own AIRFLOW_HOME, free ports, the shipped and the test DAGs), yield an
    AirflowForTests once the DAGs are parsed, stop it afterwards."""
    from tests.support.openai_server import ServerProcess, llm_env_for

    base = base.resolve()
    store, data = base / "llmops" / "chroma", base / "llmops" / "data"
    data.mkdir(parents=True, exist_ok=True)
    llm = ServerProcess()  # the LLM the batch DAG's tasks call: the local OpenAI-compatible test server
    project = (
        base / "project"
    )  # relative paths in DAG params resolve here (LLMOPS_PROJECT_DIR), as with `make airflow-up`
    project.mkdir(exist_ok=True)
    task_env = {
        "LLMOPS_STORE_PATH": str(store),
        "LLMOPS_DATA_DIR": str(data),
        "HF_HUB_OFFLINE": "1",
        **llm_env_for(llm),
        "LLMOPS_PROJECT_DIR": str(project),
        "LLMOPS_LLM_INPUT_COST_PER_TOKEN": "0.000001",
        "LLMOPS_LLM_OUTPUT_COST_PER_TOKEN": "0.000002",
    }
    try:
        af = up(
            base / "airflow-home",
            extra_dags=[str(TEST_DAGS)],
            task_env=task_env,
            log=lambda m: print(m, file=sys.stderr),
        )
    except BaseException:
        llm.stop()
        raise
    try:
        wait_for_dags(af, dag_ids or ["llmops_ingest", "llmops_eval", "llmops_batch_inference", "llmops_test_quick"])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "AIRFLOW"))}
        env.update(task_env)
        env.update(af.client_env())
        env.update({"NO_COLOR": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"})
        yield AirflowForTests(af, env, store, data, project)
    finally:
        down(af.home, log=lambda m: print(m, file=sys.stderr))
        llm.stop()


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


def _shell_env(af: LocalAirflow) -> str:
    """Shell lines for eval: the password is read from its file when they run, never printed."""
    read = f"python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"{USERNAME}\"])' {af.passwords_file}"
    return (
        f"export LLMOPS_AIRFLOW_URL={af.url}\n"
        f"export LLMOPS_AIRFLOW_USERNAME={USERNAME}\n"
        f'export LLMOPS_AIRFLOW_PASSWORD="$({read})"'
    )


def _how_to_connect(af: LocalAirflow) -> str:
    return (
        f"\nPoint llmops at it (test credentials of this local server; the password is in {af.passwords_file}):\n"
        f'  eval "$(python -m tests.support.airflow_local env)"\n'
        f"  llmops dags list\n"
        f"UI: {af.url} (user {USERNAME}). Stop it with: make airflow-down\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.airflow_local", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "command",
        choices=["up", "down", "status", "env"],
        help='env: shell lines that point llmops at the server (eval "$(... env)"); they read the password from its file',
    )
    ap.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME (default: .airflow at the repo root)")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="Airflow's venv (default: .venv-airflow)")
    ap.add_argument("--dags-folder", action="append", default=[], help="an extra DAGs folder (repeatable)")
    ap.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="folder whose .llmops store / data dir and llmops.yaml the Airflow tasks use (default: here)",
    )
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.command == "up":
        try:
            af = up(
                args.home, venv=args.venv, extra_dags=args.dags_folder, task_env=project_task_env(args.project), log=log
            )
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(af.url)
        print(_how_to_connect(af), file=sys.stderr)
        return 0
    if args.command == "down":
        down(args.home, log=log)
        return 0
    if args.command == "env":
        af = LocalAirflow.load(args.home.resolve())
        if af is None:
            print("error: no local Airflow set up here: run `make airflow-up` first", file=sys.stderr)
            return 1
        print(_shell_env(af))
        return 0
    st = status(args.home)
    print(json.dumps(st, indent=2))
    return 0 if st["healthy"] else 1


if __name__ == "__main__":
    sys.exit(main())
