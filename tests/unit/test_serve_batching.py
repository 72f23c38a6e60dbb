"""The serve embedder wrapper (adapters/embedders/batching.py): concurrent questions share model calls, and each
caller gets exactly its own vector."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llmops_cli.adapters.embedders.batching import BatchingEmbedder


class SlowEmbedder:
    """A vector per text derived from its hash; each call takes a few ms, as a model call does; records batches."""

    identity = "slow-test"
    dimension = 8

    def __init__(self, fail_on: str | None = None):
        self.batches: list[int] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def embed(self, texts):
        with self._lock:
            self.batches.append(len(texts))
        time.sleep(0.005)
        if self.fail_on in texts:
            raise ValueError(f"cannot embed {self.fail_on!r}")
        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8).astype(np.float32) + 1 for t in texts
        ]
        return np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)

    def embed_query(self, text):
        return self.embed([text])[0]


def test_each_thread_gets_its_own_vector_and_calls_are_shared():
    inner = SlowEmbedder()
    e = BatchingEmbedder(inner, max_batch=16)
    texts = [f"question {i}" for i in range(200)]
    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(e.embed_query, texts))
    want = [SlowEmbedder().embed([t])[0] for t in texts]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
    assert sum(inner.batches) == len(texts)
    assert max(inner.batches) <= 16
    assert len(inner.batches) < len(texts) / 4  # coalesced: far fewer model calls than questions


def test_a_lone_call_runs_at_once_and_attributes_pass_through():
    inner = SlowEmbedder()
    e = BatchingEmbedder(inner)
    assert np.array_equal(e.embed_query("one"), inner.embed(["one"])[0])
    assert inner.batches == [1, 1]
    assert e.dimension == 8 and e.identity == "slow-test"
    assert e.embed(["a", "b"]).shape == (2, 8)  # a caller's own batch passes through


def test_an_error_fails_only_its_own_request():
    e = BatchingEmbedder(SlowEmbedder(fail_on="bad"))
    texts = ["bad"] + [f"ok {i}" for i in range(30)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(e.embed_query, t) for t in texts]
    with pytest.raises(ValueError, match="cannot embed 'bad'"):
        futures[0].result()
    for f, t in zip(futures[1:], texts[1:], strict=True):
        assert np.array_equal(f.result(), SlowEmbedder().embed([t])[0])
