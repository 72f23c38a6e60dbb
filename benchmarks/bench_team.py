"""Team benchmark: ingest of ../shared/corpora/stackoverflow-airflow (all 921 threads; ``--quick``: the first 100 by
link) into a server store (PostgreSQL with pgvector), three ways, each into a collection of its own:

- through the ``llmops_ingest`` DAG on a real Celery Airflow (tests/support/airflow_servers.py: Redis, PostgreSQL,
  workers of 2 task slots) with ONE worker running (the other stopped), then with TWO workers;
- a local ``llmops ingest`` of the same input into the same PostgreSQL (the reference).

The parquet file is one source, and the DAG shards by source, so the threads are written first as one text file
each (the thread's content) in a folder all three read by absolute path. The DAG runs with 4 shards. Timed: the
wall time of ``llmops trigger-dag --wait`` (trigger to exit) and of ``llmops ingest`` (process start to exit); the
Airflow run's own duration (its start to end dates) is reported apart. Every run must leave the same number of
chunks. Results: benchmarks/results/bench_team.json, with ratios against the 2-worker run.

    python -m benchmarks team [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CORPUS = REPO.parent / "shared" / "corpora" / "stackoverflow-airflow" / "base.parquet"
SHARDS = 4


def _llmops() -> list[str]:
    script = Path(sys.executable).parent / "llmops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]


def _threads(folder: Path, limit: int | None) -> int:
    import pandas as pd

    df = pd.read_parquet(CORPUS).sort_values("docLink")
    if limit:
        df = df.head(limit)
    folder.mkdir(parents=True)
    for link, content in zip(df["docLink"], df["content"], strict=True):
        qid = link.rstrip("/").rsplit("/", 1)[-1]
        (folder / f"{qid}.txt").write_text(content, encoding="utf-8")
    return len(df)


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = subprocess.run([*_llmops(), *cmd, "--json"], env=env, cwd=cwd, capture_output=True, text=True, timeout=7200)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"llmops {cmd[0]} exited {r.returncode}: {r.stderr[-2000:]}")
    return seconds, json.loads(r.stdout)


def _dag_ingest(srv, source: Path, collection: str) -> dict:
    conf = {"sources": [str(source)], "collection": collection, "shards": SHARDS}
    seconds, doc = _run(
        ["trigger-dag", "llmops_ingest", "--conf", json.dumps(conf), "--wait", "--timeout", "7000"],
        srv.env,
        srv.client_dir,
    )
    assert doc["state"] == "success", doc
    shards = [p for p in srv.placements("llmops_ingest", doc["run_id"]) if p["task_id"] == "ingest_shard"]
    ts = [datetime.fromisoformat(p[k].replace("Z", "+00:00")) for p in shards for k in ("start_date", "end_date")]
    summary = doc["outcome"]["summary"]
    return {
        "wall_s": round(seconds, 2),
        "shards_span_s": round((max(ts) - min(ts)).total_seconds(), 2),
        "workers_used": sorted({p["worker"] for p in shards if p["worker"]}),
        "chunks": summary["chunks_total"],
        "run_id": doc["run_id"],
    }


def main() -> dict:
    from llmops_cli.devstack import airflow as local_airflow
    from llmops_cli.devstack import redis
    from tests.support.airflow_servers import celery_airflow_for_tests

    quick = "--quick" in sys.argv
    if not CORPUS.is_file():
        raise RuntimeError(f"needs {CORPUS}")
    if redis.executable() is None:
        raise RuntimeError(f"needs redis-server ({redis.INSTALL_HINT})")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp:
        base = Path(tmp)
        source = base / "threads"
        threads = _threads(source, 100 if quick else None)
        t0 = time.perf_counter()
        with celery_airflow_for_tests(base / "airflow", workers=2) as srv:
            startup = time.perf_counter() - t0
            af = local_airflow.LocalAirflow.load(srv.home)
            local_airflow.stop_component(af, "worker-2", grace_s=30)  # one worker: the other one down
            af.pid_file("worker-2").unlink(missing_ok=True)
            one = _dag_ingest(srv, source, "bench-team-1w")
            srv.start_worker("worker-2")
            two = _dag_ingest(srv, source, "bench-team-2w")
            env = {**srv.env, "LLMOPS_DATA_DIR": str(srv.client_dir / "data")}
            local_s, report = _run(["ingest", str(source), "--collection", "bench-team-local"], env, srv.client_dir)
            local = {"wall_s": round(local_s, 2), "chunks": report.get("chunks_total")}
    assert one["workers_used"] == ["worker-1"], one
    assert two["workers_used"] == ["worker-1", "worker-2"], two
    assert one["chunks"] == two["chunks"] == local["chunks"], (one, two, local)
    result = {
        "benchmark": "team",
        "quick": quick,
        "threads": threads,
        "chunks": two["chunks"],
        "store": "postgresql+pgvector (server)",
        "shards": SHARDS,
        "worker_slots": 2,
        "airflow_one_worker": one,
        "airflow_two_workers": two,
        "local_llmops_ingest": local,
        "ratio_one_worker_to_two_workers": round(one["wall_s"] / two["wall_s"], 2),
        "ratio_local_to_two_workers": round(local["wall_s"] / two["wall_s"], 2),
        "ratio_one_worker_to_local": round(one["wall_s"] / local["wall_s"], 2),
        "ratio_shards_span_one_to_two_workers": round(one["shards_span_s"] / two["shards_span_s"], 2),
        "chunks_per_s_two_workers": round(two["chunks"] / two["wall_s"], 1),
        "chunks_per_s_local": round(local["chunks"] / local["wall_s"], 1),
        "stack_startup_s": round(startup, 1),
        "benchmark_seconds": round(time.perf_counter() - t_start, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_team.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
