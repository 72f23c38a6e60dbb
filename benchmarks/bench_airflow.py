"""Benchmark: the Airflow control plane against a real Airflow 3.3 on 127.0.0.1.

- `llmops dags list --json` wall time, process start-up included (median of 5), as a ratio to the same request
  made by a bare HTTP client in-process (token exchange + GET /api/v2/dags), and to `llmops --version`
  (the CLI's start-up floor).
- The delay from a run's end, as the server records it (``end_date``), to `llmops trigger-dag --wait` exiting
  (median and max of 3 runs of a 1 + 4 mapped task DAG); target <= 1 s. Reported also as a ratio to the
  waiter's poll interval (0.5 s).

Starts its own server (llmops_cli/devstack/airflow.py, in a temporary folder) unless LLMOPS_BENCH_AIRFLOW_HOME
names the AIRFLOW_HOME of a running one that has the test DAGs (tests/integration/airflow_dags).
Results: benchmarks/results/bench_airflow.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.5
TARGET_DELAY_S = 1.0


def _llmops() -> list[str]:
    script = Path(sys.executable).parent / "llmops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, r


def _bare_http_dags_list(url: str, password: str) -> float:
    t0 = time.perf_counter()
    req = urllib.request.Request(
        f"{url}/auth/token",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.loads(r.read())["access_token"]
    req = urllib.request.Request(f"{url}/api/v2/dags?limit=100", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        json.loads(r.read())
    return time.perf_counter() - t0


@contextlib.contextmanager
def _server():
    from llmops_cli.devstack.airflow import LocalAirflow
    from tests.support.airflow_servers import airflow_for_tests

    home = os.environ.get("LLMOPS_BENCH_AIRFLOW_HOME")
    if home:
        af = LocalAirflow.load(Path(home).resolve())
        if af is None or af.healthy() is None:
            raise RuntimeError(f"no healthy local Airflow in {home}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_AIRFLOW")}
        env.update(af.client_env())
        yield af, env, False
        return
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp, airflow_for_tests(Path(tmp)) as srv:
        yield srv.server, srv.env, True


def main() -> dict:
    t_start = time.perf_counter()
    with _server() as (af, env, started):
        env = dict(env, NO_COLOR="1")
        cli = _llmops()
        _timed([*cli, "dags", "list", "--json"], env)  # warm the OS file cache
        dags_list = []
        for _ in range(5):
            dt, r = _timed([*cli, "dags", "list", "--json"], env)
            assert r.returncode == 0, r.stderr
            dags_list.append(dt)
        version = [_timed([*cli, "--version"], env)[0] for _ in range(5)]
        bare = [_bare_http_dags_list(af.url, af.password) for _ in range(5)]

        delays, run_ids = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            r = subprocess.run(
                [*cli, "trigger-dag", "llmops_test_quick", "--wait", "--json", "--timeout", "300"],
                env=env,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            exited = time.time()
            assert r.returncode == 0, r.stderr
            doc = json.loads(r.stdout)
            run = json.loads(
                subprocess.run(
                    [*cli, "runs", "get", "llmops_test_quick", doc["run_id"], "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                ).stdout
            )
            end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")).timestamp()
            delays.append(exited - end)
            run_ids.append({"run_id": doc["run_id"], "trigger_to_exit_s": round(time.perf_counter() - t0, 3)})

    med = statistics.median
    result = {
        "benchmark": "airflow",
        "server_started_by_benchmark": started,
        "dags_list_wall_s_median": round(med(dags_list), 3),
        "llmops_version_wall_s_median": round(med(version), 3),
        "bare_http_token_plus_dags_s_median": round(med(bare), 4),
        "ratio_dags_list_to_cli_startup": round(med(dags_list) / med(version), 2),
        "ratio_dags_list_to_bare_http": round(med(dags_list) / med(bare), 1),
        "end_to_exit_delay_s": [round(d, 3) for d in delays],
        "end_to_exit_delay_s_median": round(med(delays), 3),
        "end_to_exit_delay_s_max": round(max(delays), 3),
        "ratio_delay_to_poll_interval": round(med(delays) / POLL_S, 2),
        "target_delay_s": TARGET_DELAY_S,
        "meets_target": max(delays) <= TARGET_DELAY_S,
        "runs": run_ids,
        "benchmark_seconds": round(time.perf_counter() - t_start, 1),
    }
    out = ROOT / "benchmarks" / "results" / "bench_airflow.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
