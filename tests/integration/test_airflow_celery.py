"""A real multi-worker Airflow 3.3 on loopback (CeleryExecutor, Redis broker, PostgreSQL metadata database, two
Celery workers with their own HOME and working directory): a mapped DAG's map indexes run on both workers, at the
same time, and each task's log is read through the API from the worker that wrote it. Triggered and read through
the `llmops` CLI from a third folder, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path

import pytest

from llmops_cli.devstack import airflow as local_airflow

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(600)]


def llmops(srv, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "llmops"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]
    r = subprocess.run([*cmd, *args], env=srv.env, cwd=srv.client_dir, capture_output=True, text=True, timeout=timeout)
    both = r.stdout + r.stderr
    assert "Traceback" not in both, both
    assert srv.server.password not in both, "the password was printed"
    return r


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_mapped_tasks_run_on_both_workers_in_parallel(celery_airflow):
    srv = celery_airflow
    r = llmops(srv, "trigger-dag", "llmops_test_spread", "-p", "n=4", "-p", "seconds=3", "--wait", "--json")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["state"] == "success", run

    work = [p for p in srv.placements("llmops_test_spread", run["run_id"]) if p["task_id"] == "work"]
    assert sorted(p["map_index"] for p in work) == [0, 1, 2, 3]
    assert all(p["state"] == "success" for p in work), work
    by_worker: dict[str, list[dict]] = {}
    for p in work:
        assert p["worker"] is not None, f"task ran on {p['hostname']!r}, which is no worker of ours"
        by_worker.setdefault(p["worker"], []).append(p)
    assert set(by_worker) == {"worker-1", "worker-2"}, {w: [p["map_index"] for p in ps] for w, ps in by_worker.items()}

    # in parallel: a map index on one worker ran while one on the other worker was running
    overlaps = [
        (a["map_index"], b["map_index"])
        for a in by_worker["worker-1"]
        for b in by_worker["worker-2"]
        if _t(a["start_date"]) < _t(b["end_date"]) and _t(b["start_date"]) < _t(a["end_date"])
    ]
    assert overlaps, work

    # each task ran in its own worker's HOME and working directory (nothing on disk shared between them)
    quoted = urllib.parse.quote(run["run_id"], safe="")
    for p in work:
        worker = srv.server.worker(p["worker"])
        entry = local_airflow.api_get(
            srv.server,
            f"dags/llmops_test_spread/dagRuns/{quoted}/taskInstances/work/xcomEntries/return_value"
            f"?map_index={p['map_index']}&deserialize=true",
        )
        value = entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])
        assert value["i"] == p["map_index"]
        assert value["home"] == str(worker.home) and value["cwd"] == str(worker.workdir), (p, value)

    # each task's log comes from the worker that ran it (its own log folder, served on its own address)
    for name, ps in sorted(by_worker.items()):
        p = ps[0]
        r = llmops(srv, "logs", "llmops_test_spread", run["run_id"], "work", "--map-index", str(p["map_index"]))
        assert r.returncode == 0, r.stderr
        assert f"LLMOPS-SPREAD item {p['map_index']} on {srv.server.worker(name).address}" in r.stdout, r.stdout[-3000:]
