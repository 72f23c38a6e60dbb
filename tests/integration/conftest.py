"""Integration fixtures: the external corpora, an isolated llmops environment for subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "corpora"


def corpus(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"needs ../shared/corpora/{name} (absent here)")
    return p


def llmops_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update(
        {
            "LLMOPS_STORE_PATH": str(tmp / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp / "state"),
            "NO_COLOR": "1",
            "LLMOPS_INGEST_SOURCE_ROOT": str(tmp),
        }
    )  # tmp is the project: source ids relative to it
    env.update(extra)
    return env


def run_llmops(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def celery_airflow(tmp_path_factory):
    """A multi-worker Airflow 3 on 127.0.0.1 (CeleryExecutor, Redis, PostgreSQL, 2 workers with their own HOME and
    working directory), started once per session for the tests that need several workers; apart from the
    LocalExecutor `airflow_server`. Needs Debian's redis-server."""
    from llmops_cli.devstack import redis
    from tests.support.airflow_servers import celery_airflow_for_tests

    if redis.executable() is None:
        pytest.skip(f"needs redis-server ({redis.INSTALL_HINT})")
    with celery_airflow_for_tests(tmp_path_factory.mktemp("celery-airflow")) as srv:
        yield srv
