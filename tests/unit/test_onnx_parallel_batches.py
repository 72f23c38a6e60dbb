"""OnnxEmbedder runs a large call's batches side by side on its pool, each row still its own text's."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from llmops_cli.adapters.embedders import onnx_embedder
from llmops_cli.adapters.embedders.onnx_embedder import PARALLEL_MIN_BATCHES, OnnxEmbedder
from llmops_cli.errors import EmbedderError


class ThreadRecordingSession:
    """One-hot at (number of real tokens) per row; records which threads ran batches. A batch holding a text of
    ``fail_at`` tokens raises, like a failing onnxruntime run."""

    def __init__(self, dim: int, fail_at: int | None = None):
        self.dim, self.fail_at = dim, fail_at
        self.threads: set[str] = set()
        self.rows = 0
        self.lock = threading.Lock()

    def run(self, outputs, feeds):
        mask = feeds["attention_mask"]
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.rows += mask.shape[0]
        if self.fail_at is not None and (mask.sum(axis=1) == self.fail_at).any():
            raise RuntimeError("boom")
        out = np.zeros((mask.shape[0], self.dim), dtype=np.float32)
        out[np.arange(mask.shape[0]), mask.sum(axis=1)] = 1.0
        return [out]


@pytest.fixture
def embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_embedder, "ensure_exported", lambda layout, precision: Path("/nonexistent/model.onnx"))
    return OnnxEmbedder("all-MiniLM-L6-v2", batch_size=4, threads=2, preload=False)


def test_large_call_runs_batches_on_the_pool_in_the_callers_order(embedder):
    rng = np.random.default_rng(7)
    texts = [" ".join(["word"] * int(n)) for n in rng.integers(1, 120, size=4 * 2 * PARALLEL_MIN_BATCHES * 3)]
    embedder._session = fake = ThreadRecordingSession(embedder.dimension)
    vecs = embedder.embed(texts)
    lengths = [len(e.ids) for e in embedder.tokenizer.encode_batch(texts)]
    assert [int(np.argmax(v)) for v in vecs] == lengths
    assert fake.rows == len(texts)
    assert fake.threads and all(t.startswith("onnx-embed") for t in fake.threads)


def test_small_call_runs_in_the_callers_thread(embedder):
    embedder._session = fake = ThreadRecordingSession(embedder.dimension)
    embedder.embed(["one short question"])
    assert fake.threads == {threading.current_thread().name}


def test_a_failing_batch_on_the_pool_raises_an_embedder_error(embedder):
    texts = [" ".join(["word"] * n) for n in range(1, 41)]
    embedder._session = ThreadRecordingSession(embedder.dimension, fail_at=22)  # 20 words + [CLS] + [SEP]
    with pytest.raises(EmbedderError, match="onnxruntime failed embedding a batch"):
        embedder.embed(texts)
