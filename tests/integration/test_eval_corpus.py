"""End-to-end retrieval evaluation on real data: Stack Overflow threads tagged airflow (../shared/corpora).

Queries are the threads' questions, the corpus is their answers (one file per thread), and each query's relevant
source is its own thread. The real pipeline (bundled embedder, real Chroma, BM25, fusion) must score far above a
deliberately broken retriever that searches with another thread's question.
"""

import json
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "stackoverflow-airflow" / "base.parquet"
THREADS = 150
POST_HEADER = re.compile(r"\nDATE: [^\n]*\nBY: [^\n]*\nSCORE: [^\n]*\n")


def split_thread(content: str) -> tuple[str, list[str]]:
    """(question text: title + body, [answers]) from the thread's TITLE/DATE/BY/SCORE layout."""
    blocks = POST_HEADER.split(content)
    title = blocks[0].strip().removeprefix("TITLE:").strip()
    return f"{title}\n{blocks[1].strip()}", [b.strip() for b in blocks[2:] if b.strip()]


class WrongQuestionRetriever:
    """Broken on purpose: answers each question with the results for the next thread's question."""

    def __init__(self, inner, questions: list[str]):
        self.inner = inner
        self.next_of = {q: questions[(i + 1) % len(questions)] for i, q in enumerate(questions)}

    def search(self, text, k, mode="hybrid", where=None):
        return self.inner.search(self.next_of[text], k, mode=mode, where=where)


@pytest.fixture(scope="module")
def so_project(tmp_path_factory):
    if not CORPUS.is_file():
        pytest.skip(f"corpus not present: {CORPUS}")
    import pandas as pd

    from llmops_cli.entry.ingest import ingest
    from llmops_cli.settings import load_settings
    from tests.support.fakes import run_step

    root = tmp_path_factory.mktemp("so")
    df = pd.read_parquet(CORPUS).sort_values("docLink").head(THREADS)
    answers_dir = root / "answers"
    answers_dir.mkdir()
    rows = []
    for link, content in zip(df["docLink"], df["content"], strict=False):
        qid = link.rstrip("/").rsplit("/", 1)[-1]
        question, answers = split_thread(content)
        (answers_dir / f"{qid}.txt").write_text("\n\n".join(answers), encoding="utf-8")
        rows.append({"id": qid, "question": question[:600], "relevant_sources": [f"{qid}.txt"]})
    (root / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = load_settings(
        environ={}, cwd=root, flags={"data_dir": str(root / ".llmops"), "store.path": str(root / "chroma")}
    ).settings
    run_step(ingest, settings, [str(answers_dir)], collection="so-answers")
    return root, settings


def test_real_pipeline_scores_far_above_a_broken_retriever(so_project):
    import asyncio

    from llmops_cli.core.eval.datasets import load_dataset
    from llmops_cli.core.eval.runner import EvalOptions, run_eval
    from llmops_cli.entry.ask import retriever
    from llmops_cli.entry.eval import evaluate
    from llmops_cli.wiring import Workspace

    root, settings = so_project
    real = evaluate(
        settings,
        root / "qs.jsonl",
        collection="so-answers",
        metrics=["retrieval"],
        k=5,
        outputs=[root / "report.html", root / "rows.parquet"],
    )
    ds = load_dataset(root / "qs.jsonl")
    with Workspace(settings) as ws:
        broken = WrongQuestionRetriever(retriever(ws, "so-answers"), [i.question for i in ds.items])
        bad = asyncio.run(run_eval(ds, EvalOptions(metrics=["retrieval"], k=5), retriever=broken))
    print(
        "real",
        {m: round(v, 3) for m, v in real.metrics.items()},
        "broken",
        {m: round(v, 3) for m, v in bad.metrics.items()},
    )
    assert real.counts["mrr"] == THREADS and real.error_rows == 0
    assert real.metrics["hit@5"] >= 0.6
    assert real.metrics["mrr"] >= 0.45
    assert bad.metrics["hit@5"] <= 0.15
    assert real.metrics["ndcg@5"] >= bad.metrics["ndcg@5"] + 0.4
    assert real.run_id is not None and (root / "report.html").stat().st_size > 10_000


def test_robustness_on_real_retrieval(so_project):
    from llmops_cli.entry.eval import evaluate

    root, settings = so_project
    rep = evaluate(
        settings,
        root / "qs.jsonl",
        collection="so-answers",
        metrics=["retrieval", "robustness"],
        k=5,
        limit=40,
        perturbations=["typos", "casing"],
        record=False,
    )
    for kind in ("typos", "casing"):
        d = rep.robustness[kind]["metrics"]["mrr"]
        assert d["rows"] == 40 and d["original"] == pytest.approx(rep.metrics["mrr"])
        assert -1.0 <= d["delta"] <= 1.0
    assert rep.robustness["typos"]["example"]["perturbed"] != rep.robustness["typos"]["example"]["original"]


def test_cli_subprocess_gate_and_history(so_project):
    """The installed command, as CI runs it: one JSON document on stdout, exit 4 on a failed gate, no traceback."""
    import os
    import subprocess
    import sys

    root, settings = so_project
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update({"LLMOPS_DATA_DIR": settings.data_dir, "LLMOPS_STORE_PATH": settings.store.path})

    def llmops(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "llmops_cli", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    run = ["eval", "qs.jsonl", "--collection", "so-answers", "--limit", "30", "-k", "5"]
    gate = llmops(*run, "--fail-under", "hit@k=0.99", "--fail-under", "mrr=0.1", "--json")
    assert gate.returncode == 4, gate.stderr
    doc = json.loads(gate.stdout)
    assert [g["passed"] for g in doc["gates"]] == [False, True]
    assert "Traceback" not in gate.stderr and "quality gate failed: hit@5 = " in gate.stderr  # hit@k is the run's own k
    ok = llmops(*run, "--baseline", "latest", "--fail-on-regression")
    assert ok.returncode == 0, ok.stderr
    assert "Against baseline run" in ok.stdout and "same" in ok.stdout  # identical inputs: no metric moved
    runs = llmops("eval", "runs", "--json", timeout=120)
    assert runs.returncode == 0 and len(json.loads(runs.stdout)["runs"]) >= 2
