"""Real local Airflows for the tests and benchmarks, started with the package's launcher (llmops_cli.devstack.airflow):
the shipped DAGs plus the test DAGs, the local OpenAI-compatible test server as the tasks' LLM, and the environment
for `llmops` subprocesses. Two kinds: LocalExecutor on SQLite (``airflow_for_tests``) and CeleryExecutor with
Redis, PostgreSQL and several workers (``celery_airflow_for_tests``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.devstack import airflow as local_airflow
from llmops_cli.devstack.airflow import LocalAirflow

REPO = Path(__file__).resolve().parents[2]
TEST_DAGS = REPO / "tests" / "integration" / "airflow_dags"
CELERY_DAGS = REPO / "tests" / "integration" / "celery_dags"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


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


def _client_env(af: LocalAirflow, task_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "AIRFLOW"))}
    env.update(task_env)
    env.update(af.client_env())
    env.update({"NO_COLOR": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"})
    return env


@contextlib.contextmanager
def airflow_for_tests(base: Path, *, dag_ids: list[str] | None = None):
    """Start a fresh Airflow (LocalExecutor) under ``base`` (own AIRFLOW_HOME, free ports, the shipped and the test
    DAGs), yield an AirflowForTests once the DAGs are parsed, stop it afterwards."""
    from tests.support.openai_server import ServerProcess, llm_env_for

    base = base.resolve()
    store, data = base / "llmops" / "chroma", base / "llmops" / "data"
    data.mkdir(parents=True, exist_ok=True)
    llm = ServerProcess()  # the LLM the batch DAG's tasks call: the local OpenAI-compatible test server
    project = base / "project"  # relative paths in DAG params resolve here (LLMOPS_PROJECT_DIR), as with `dev up`
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
        af = local_airflow.up(base / "airflow-home", extra_dags=[str(TEST_DAGS)], task_env=task_env, log=_log)
    except BaseException:
        llm.stop()
        raise
    try:
        local_airflow.wait_for_dags(
            af, dag_ids or ["llmops_ingest", "llmops_eval", "llmops_batch_inference", "llmops_test_quick"]
        )
        yield AirflowForTests(af, _client_env(af, task_env), store, data, project)
    finally:
        local_airflow.down(af.home, log=_log)
        llm.stop()


@dataclass
class CeleryAirflowForTests:
    """A multi-worker Airflow (CeleryExecutor, Redis broker, PostgreSQL metadata database) for tests. Each worker
    has its own HOME, working directory and AIRFLOW_HOME under ``workers/``; nothing on disk is shared. The tasks
    and `llmops` run with ``env`` share the state and the store through PostgreSQL (``shared_url``: database
    ``llmops`` of the same server, pgvector inside) and call the local OpenAI-compatible test server."""

    server: LocalAirflow
    env: dict[str, str]  # for `llmops` subprocesses: the Airflow connection, the shared state and store URLs, the LLM
    client_dir: Path  # a third folder, neither worker's, to run `llmops` in
    shared_url: str  # postgresql://... of the shared database (password inside: never print it)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def home(self) -> Path:
        return self.server.home

    def placements(self, dag_id: str, run_id: str) -> list[dict]:
        """Task instances of a run with the worker that ran each (local_airflow.task_placements)."""
        return local_airflow.task_placements(self.server, dag_id, run_id)

    def kill_worker(self, name: str) -> int:
        """SIGKILL the worker and its running tasks (its whole process group)."""
        return local_airflow.kill_worker(self.server.home, name)

    def start_worker(self, name: str) -> int:
        return local_airflow.start_worker(self.server.home, name)

    def use_store(self, url: str) -> None:
        """Point the tasks (the workers are restarted) and ``env`` at another store, e.g. a Chroma server."""
        self.server = local_airflow.set_task_env(self.server.home, {"LLMOPS_STORE_URL": url})
        self.env["LLMOPS_STORE_URL"] = url


@contextlib.contextmanager
def celery_airflow_for_tests(
    base: Path, *, workers: int = 2, task_env: dict[str, str] | None = None, dag_ids: list[str] | None = None
):
    """Start a fresh Celery Airflow under ``base`` (its own Redis and PostgreSQL, ``workers`` workers of 2 slots),
    with the shipped DAGs, the test DAGs and the Celery test DAGs; yield a CeleryAirflowForTests once parsed.
    DAGs start paused, ``dag_ids`` are unpaused: the shipped scheduled DAGs (feedback review...) would otherwise
    run at once and share the workers with the test's tasks."""
    from llmops_cli.devstack import postgres
    from tests.support.openai_server import ServerProcess, llm_env_for

    base = base.resolve()
    client_dir = base / "client"
    client_dir.mkdir(parents=True, exist_ok=True)
    # PostgreSQL runs as an unprivileged user when we are root: its folder must stay reachable, and every new
    # pytest session closes /tmp/pytest-of-<user> again (mode 0700), so it lives outside pytest's temp root
    pg_root = Path(tempfile.mkdtemp(prefix="llmops-celery-pg-"))
    llm = ServerProcess()  # the tasks' LLM (batch, eval, feedback review): the local OpenAI-compatible server
    try:
        pg = postgres.start(pg_root / "postgres", password=secrets.token_urlsafe(18))
        shared_url = pg.create_database("llmops")
        shared = {
            "LLMOPS_STATE_URL": shared_url,
            "LLMOPS_STORE_URL": shared_url,
            **llm_env_for(llm),
            "LLMOPS_LLM_INPUT_COST_PER_TOKEN": "0.000001",
            "LLMOPS_LLM_OUTPUT_COST_PER_TOKEN": "0.000002",
        }
        env = {"HF_HUB_OFFLINE": "1", **shared, **(task_env or {})}
        af = local_airflow.up(
            base / "airflow-home",
            executor="celery",
            workers=workers,
            extra_dags=[str(TEST_DAGS), str(CELERY_DAGS)],
            task_env=env,
            paused_at_creation=True,
            postgres_folder=pg.folder,  # the metadata database in the same server (stopped below, not by down())
            log=_log,
        )
        try:
            dag_ids = dag_ids or ["llmops_ingest", "llmops_test_spread"]
            local_airflow.wait_for_dags(af, dag_ids)
            local_airflow.unpause(af, dag_ids)
            # two cores shared by scheduler, api-server, workers and tasks: give the api-server time to answer
            client = {**_client_env(af, shared), "LLMOPS_AIRFLOW_TIMEOUT": "60"}
            yield CeleryAirflowForTests(af, client, client_dir, shared_url)
        finally:
            local_airflow.down(af.home, log=_log)
    finally:
        postgres.stop(pg_root / "postgres")
        llm.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
