"""`llmops dev up` / `env` / `status` / `down` as a user runs them, in a project folder: the team stack on loopback
(PostgreSQL+pgvector for the shared state, a Chroma server as the store, a local Airflow whose tasks use the same two
URLs). A collection written by `llmops ingest` in the shell and one written by the ingest DAG are both found by
`llmops query` in the shell: the CLI and the DAG tasks share the servers, not files. No secret reaches the output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent

SCRIPT = """
llmops dev up --store chroma > up.out
echo "TIMING up $SECONDS" >&2
eval "$(llmops dev env)"
llmops dev status
llmops dags list > dags.out
llmops pools list --json > pools.out
llmops ingest docs --collection devstack
llmops query "which port does the zebra protocol use" --collection devstack --json > shell-query.json
echo "TIMING shell $SECONDS" >&2
llmops trigger-dag llmops_ingest -p "sources=[\\"$PWD/more\\"]" -p collection=devstack -p shards=1 --wait
llmops query "how often does quokka rotation happen" --collection devstack --json > dag-query.json
echo "TIMING dag $SECONDS" >&2
"""


@pytest.fixture
def project():
    # outside pytest's temp root: PostgreSQL runs as an unprivileged user when we are root, and every new pytest
    # session closes /tmp/pytest-of-<user> to other users again
    root = Path(tempfile.mkdtemp(prefix="llmops-devstack-"))
    (root / "docs").mkdir()
    (root / "docs" / "zebra.md").write_text(
        "# Zebra protocol\n\nThe zebra protocol listens on port 7311 and retries every 4 seconds.\n"
    )
    (root / "more").mkdir()
    (root / "more" / "quokka.md").write_text(
        "# Quokka rotation\n\nQuokka rotation happens every 17 minutes on the night shift.\n"
    )
    yield root
    subprocess.run([str(BIN / "llmops"), "dev", "down"], cwd=root, capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "AIRFLOW", "VIRTUAL_ENV"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LLMOPS_AIRFLOW_TIMEOUT": "60",  # two shared cores: a busy api-server is slow, not down
        }
    )
    return env


def _bash(script: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dev_up_env_down_as_a_user_runs_them(project):
    r = _bash(SCRIPT, project, timeout=780)
    out = r.stdout + r.stderr + "".join(p.read_text() for p in project.glob("*.out"))
    assert r.returncode == 0, f"exit {r.returncode}:\n{out[-6000:]}"
    assert "Traceback" not in out
    print("\n".join(ln for ln in r.stderr.splitlines() if ln.startswith("TIMING")))

    # the printed lines point at the servers, and read the passwords from their files when they run
    up = (project / "up.out").read_text()
    root = project / ".llmops-dev"
    pg_password = (root / "postgres.password").read_text().strip()
    airflow_password = json.loads((root / "airflow" / "passwords.json").read_text())["admin"]
    for secret in (pg_password, airflow_password):
        assert secret not in out, "a password was printed"
    assert 'export LLMOPS_STORE_URL="http://127.0.0.1:' in up
    assert f'export LLMOPS_STATE_URL="postgresql://postgres:$(cat {root / "postgres.password"})@127.0.0.1:' in up
    assert "export LLMOPS_AIRFLOW_URL=http://127.0.0.1:" in up
    assert "llmops_ingest" in (project / "dags.out").read_text()
    # `dev up` made the embedded-store writers' pool (one slot) that its tasks' environment names
    pools = {p["name"]: p for p in json.loads((project / "pools.out").read_text())}
    assert pools["llmops_embedded_store"]["slots"] == 1, pools

    # the shell's ingest and the DAG's both landed in the Chroma server the shell queries
    shell_hits = json.loads((project / "shell-query.json").read_text())["hits"]
    assert shell_hits and shell_hits[0]["source"].endswith("docs/zebra.md"), shell_hits
    dag_hits = json.loads((project / "dag-query.json").read_text())["hits"]
    assert dag_hits and dag_hits[0]["source"].endswith("more/quokka.md"), dag_hits
    embedded = list((project / ".llmops").rglob("chroma.sqlite3"))  # an embedded Chroma's database file
    assert not embedded, f"an embedded store was written, not the server: {embedded}"

    r = _bash("llmops dev down\nllmops dev status || echo status-exit=$?", project, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status-exit=1" in r.stdout
    assert "postgres" in r.stderr and "chroma" in r.stderr and "api-server" in r.stderr
