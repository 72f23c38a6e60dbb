"""Benchmark: what tracing costs a query (the target: under 5% of its time).

The project's own docs ingested once (real bundled model, embedded Chroma); then `entry.ask.query` (hybrid search:
the question embedded, the vector and BM25 lists, fusion) in one warm workspace, in alternating blocks with tracing
on (the SDK's provider, spans kept in the state database through the batch processor, as a command has it) and off
(the API's no-op tracer), so that both see the same machine load. Ratio = median traced query / median untraced one.
Results: benchmarks/results/bench_tracing.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How do I make llmops wait for an Airflow DAG run?",
    "Which exit code means a quality gate failed?",
    "How are source ids made relative to the project?",
    "Where does the answer log live on a team deployment?",
    "How do I export traces to an OTLP collector?",
]
BLOCKS = 6
PER_BLOCK = 10


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from opentelemetry.trace import NoOpTracer

    from llmops_cli.adapters import tracing as tracing_sdk
    from llmops_cli.adapters.state import open_state
    from llmops_cli.core import tracing
    from llmops_cli.entry import ask as ask_entry
    from llmops_cli.entry import ingest as ingest_entry
    from llmops_cli.settings import load_settings
    from llmops_cli.wiring import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        flags = {
            "data_dir": str(Path(tmp) / "state"),
            "store.path": str(Path(tmp) / "chroma"),
            "ingest.source_root": str(ROOT),
            "tracing.enabled": False,
        }
        settings = load_settings(environ={}, cwd=Path(tmp), flags=flags).settings
        with Workspace(settings) as ws:
            ingest_entry.ingest(ws, [str(ROOT / "docs")], collection="bench-tracing")
        traced = settings.model_copy(update={"tracing": settings.tracing.model_copy(update={"enabled": True})})
        provider = tracing_sdk.configure(traced.tracing, lambda: open_state(None, traced.data_path))
        on_tracer, off_tracer = provider.get_tracer(tracing.INSTRUMENTATION), NoOpTracer()
        times: dict[str, list[float]] = {"on": [], "off": []}
        with Workspace(settings) as ws:
            for q in QUESTIONS:  # warm: model, store, BM25 index
                ask_entry.query(ws, q, collection="bench-tracing")
            for b in range(BLOCKS * 2):
                mode = ("on", "off")[b % 2] if (b // 2) % 2 == 0 else ("off", "on")[b % 2]
                tracing._tracer = on_tracer if mode == "on" else off_tracer
                for i in range(PER_BLOCK):
                    t0 = time.perf_counter()
                    ask_entry.query(ws, QUESTIONS[i % len(QUESTIONS)], collection="bench-tracing")
                    times[mode].append(time.perf_counter() - t0)
        tracing_sdk.flush()
        with open_state(None, traced.data_path).traces() as store:
            kept = len(store.recent(10_000))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    result = {
        "queries_each": len(times["on"]),
        "median_query_s": {"traced": round(on, 5), "untraced": round(off, 5)},
        "ratio_traced_over_untraced": round(on / off, 4),
        "overhead_percent": round((on / off - 1) * 100, 2),
        "traces_kept": kept,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
