"""Benchmark: does fine-tuning the embedder improve Stack Overflow retrieval, and what does it cost?

The corpus is ../shared/corpora/stackoverflow-airflow (921 threads): each thread's answers are one source of a real
collection (bundled model, embedded Chroma, BM25), each title a question whose relevant source is its own thread.
``llmops finetune embedder`` (entry.finetune) holds out 30% of the threads (by thread), trains on the rest's titles
with BM25 hard negatives, and scores base vs tuned vector retrieval over the WHOLE collection on the held-out titles
(hit@5, MRR@10, 95% paired bootstrap intervals). Then ``finetune promote`` re-embeds the collection with the tuned
model.

Figures as ratios against references measured in the same run: tuned / base for the metrics; training time and
re-embed time / the cold ingest of the same collection (which embeds the same chunks once, with the onnx backend).
``--quick``: the first 300 threads, answers cut to 2,000 characters. Results: benchmarks/results/bench_finetune.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT.parent / "shared" / "corpora" / "stackoverflow-airflow" / "base.parquet").resolve()
RESULTS = ROOT / "benchmarks" / "results" / "bench_finetune.json"


def _say(msg: str) -> None:
    print(f"[bench_finetune] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    if not CORPUS.is_file():
        _say(f"corpus not present: {CORPUS}; skipped")
        return
    sys.path.insert(0, str(ROOT))
    from llmops_cli.entry.finetune import finetune_embedder, promote_embedder
    from llmops_cli.entry.ingest import ingest
    from llmops_cli.settings import load_settings
    from llmops_cli.wiring import Workspace
    from tests.integration.test_finetune_embedder import so_titles_and_answers
    from tests.support.fakes import run_step

    quick = "--quick" in sys.argv
    threads, chars = (300, 2000) if quick else (921, None)
    epochs = int(os.environ.get("BENCH_FINETUNE_EPOCHS", "1"))
    with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp:
        root = Path(tmp)
        answers = root / "answers"
        answers.mkdir()
        rows = []
        for qid, title, text in so_titles_and_answers(threads, chars):
            (answers / f"{qid}.txt").write_text(text, encoding="utf-8")
            rows.append({"id": qid, "question": title, "relevant_sources": [f"{qid}.txt"]})
        (root / "titles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        settings = load_settings(
            environ={}, cwd=root, flags={"data_dir": str(root / ".llmops"), "store.path": str(root / "chroma")}
        ).settings
        _say(f"ingesting {len(rows)} threads")
        w0, c0 = time.perf_counter(), time.process_time()
        run_step(ingest, settings, [str(answers)], collection="so-answers")
        ingest_cost = {"wall_s": round(time.perf_counter() - w0, 2), "cpu_s": round(time.process_time() - c0, 2)}
        _say(f"ingest: {ingest_cost}; fine-tuning")
        with Workspace(settings) as ws:
            run = finetune_embedder(ws, "so-answers", datasets=[root / "titles.jsonl"], epochs=epochs, progress=_say)
            _say("re-embedding the collection with the tuned model")
            promoted = promote_embedder(ws, run["id"])
    m, train = run["metrics"], run["cost"]["train"]
    res = {
        "corpus": str(CORPUS),
        "threads": len(rows),
        "answer_chars": chars,
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "ingest": ingest_cost,
        "run": {k: run[k] for k in ("params", "data", "metrics", "cost")},
        "promote": promoted,
        "ratios": {
            "hit@5 tuned / base": round(m["tuned"]["hit@5"] / m["base"]["hit@5"], 3),
            "mrr@10 tuned / base": round(m["tuned"]["mrr@10"] / m["base"]["mrr@10"], 3),
            "training wall / cold ingest wall": round(train["wall_s"] / ingest_cost["wall_s"], 2),
            "training CPU / cold ingest CPU": round(train["cpu_s"] / ingest_cost["cpu_s"], 2),
            "re-embed wall / cold ingest wall": round(promoted["cost"]["wall_s"] / ingest_cost["wall_s"], 2),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    _say(json.dumps({"metrics": m, "ratios": res["ratios"]}, indent=1))


if __name__ == "__main__":
    main()
