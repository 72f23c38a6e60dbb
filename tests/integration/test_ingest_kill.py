"""kill -9 during a real ingest (real model, real Chroma), then a re-run: the store equals a clean run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, llmops_env, run_llmops

pytestmark = pytest.mark.integration


def make_corpus(root: Path, pages: int = 40) -> Path:
    root.mkdir(parents=True)
    for i in range(pages):
        sections = "\n\n".join(
            f"## Section {j}\n\n" + " ".join(f"Page {i} section {j} sentence {k} talks about topic {(i * 7 + j * 3 + k) % 23}." for k in range(25))
            for j in range(4))
        (root / f"page-{i:02d}.md").write_text(f"# Page {i}\n\n{sections}\n")
    return root


def snapshot(store_path: Path, collection: str) -> tuple[dict, dict]:
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore

    store = ChromaStore.embedded(store_path)
    chunks = {h.id: (h.text, h.metadata) for h in store.get(collection)}
    manifest = {sid: (r.content_hash, tuple(r.chunk_ids)) for sid, r in store.read_manifest(collection).items()}
    return chunks, manifest


def _complete_sources(store_path: Path, collection: str) -> int:
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore
    from llmops_cli.core.ingest import INCOMPLETE
    from llmops_cli.errors import LlmopsError

    if not (store_path / "chroma.sqlite3").is_file():
        return 0
    try:
        records = ChromaStore.embedded(store_path, read_only=True).read_manifest(collection)
    except LlmopsError:  # the collection is not there yet
        return 0
    return sum(1 for r in records.values() if r.content_hash != INCOMPLETE)


def test_killed_ingest_then_rerun_equals_clean_run(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    clean_env = llmops_env(tmp_path / "clean")
    t0 = time.perf_counter()
    r = run_llmops("ingest", str(corpus), "--collection", "kill-test", "--json", env=clean_env)
    clean_seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    total = json.loads(r.stdout)["chunks_added"]
    expected = snapshot(tmp_path / "clean" / "chroma", "kill-test")
    assert len(expected[0]) == total and len(expected[1]) == 40

    env = llmops_env(tmp_path / "killed")
    killed_mid_run = 0
    for fraction in (0.45, 0.75):
        p = subprocess.Popen([sys.executable, "-m", "llmops_cli", "ingest", str(corpus), "--collection", "kill-test", "--json"],
                             env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(clean_seconds * fraction)
        if p.poll() is None:
            killed_mid_run += 1
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    rerun = run_llmops("ingest", str(corpus), "--collection", "kill-test", "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert killed_mid_run >= 1, "the ingest finished before it could be killed; the test proved nothing"
    got = snapshot(tmp_path / "killed" / "chroma", "kill-test")
    assert got[1] == expected[1]
    assert got[0] == expected[0]
    final = run_llmops("ingest", str(corpus), "--collection", "kill-test", "--json", env=env)
    assert json.loads(final.stdout)["chunks_added"] == 0


def test_ctrl_c_says_interrupted_exits_130_and_keeps_what_was_written(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", pages=120)  # several embed batches, so some are written before Ctrl-C
    clean_env = llmops_env(tmp_path / "clean")
    t0 = time.perf_counter()
    assert run_llmops("ingest", str(corpus), "--collection", "int-test", "--json", env=clean_env).returncode == 0
    clean_seconds = time.perf_counter() - t0
    expected = snapshot(tmp_path / "clean" / "chroma", "int-test")

    env = llmops_env(tmp_path / "interrupted")
    # SIGINT as in a terminal: a shell's background job (how CI may run us) starts with it ignored, and Python then
    # installs no KeyboardInterrupt handler
    p = subprocess.Popen([sys.executable, "-m", "llmops_cli", "ingest", str(corpus), "--collection", "int-test", "--json"],
                         env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Ctrl-C once the first sources are complete in the store (read as `llmops query` would, while the ingest
    # writes), not after a guessed delay: on a slow machine the run's pace varies too much for a timer
    deadline = time.monotonic() + clean_seconds * 5
    while p.poll() is None and time.monotonic() < deadline and not _complete_sources(tmp_path / "interrupted" / "chroma", "int-test"):
        time.sleep(0.2)
    if p.poll() is not None:
        pytest.skip("the ingest finished before Ctrl-C could be sent")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; work already written is kept"
    assert "Traceback" not in err and out == ""
    rerun = run_llmops("ingest", str(corpus), "--collection", "int-test", "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["unchanged"] > 0  # what the interrupted run finished was kept
    assert snapshot(tmp_path / "interrupted" / "chroma", "int-test") == expected
