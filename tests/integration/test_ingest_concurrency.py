"""Two writers on one embedded store (real processes, real model, real Chroma): they take turns, and the store ends
equal to a clean sequential run's (ids, texts, ledger) with every chunk readable and reachable by vector search.
Without the lock both exited 0 on a damaged index (duplicate index entries, unreachable chunks, unreadable
embeddings), or both failed on a brand-new store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import REPO, corpus, llmops_env, run_llmops
from tests.integration.test_ingest_kill import make_corpus, snapshot

pytestmark = pytest.mark.integration

COLL = "conc-test"


def start_ingest(paths: list[Path], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmops_cli",
            "ingest",
            *map(str, paths),
            "--collection",
            COLL,
            "--json",
            "--wait-lock",
            "300",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def vector_index_problems(store_path: Path, collection: str) -> list[str]:
    """What the vector index gets wrong: embeddings that cannot be read, chunks a full-size query does not reach."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    col = chromadb.PersistentClient(
        path=str(store_path), settings=ChromaSettings(anonymized_telemetry=False)
    ).get_collection(collection)
    n = col.count()
    try:
        got = col.get(include=["embeddings"])
    except Exception as e:  # noqa: BLE001 - "Error getting embedding"
        return [f"embeddings unreadable: {e}"]
    problems = []
    if len(got["ids"]) != n or len(set(got["ids"])) != n:
        problems.append(f"{n} counted, {len(got['ids'])} read, {len(set(got['ids']))} unique")
    dim = len(got["embeddings"][0])
    probe = np.full(dim, 1.0 / np.sqrt(dim), dtype=np.float32)
    reached = set(col.query(query_embeddings=[probe], n_results=n, include=[])["ids"][0])
    if reached != set(got["ids"]):
        problems.append(f"{len(set(got['ids']) - reached)} chunks unreachable by vector search")
    return problems


@pytest.mark.parametrize("folders", ["same", "different"])
@pytest.mark.parametrize("store", ["new", "existing"])
def test_two_concurrent_ingests_take_turns_and_leave_a_clean_store(tmp_path, folders, store):
    a = make_corpus(tmp_path / "a", pages=12)
    b = make_corpus(tmp_path / "b", pages=12) if folders == "different" else a
    if folders == "different":  # not the same text as a's pages
        for p in b.glob("*.md"):
            p.write_text(p.read_text().replace("talks about", "is about"))
    old = make_corpus(tmp_path / "old", pages=4)

    clean_env, env = llmops_env(tmp_path / "clean"), llmops_env(tmp_path / "conc")
    for e in (clean_env, env):
        if store == "existing":  # a store with a collection already in it, and the same collection started
            assert run_llmops("ingest", str(old), "--collection", COLL, env=e).returncode == 0
    for paths in ([a], [b]):
        r = run_llmops("ingest", *map(str, paths), "--collection", COLL, env=clean_env)
        assert r.returncode == 0, r.stderr
    expected = snapshot(tmp_path / "clean" / "chroma", COLL)

    procs = [start_ingest([a], env), start_ingest([b], env)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    waited = [err for _, err in outs if "waiting up to 300 s for pid" in err]
    assert len(waited) == 1, [err for _, err in outs]  # one wrote while the other waited, saying who it waited for

    assert snapshot(tmp_path / "conc" / "chroma", COLL) == expected
    assert vector_index_problems(tmp_path / "conc" / "chroma", COLL) == []
    again = run_llmops("ingest", str(a), "--collection", COLL, "--json", env=env)
    assert again.returncode == 0 and '"chunks_added": 0' in again.stdout


@pytest.mark.corpus
def test_two_concurrent_ingests_of_the_airflow_docs_leave_an_undamaged_index(tmp_path):
    """The issue's reproduction (the 54 Airflow docs pages, twice at once into a store that has another collection):
    without the lock both exited 0 on a damaged vector index, 3 runs of 3."""
    docs = corpus("airflow-docs")
    old = make_corpus(tmp_path / "old", pages=2)
    clean_env, env = llmops_env(tmp_path / "clean"), llmops_env(tmp_path / "conc")
    for e in (clean_env, env):
        assert run_llmops("ingest", str(old), "--collection", "other-docs", env=e).returncode == 0
    assert run_llmops("ingest", str(docs), "--collection", COLL, env=clean_env).returncode == 0
    expected = snapshot(tmp_path / "clean" / "chroma", COLL)

    procs = [start_ingest([docs], env), start_ingest([docs], env)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert vector_index_problems(tmp_path / "conc" / "chroma", COLL) == []
    assert snapshot(tmp_path / "conc" / "chroma", COLL) == expected


HOLDER = """
import sys, time
from llmops_cli.core import store_lock
store_lock.acquire(sys.argv[1], 0)
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "{docs}", "--collection", COLL, "--wait-lock", "0.5"],
        ["collections", "delete", COLL, "--yes"],
    ],
)
def test_a_writer_that_cannot_get_the_store_exits_10_and_writes_nothing(tmp_path, command):
    docs = make_corpus(tmp_path / "docs", pages=2)
    env = llmops_env(tmp_path, LLMOPS_WAIT_LOCK="0.5")
    assert run_llmops("ingest", str(docs), "--collection", COLL, env=env).returncode == 0
    (docs / "page-00.md").write_text("# Changed\n\nNew text that must not reach the store while it is locked.\n")
    before = snapshot(tmp_path / "chroma", COLL)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "chroma")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_llmops(*[c.format(docs=docs) for c in command], env=env)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 10, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-2].startswith(f"error: the store at {tmp_path / 'chroma'} is being written by pid {holder.pid}")
    assert lines[-1].startswith("hint: ") and "LLMOPS_WAIT_LOCK=SECONDS" in lines[-1] and "Traceback" not in r.stderr
    # the flag only for the command that has it (collections delete was told of --wait-lock)
    assert ("--wait-lock SECONDS" in lines[-1]) == (command[0] == "ingest")
    assert snapshot(tmp_path / "chroma", COLL) == before


def test_readers_do_not_wait_for_a_writer(tmp_path):
    docs = make_corpus(tmp_path / "docs", pages=2)
    env = llmops_env(tmp_path, LLMOPS_WAIT_LOCK="0")
    assert run_llmops("ingest", str(docs), "--collection", COLL, env=env).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "chroma")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (
            ["query", "topic 3", "--collection", COLL],
            ["collections", "list"],
            ["ingest", str(docs), "--collection", COLL, "--dry-run"],
        ):
            r = run_llmops(*args, env=env)
            assert r.returncode == 0, (args, r.stderr)
    finally:
        holder.kill()
        holder.wait()
    shutil.rmtree(tmp_path / "docs")
