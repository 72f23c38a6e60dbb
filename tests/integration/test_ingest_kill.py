"""kill -9 during a real ingest (real model, real Chroma), then a re-run: the store equals a clean run's. At random
moments, and right after each write step in turn (every Chroma call, the ledger writes, the generation bump, both
renames of the lexical index's swap), where the lexical index must end up current too."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
            f"## Section {j}\n\n"
            + " ".join(
                f"Page {i} section {j} sentence {k} talks about topic {(i * 7 + j * 3 + k) % 23}." for k in range(25)
            )
            for j in range(4)
        )
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
        p = subprocess.Popen(
            [sys.executable, "-m", "llmops_cli", "ingest", str(corpus), "--collection", "kill-test", "--json"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(clean_seconds * fraction)
        if p.poll() is None:  # a partial re-run may already be done (and reaped by poll): nothing to kill
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
    p = subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", "ingest", str(corpus), "--collection", "int-test", "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Ctrl-C once the first sources are complete in the store (read as `llmops query` would, while the ingest
    # writes), not after a guessed delay: on a slow machine the run's pace varies too much for a timer
    deadline = time.monotonic() + clean_seconds * 5
    while (
        p.poll() is None
        and time.monotonic() < deadline
        and not _complete_sources(tmp_path / "interrupted" / "chroma", "int-test")
    ):
        time.sleep(0.2)
    if p.poll() is not None:
        pytest.skip("the ingest finished before Ctrl-C could be sent")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; work already written is kept"
    assert "Traceback" not in err
    assert json.loads(out) == {  # --json: the one document is the error's (docs/json.md), no half report
        "schema_version": 1,
        "error": "interrupted; work already written is kept",
        "hint": None,
        "exit_code": 130,
    }
    rerun = run_llmops("ingest", str(corpus), "--collection", "int-test", "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["unchanged"] > 0  # what the interrupted run finished was kept
    assert snapshot(tmp_path / "interrupted" / "chroma", "int-test") == expected


def small_corpus(root: Path, version: int) -> Path:
    """v1: five pages; v2: one changed, one deleted, one new (with a word no other page has)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pages = {
        i: f"# Page {i}\n\n## Part A\n\nPage {i} talks about scheduler topic{i} and retries. "
        f"More words for page {i}.\n\n"
        f"## Part B\n\nClosing words for page {i} about executors word{i}.\n"
        for i in range(5)
    }
    if version == 2:
        pages[1] += "\n## Part C\n\nPage 1 now also covers backfills and catchup.\n"
        del pages[2]
        pages[9] = "# Page 9\n\nA new page about the zebracorn sensor and deferrable operators.\n"
    for i, text in pages.items():
        (root / f"p{i}.md").write_text(text)
    return root


def lexical_ids(home: Path, collection: str, *, built: bool = False) -> set[str]:
    """The chunk ids the lexical index serves, as a query would load it (rebuilt first if it is behind)."""
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore
    from llmops_cli.core.retrieval import LexicalIndex

    store = ChromaStore.embedded(home / "chroma", read_only=True)
    folder = home / "state" / "lexical" / hashlib.sha256(str(store.where).encode()).hexdigest()[:12] / collection
    if built:  # the index the CLI built is where we look (else a fresh build here would prove nothing)
        assert (folder / "meta.json").is_file(), "not where the CLI keeps this store's lexical index"
    index = LexicalIndex(folder, store, collection)
    index._load()
    return set(index._ids)


def store_and_lexical(home: Path, *, built: bool = False) -> tuple[list, list[str]]:
    """snapshot() and lexical_ids() read in a fresh process: the same folder is restored between runs, and Chroma
    caches an opened store per path within a process (a second read here could see the first one's data)."""
    code = (
        "import json, sys; from pathlib import Path\n"
        "from tests.integration.test_ingest_kill import snapshot, lexical_ids\n"
        "home = Path(sys.argv[1]); chunks, manifest = snapshot(home / 'chroma', 'kill-steps')\n"
        "print(json.dumps([[chunks, manifest], sorted(lexical_ids(home, 'kill-steps', built=sys.argv[2] == '1'))]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(home), "1" if built else "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    (chunks, manifest), lexical = json.loads(r.stdout)
    return [chunks, {k: [v[0], list(v[1])] for k, v in manifest.items()}], lexical


def _ingest(corpus: Path, home: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops_cli",
            "ingest",
            str(corpus),
            "--collection",
            "kill-steps",
            "--cleanup",
            "full",
            "--json",
        ],
        env=llmops_env(home, **extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("start", ["new store", "update"])
def test_kill_after_every_write_step_then_rerun_equals_clean_run(tmp_path, start):
    """SIGKILL right after the Nth write step, for every N of the run, then a plain re-run: store, ledger and lexical
    index equal an uninterrupted run's. 'update' changes, deletes and adds sources (--cleanup full), so its steps
    include reused-chunk updates, stale deletes, ledger deletes, the generation bump and both lexical renames."""
    corpus = tmp_path / "corpus"
    # every run works in the same folder (the lexical index is kept per store path), restored to the start each time
    work, saved = tmp_path / "work", tmp_path / "saved"
    work.mkdir()
    if start == "update":
        assert _ingest(small_corpus(corpus, 1), work).returncode == 0
    shutil.copytree(work, saved)
    small_corpus(corpus, 2)

    def fresh(name: str) -> Path:
        shutil.rmtree(work)
        shutil.copytree(saved, work)
        return work

    clean = fresh("clean")
    log = tmp_path / "steps.log"
    r = _ingest(corpus, clean, LLMOPS_TEST_WRITE_LOG=str(log))
    assert r.returncode == 0, r.stderr
    steps = log.read_text().splitlines()
    names = {line.split("\t", 1)[1] for line in steps}
    assert {"write ledger", "upsert chunks", "collection metadata", "lexical swap: new index in place"} <= names
    if start == "update":
        assert {
            "ledger generation",
            "delete ledger records",
            "delete chunks",
            "lexical swap: old index moved aside",
        } <= names
    expected, lexical = store_and_lexical(clean, built=True)
    assert lexical == sorted(expected[0])

    for line in steps:
        n, name = line.split("\t", 1)
        home = fresh(f"killed-{n}")
        killed = _ingest(corpus, home, LLMOPS_TEST_KILL_AFTER_WRITE=n)
        assert killed.returncode == -signal.SIGKILL, f"step {n} ({name}): {killed.stderr}"
        rerun = _ingest(corpus, home)
        assert rerun.returncode == 0, f"step {n} ({name}): {rerun.stderr}"
        got, lexical = store_and_lexical(home)
        assert got == expected, f"killed after step {n} ({name}): the store differs from a clean run's"
        assert lexical == sorted(expected[0]), f"killed after step {n} ({name}): the lexical index is stale"
