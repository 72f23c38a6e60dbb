"""The whole team set-up on loopback, for trying it on one machine (`llmops dev up | env | down`).

A PostgreSQL (pgvector inside) holds the shared state (``state.url``) and, with ``store="pgvector"``, the vector store
(``store.url``); with ``store="chroma"`` a Chroma server is the store. A local Airflow (LocalExecutor, or Celery with
workers) runs the shipped DAGs with the same two URLs, so a DAG task on any worker and `llmops` in this shell see the
same collections, answers and runs. Everything lives under one folder (default ``.llmops-dev`` here)::

    postgres/  postgres.password  chroma/  airflow/ (AIRFLOW_HOME)  stack.json

The printed environment lines read passwords from their files when they run; no secret is printed.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from llmops_cli.devstack import airflow as local_airflow

STORES = ("chroma", "pgvector")
DATABASE = "llmops"  # the store's tables and the state database's, side by side
STATE_FILE = "stack.json"


def default_root() -> Path:
    """LLMOPS_DEV_HOME, else .llmops-dev in the current folder."""
    return Path(os.environ.get("LLMOPS_DEV_HOME") or Path.cwd() / ".llmops-dev")


@dataclass
class Stack:
    root: str
    store: str
    executor: str
    workers: int
    postgres_port: int
    chroma_url: str | None = None

    @property
    def postgres_folder(self) -> Path:
        return Path(self.root) / "postgres"

    @property
    def password_file(self) -> Path:
        return Path(self.root) / "postgres.password"

    @property
    def airflow_home(self) -> Path:
        return Path(self.root) / "airflow"

    def postgres_url(self, password: str) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.postgres_port}/{DATABASE}"

    def urls(self) -> dict[str, str]:
        """LLMOPS_STATE_URL and LLMOPS_STORE_URL with the password in them: for process environments only."""
        pg = self.postgres_url(self.password_file.read_text().strip())
        return {"LLMOPS_STATE_URL": pg, "LLMOPS_STORE_URL": pg if self.store == "pgvector" else str(self.chroma_url)}

    def env_lines(self) -> list[str]:
        """Shell lines that point `llmops` at the stack; the password is read from its file when they run."""
        pg = self.postgres_url(f"$(cat {shlex.quote(str(self.password_file))})")
        store = pg if self.store == "pgvector" else str(self.chroma_url)
        lines = [f'export LLMOPS_STATE_URL="{pg}"', f'export LLMOPS_STORE_URL="{store}"']
        af = local_airflow.LocalAirflow.load(self.airflow_home)
        if af is not None:
            lines += local_airflow.shell_env_lines(af)
        return lines

    def save(self) -> None:
        (Path(self.root) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, root: Path) -> Stack | None:
        try:
            return cls(**json.loads((root / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def up(
    root: Path | None = None,
    *,
    store: str = "pgvector",
    executor: str = "local",
    workers: int = 2,
    project: Path | None = None,
    task_env: dict[str, str] | None = None,
    extra_dags: list[str] | None = None,
    log=local_airflow.to_stderr,
) -> Stack:
    """Start (or reuse) PostgreSQL, a Chroma server when ``store="chroma"``, and Airflow; returns the stack."""
    from llmops_cli.devstack import chroma, postgres

    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}, not {store!r}")
    root = (root or default_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    stack = Stack(str(root), store, executor, workers if executor == "celery" else 0, 0)
    password = local_airflow.secret_file(stack.password_file, lambda: secrets.token_urlsafe(24))
    server = postgres.running(stack.postgres_folder) or postgres.start(stack.postgres_folder, password=password)
    stack.postgres_port = server.port
    server.create_database(DATABASE)
    _enable_pgvector(server.url_for(DATABASE))
    log(f"PostgreSQL + pgvector on 127.0.0.1:{server.port} (database {DATABASE})")
    if store == "chroma":
        c = chroma.start(root / "chroma")
        stack.chroma_url = c.url
        log(f"Chroma server on {c.url}")
    else:
        chroma.stop(root / "chroma")
    stack.save()
    env = local_airflow.project_task_env(project or Path.cwd())
    # the tasks keep their data in the servers, not in the project's embedded store or SQLite files
    env.pop("LLMOPS_STORE_PATH", None)
    env.pop("LLMOPS_DATA_DIR", None)
    env.update(stack.urls())
    env.update(task_env or {})
    local_airflow.up(
        stack.airflow_home,
        executor=executor,
        workers=workers,
        task_env=env,
        extra_dags=extra_dags,
        postgres_folder=stack.postgres_folder if executor == "celery" else None,
        log=log,
    )
    return stack


def _enable_pgvector(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def down(root: Path | None = None) -> list[str]:
    """Stop Airflow, then the Chroma server and PostgreSQL of the stack; returns what was stopped."""
    from llmops_cli.devstack import chroma, postgres

    root = (root or default_root()).resolve()
    # quiet: the caller reports what stopped, the whole stack in one line
    stopped = local_airflow.down(root / "airflow", log=lambda _m: None) if (root / "airflow").exists() else []
    if chroma.stop(root / "chroma"):
        stopped.append("chroma")
    if postgres.stop(root / "postgres"):
        stopped.append("postgres")
    return stopped


def status(root: Path | None = None) -> dict:
    from llmops_cli.devstack import chroma, postgres

    root = (root or default_root()).resolve()
    stack = Stack.load(root)
    if stack is None:
        return {"root": str(root), "running": False}
    af = local_airflow.status(stack.airflow_home)
    pg = postgres.running(stack.postgres_folder) is not None
    ch = chroma.running(root / "chroma") is not None if stack.store == "chroma" else None
    return {
        "root": str(root),
        "store": stack.store,
        "executor": stack.executor,
        "postgres": pg,
        "chroma": ch,
        "airflow": af,
        "running": pg and (ch is not False) and bool(af.get("healthy")),
    }
