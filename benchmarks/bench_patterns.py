"""Patterns for llmops inside a DAG, measured on a real Airflow 3.3 (LocalExecutor, parallelism 4, on 127.0.0.1)
with DAGs built from ``llmops_cli.airflow`` (docs/patterns.md reads these figures):

- one task vs mapped shards: ``LlmopsIngestOperator`` (one task) vs ``ingest_group`` (plan -> 4 mapped shards ->
  finalize) on the same folder of Markdown/RST pages (real bundled embedding model), on the embedded store (writers
  one at a time) and on a Chroma server (shards in parallel); wall time of the run, the sum of its task durations,
  and the longest shard (what a retry of one failed shard redoes, vs the whole task);
- embeddings through XCom vs a file: a task hands N x 384 float vectors to the next one as its return value (JSON
  in Airflow's metadata database) or writes them to a .npy file and returns its path; both tasks' durations, the
  payload size and the metadata database's growth.

``--quick``: a smaller folder (airflow-docs/howto) and 500 vectors; default: airflow-docs/core-concepts and 2,000.
Results: benchmarks/results/bench_patterns.json.

    python -m benchmarks patterns [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CORPUS = (REPO / ".." / "shared" / "corpora" / "airflow-docs").resolve()

DAG_FILE = '''"""airflow dag file of bench_patterns (written by the benchmark)"""
import os
import numpy as np
from airflow.sdk import dag, task
from llmops_cli.airflow.groups import ingest_group
from llmops_cli.airflow.operators import LlmopsIngestOperator

SRC = {src!r}
N = {n}
OUT = {out!r}

if os.environ.get("AIRFLOW_HOME") == {home!r}:
    def build(store, conn, embedded):
        @dag(dag_id=f"bench_one_{{store}}", schedule=None, catchup=False)
        def one():
            LlmopsIngestOperator(task_id="ingest", sources=[SRC], collection=f"one-{{store}}", llmops_conn_id=conn)

        @dag(dag_id=f"bench_mapped_{{store}}", schedule=None, catchup=False)
        def mapped():
            ingest_group(
                "docs", sources=[SRC], shards=4, collection=f"mapped-{{store}}", llmops_conn_id=conn, embedded=embedded
            )

        return one(), mapped()

    one_embedded, mapped_embedded = build("embedded", "llmops_default", True)
    one_server, mapped_server = build("server", "bench_server", False)

    @dag(dag_id="bench_xcom", schedule=None, catchup=False)
    def xcom():
        @task
        def produce():
            return np.random.default_rng(0).random((N, 384), dtype=np.float32).tolist()
        @task
        def consume(vectors):
            return len(vectors)
        consume(produce())
    xcom_dag = xcom()

    @dag(dag_id="bench_disk", schedule=None, catchup=False)
    def disk():
        @task
        def produce(run_id=None):
            path = os.path.join(OUT, run_id.replace(":", "_").replace("+", "_") + ".npy")
            np.save(path, np.random.default_rng(0).random((N, 384), dtype=np.float32))
            return path
        @task
        def consume(path):
            return int(np.load(path).shape[0])
        consume(produce())
    disk_dag = disk()
'''


def _llmops() -> list[str]:
    script = Path(sys.executable).parent / "llmops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmops_cli"]


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def _run(srv, dag_id: str) -> dict:
    from llmops_cli.devstack import airflow as local_airflow

    t0 = time.perf_counter()
    r = subprocess.run(
        [*_llmops(), "trigger-dag", dag_id, "--wait", "--timeout", "900", "--json"],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=960,
    )
    wall = time.perf_counter() - t0
    doc = json.loads(r.stdout) if r.stdout.strip() else {}
    if doc.get("state") != "success":
        raise RuntimeError(f"{dag_id}: {r.stderr[-2000:]}")
    tis = local_airflow.task_placements(srv.server, dag_id, doc["run_id"])
    durations = {
        f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: round(
            _ts(t["end_date"]) - _ts(t["start_date"]), 2
        )
        for t in tis
        if t["start_date"] and t["end_date"]
    }
    starts = [_ts(t["start_date"]) for t in tis if t["start_date"]]
    ends = [_ts(t["end_date"]) for t in tis if t["end_date"]]
    return {
        "dag_id": dag_id,
        "trigger_to_done_s": round(wall, 2),
        "first_start_to_last_end_s": round(max(ends) - min(starts), 2),
        "task_seconds_total": round(sum(durations.values()), 2),
        "tasks": durations,
        "summary": (doc.get("outcome") or {}).get("summary"),
    }


def _api_post(af, path: str, body: dict) -> None:
    from llmops_cli.devstack import airflow as local_airflow

    req = urllib.request.Request(
        f"{af.url}/api/v2/{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {local_airflow.token(af)}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30):
        pass


def _xcom_size(srv, dag_id: str, run_id: str) -> int:
    from llmops_cli.devstack import airflow as local_airflow

    quoted = urllib.parse.quote(run_id, safe="")
    entry = local_airflow.api_get(
        srv.server, f"dags/{dag_id}/dagRuns/{quoted}/taskInstances/produce/xcomEntries/return_value?stringify=false"
    )
    return len(json.dumps(entry.get("value")))


def main() -> dict:
    sys.path.insert(0, str(REPO))
    from llmops_cli.devstack import airflow as local_airflow
    from llmops_cli.devstack import chroma as chroma_dev
    from tests.support.airflow_servers import TEST_DAGS, airflow_for_tests

    quick = "--quick" in sys.argv
    src = CORPUS / ("howto" if quick else "core-concepts")
    n = 500 if quick else 2000
    out: dict = {"corpus": str(src.relative_to(CORPUS.parent)), "vectors": n, "machine_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-patterns-") as tmp:
        tmp = Path(tmp)
        (tmp / "npy").mkdir()
        chroma = chroma_dev.start(tmp / "chroma")
        dag_file = TEST_DAGS / f"llmops_bench_patterns_{os.getpid()}.py"
        try:
            with airflow_for_tests(tmp / "airflow", dag_ids=["llmops_ingest"]) as srv:
                _api_post(
                    srv.server,
                    "connections",
                    {"connection_id": "bench_server", "conn_type": "llmops", "host": chroma.url},
                )
                dag_file.write_text(DAG_FILE.format(src=str(src), n=n, out=str(tmp / "npy"), home=str(srv.home)))
                ids = ["bench_one_embedded", "bench_mapped_embedded", "bench_one_server", "bench_mapped_server"]
                local_airflow.wait_for_dags(srv.server, [*ids, "bench_xcom", "bench_disk"])
                local_airflow.unpause(srv.server, [*ids, "bench_xcom", "bench_disk"])
                runs = {}
                for dag_id in ids:
                    print(f"  {dag_id}", file=sys.stderr, flush=True)
                    runs[dag_id] = _run(srv, dag_id)
                db = srv.home / "airflow.db"
                transfer = {}
                for dag_id in ("bench_disk", "bench_xcom"):
                    size0 = db.stat().st_size if db.exists() else 0
                    res = _run(srv, dag_id)
                    res["metadata_db_growth_bytes"] = (db.stat().st_size if db.exists() else 0) - size0
                    transfer[dag_id] = res
                runs_xcom = transfer["bench_xcom"]
                out["xcom_payload_bytes"] = None
                try:
                    last = local_airflow.api_get(srv.server, "dags/bench_xcom/dagRuns?limit=1&order_by=-start_date")
                    out["xcom_payload_bytes"] = _xcom_size(srv, "bench_xcom", last["dag_runs"][0]["dag_run_id"])
                except Exception as exc:  # noqa: BLE001 - the size is a detail; the timings stand without it
                    out["xcom_payload_error"] = str(exc)[:200]
                out["npy_bytes"] = n * 384 * 4 + 128
                out["runs"] = runs
                out["transfer"] = transfer
                one_e, map_e = runs["bench_one_embedded"], runs["bench_mapped_embedded"]
                one_s, map_s = runs["bench_one_server"], runs["bench_mapped_server"]
                shard = max(v for k, v in map_e["tasks"].items() if "ingest_shard" in k)
                out["ratios"] = {
                    "mapped_vs_one_wall_embedded": round(
                        map_e["first_start_to_last_end_s"] / one_e["first_start_to_last_end_s"], 2
                    ),
                    "mapped_vs_one_wall_server": round(
                        map_s["first_start_to_last_end_s"] / one_s["first_start_to_last_end_s"], 2
                    ),
                    "mapped_server_vs_mapped_embedded_wall": round(
                        map_s["first_start_to_last_end_s"] / map_e["first_start_to_last_end_s"], 2
                    ),
                    "retry_one_shard_vs_whole_task_embedded": round(shard / one_e["tasks"]["ingest"], 2),
                    "xcom_vs_disk_task_seconds": round(
                        runs_xcom["task_seconds_total"] / transfer["bench_disk"]["task_seconds_total"], 2
                    ),
                }
        finally:
            dag_file.unlink(missing_ok=True)
            chroma_dev.stop(tmp / "chroma")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_patterns.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("corpus", "vectors", "ratios")}, indent=2))
    return out


if __name__ == "__main__":
    main()
