"""Ingest benchmark, on ../shared/corpora/airflow-docs, all in one run:

- cold ingest wall time (a fresh `llmops ingest` process into an empty store) divided by the wall time of a
  process that only encodes the same chunk texts with the same model (target <= 1.15); and the same ratio
  in-process (ingest core vs encode only, model already loaded);
- re-ingest of unchanged input divided by the cold ingest (target <= 0.03);
- `llmops --help` wall time (target <= 0.3 s), beside a bare `python -c pass` as the floor;
- peak memory (max RSS) of the cold ingest process.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpora" / "airflow-docs"
RESULTS = REPO / "benchmarks" / "results"

ENCODE_ONLY = r"""
import json, sys, time
t0 = time.perf_counter()
from llmops_cli.settings import load_settings
from llmops_cli import wiring
texts = json.load(open(sys.argv[1]))
s = load_settings().settings
emb = wiring.build_embedder(s.embedder)
t1 = time.perf_counter()
for i in range(0, len(texts), 256):
    emb.embed(texts[i:i + 256])
t2 = time.perf_counter()
print(json.dumps({"encode_seconds": t2 - t1, "load_seconds": t1 - t0}))
"""


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (KiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if r.returncode not in (0, 3):
        raise RuntimeError(f"{args[:4]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return wall, max(peak, before), r


def main() -> None:
    if not CORPUS.exists():
        print("skipped: ../shared/corpora/airflow-docs is absent", file=sys.stderr)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    out: dict = {"corpus": str(CORPUS), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLMOPS_STORE_PATH": f"{tmp}/chroma", "LLMOPS_DATA_DIR": f"{tmp}/state"}
        env = {
            k: v
            for k, v in env.items()
            if not (k.startswith("LLMOPS_") and k not in ("LLMOPS_STORE_PATH", "LLMOPS_DATA_DIR", "LLMOPS_CACHE_DIR"))
        }
        backend = os.environ.get("LLMOPS_EMBEDDER_BACKEND", "auto")
        env["LLMOPS_EMBEDDER_BACKEND"] = backend
        # warm the model cache (e.g. the onnx export) so "cold" means a cold store, not a first-ever export
        _run([py, "-m", "llmops_cli", "ingest", str(REPO / "docs"), "--collection", "warmup", "--json"], env)

        cold_wall, peak_kib, r = _run(
            [py, "-m", "llmops_cli", "ingest", str(CORPUS), "--collection", "bench", "--json"], env
        )
        rep = json.loads(r.stdout)
        rewall, _, r2 = _run([py, "-m", "llmops_cli", "ingest", str(CORPUS), "--collection", "bench", "--json"], env)
        rep2 = json.loads(r2.stdout)
        assert rep2["chunks_added"] == 0

        # the same chunk texts, encoded alone by a process that loads the same model
        sys.path.insert(0, str(REPO))
        os.environ.update({"LLMOPS_STORE_PATH": env["LLMOPS_STORE_PATH"], "LLMOPS_DATA_DIR": env["LLMOPS_DATA_DIR"]})
        from llmops_cli.adapters.vectorstores.chroma import ChromaStore

        chunks = ChromaStore.embedded(Path(env["LLMOPS_STORE_PATH"])).get("bench")
        texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]
        tf = Path(tmp) / "texts.json"
        tf.write_text(json.dumps(texts))
        enc_wall, _, r3 = _run([py, "-c", ENCODE_ONLY, str(tf)], env)
        enc = json.loads(r3.stdout.strip().splitlines()[-1])

        helps = []
        floor = []
        for _ in range(7):
            t0 = time.perf_counter()
            subprocess.run([py, "-m", "llmops_cli", "--help"], capture_output=True, env=env, cwd=REPO)
            helps.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([py, "-c", "pass"], capture_output=True, env=env, cwd=REPO)
            floor.append(time.perf_counter() - t0)

    out.update(
        {
            "backend": backend,
            "chunks": rep["chunks_added"],
            "sources": rep["sources"],
            "cold_ingest_wall_s": round(cold_wall, 2),
            "cold_ingest_core_s": rep["seconds"],
            "cold_ingest_embed_s": rep["embed_seconds"],
            "encode_only_process_wall_s": round(enc_wall, 2),
            "encode_only_s": round(enc["encode_seconds"], 2),
            "ratio_cold_ingest_process_to_encode_only_process": round(cold_wall / enc_wall, 3),
            "ratio_cold_ingest_core_to_encode_only": round(rep["seconds"] / enc["encode_seconds"], 3),
            "reingest_unchanged_wall_s": round(rewall, 2),
            "ratio_reingest_to_cold_wall": round(rewall / cold_wall, 4),
            "ratio_reingest_core_to_cold_core": round(rep2["seconds"] / rep["seconds"], 4),
            "help_wall_s_median": round(statistics.median(helps), 3),
            "python_startup_s_median": round(statistics.median(floor), 3),
            "peak_rss_mb_cold_ingest": round(peak_kib / 1024, 1),
            "targets": {"cold/encode": 1.15, "reingest/cold": 0.03, "help_s": 0.3},
        }
    )
    (RESULTS / "ingest.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
