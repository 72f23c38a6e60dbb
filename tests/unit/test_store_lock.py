"""The embedded store's write lock: one writer across processes, a clear wait/exit message, nothing left behind by
a killed holder, re-entrant within a process. Real processes hold the lock (flock is per open file, so a thread of
this process could not stand in for another writer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmops_cli.core import store_lock
from llmops_cli.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from llmops_cli.core import store_lock
store_lock.acquire(sys.argv[1], 0)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(store: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), str(seconds), "ingest", "docs"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_waits_then_exits_10_naming_the_holder(tmp_path):
    store = tmp_path / "chroma"
    p = hold(store, 30)
    try:
        told: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(store_lock.StoreLockedError) as e:
            store_lock.acquire(store, 0.5, announce=told.append)
        waited = time.monotonic() - t0
        assert 0.5 <= waited < 5
        assert e.value.exit_code == ExitCode.CONFLICT == 10
        assert f"pid {p.pid}" in e.value.message and str(store) in e.value.message
        # only ingest has --wait-lock: the others (collections delete, verify, feedback) were told of it too
        assert "--wait-lock" not in e.value.hint and "LLMOPS_WAIT_LOCK=SECONDS" in e.value.hint
        assert len(told) == 1 and f"pid {p.pid}" in told[0] and "waiting up to 0.5 s" in told[0]
        assert "(LLMOPS_WAIT_LOCK=SECONDS waits longer)" in told[0]
        assert not store_lock.holds(store)
        with pytest.raises(store_lock.StoreLockedError) as e:
            store_lock.acquire(store, 0, announce=told.append, flag="--wait-lock")
        assert "wait for it with --wait-lock SECONDS (or LLMOPS_WAIT_LOCK=SECONDS);" in e.value.hint
    finally:
        p.kill()
        p.wait()


def test_a_waiting_writer_gets_the_lock_when_the_holder_finishes(tmp_path):
    store = tmp_path / "chroma"
    p = hold(store, 1.0)
    try:
        with store_lock.write_lock(store, 30, announce=lambda m: None):
            assert p.poll() is not None  # it got the lock only once the holder had ended
            assert store_lock.holds(store)
        assert not store_lock.holds(store)
    finally:
        p.kill()
        p.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    store = tmp_path / "chroma"
    p = hold(store, 60)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with store_lock.write_lock(store, 0):
        pass


def test_reentrant_in_one_process_and_a_new_store_gets_its_folder(tmp_path):
    store = tmp_path / "new" / "chroma"
    with store_lock.write_lock(store, 0):
        assert store.is_dir()
        with store_lock.write_lock(store, 0):
            assert store_lock.holds(store)
        assert store_lock.holds(store)  # the inner release keeps the outer hold
    assert not store_lock.holds(store)


def test_the_wait_env_variable_sets_the_default_and_must_be_a_number(monkeypatch):
    monkeypatch.setenv(store_lock.WAIT_ENV, "2.5")
    assert store_lock.default_wait() == 2.5
    monkeypatch.setenv(store_lock.WAIT_ENV, "soon")
    with pytest.raises(store_lock.LlmopsError) as e:
        store_lock.default_wait()
    assert e.value.exit_code == ExitCode.USAGE


def test_the_embedded_store_refuses_a_write_while_another_process_writes(tmp_path, monkeypatch):
    """Any write through ChromaStore takes the lock, not only the commands that take it up front."""
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore

    store = tmp_path / "chroma"
    monkeypatch.setenv(store_lock.WAIT_ENV, "0.2")
    p = hold(store, 30)
    try:
        with pytest.raises(store_lock.StoreLockedError):
            ChromaStore.embedded(store).ensure_collection("docs")
        assert not (store / "chroma.sqlite3").exists()  # refused before the store was opened for writing
    finally:
        p.kill()
        p.wait()


def test_a_store_folder_that_cannot_be_made_is_a_store_error(tmp_path):
    from llmops_cli.errors import StoreError

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError) as e:
        store_lock.acquire(tmp_path / "file" / "chroma", 0)
    assert "store.path" in e.value.hint


def test_promotion_takes_the_write_lock_once_and_only_to_write(tmp_path):
    """A vote or review that changes no promoted answer never waits for an ingest.

    One that does change one writes under the lock.
    """
    from contextlib import contextmanager

    from llmops_cli.core.collection_meta import EMBEDDER_KEY, GENERATION_KEY
    from llmops_cli.core.feedback.log import AnswerLog
    from llmops_cli.core.feedback.promotion import Promoter
    from tests.support.fakes import FakeEmbedder, MemoryStore
    from tests.unit.test_feedback_promotion import T, add

    store, emb = MemoryStore(), FakeEmbedder()
    store.ensure_collection("docs", metadata={EMBEDDER_KEY: emb.identity, GENERATION_KEY: 0})
    # the ingested chunk the answers cite (an answer whose cited chunks are gone is stale, never promoted)
    store.upsert("docs", ["c1"], emb.embed(["Rotate keys."]), ["Rotate keys."], [{"source": "guide.md"}])
    events: list[str] = []

    @contextmanager
    def lock():
        events.append("locked")
        yield
        events.append("released")

    real_upsert = store.upsert
    store.upsert = lambda *a, **kw: (events.append("upsert"), real_upsert(*a, **kw))[1]
    log = AnswerLog(tmp_path / "answers.sqlite")
    try:
        promoter = Promoter(log, store, lambda coll: emb, T, write_lock=lock)
        good, bad = add(log), add(log, question="other", public=False)
        assert promoter.reconcile([bad]).not_promoted and events == []
        assert promoter.reconcile([good, bad]).promoted == [good]
        assert events == ["locked", "upsert", "released"]
    finally:
        log.close()
