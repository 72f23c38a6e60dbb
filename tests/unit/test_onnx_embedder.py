"""OnnxEmbedder's batching and the backend choice in wiring, on a fake onnxruntime session (no export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmops_cli import wiring
from llmops_cli.adapters.embedders import onnx_embedder, onnx_export
from llmops_cli.adapters.embedders.onnx_embedder import OnnxEmbedder
from llmops_cli.errors import ConfigError, EmbedderError
from llmops_cli.settings import EmbedderSettings


class FakeSession:
    """Returns, per row, a one-hot vector at (number of real tokens) and records each batch's shape."""

    def __init__(self, dim: int):
        self.dim = dim
        self.shapes: list[tuple[int, int]] = []

    def run(self, outputs, feeds):
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        assert ids.dtype == np.int64 and mask.shape == ids.shape
        self.shapes.append(ids.shape)
        out = np.zeros((ids.shape[0], self.dim), dtype=np.float32)
        out[np.arange(ids.shape[0]), mask.sum(axis=1)] = 1.0
        return [out]


@pytest.fixture
def fake_cached_export(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_embedder, "ensure_exported", lambda layout, precision: Path("/nonexistent/model.onnx"))
    wiring._EMBEDDERS.clear()
    yield
    wiring._EMBEDDERS.clear()


def test_batches_sorted_by_length_and_order_restored(fake_cached_export):
    emb = OnnxEmbedder("all-MiniLM-L6-v2", batch_size=4)
    emb._session = fake = FakeSession(emb.dimension)
    texts = [" ".join(["word"] * n) for n in (30, 1, 12, 5, 30, 2, 7, 9, 1, 20)]
    vecs = emb.embed(texts)

    assert vecs.shape == (10, 384) and vecs.dtype == np.float32
    lengths = [len(e.ids) for e in emb.tokenizer.encode_batch(texts)]  # [CLS] + words + [SEP]
    assert [int(np.argmax(v)) for v in vecs] == lengths  # each row is its own text's, in the caller's order
    # batches of neighbours in length order, each padded only to its own longest
    ranked = sorted(lengths)
    assert fake.shapes == [(len(ranked[i : i + 4]), max(ranked[i : i + 4])) for i in range(0, 10, 4)]
    in_given_order = sum(len(lengths[i : i + 4]) * max(lengths[i : i + 4]) for i in range(0, 10, 4))
    assert sum(r * c for r, c in fake.shapes) < 0.7 * in_given_order


def test_truncates_at_the_models_max_length(fake_cached_export):
    emb = OnnxEmbedder("all-MiniLM-L6-v2")
    emb._session = fake = FakeSession(emb.dimension)
    emb.embed(["word " * 1000, "short"])
    assert fake.shapes == [(2, 256)]


def test_empty_input(fake_cached_export):
    emb = OnnxEmbedder("all-MiniLM-L6-v2")
    assert emb.embed([]).shape == (0, 384)


def test_identity_matches_torch_for_fp32_only(fake_cached_export):
    from llmops_cli.adapters.embedders.sentence_transformers import SentenceTransformerEmbedder

    torch_identity = SentenceTransformerEmbedder("all-MiniLM-L6-v2").identity  # lazy: loads no torch
    assert OnnxEmbedder("all-MiniLM-L6-v2").identity == torch_identity
    assert OnnxEmbedder("all-MiniLM-L6-v2", precision="int8").identity == torch_identity + ":int8"


def test_threads_default_to_the_cores_we_may_use(fake_cached_export):
    assert OnnxEmbedder("all-MiniLM-L6-v2").threads == onnx_embedder.available_threads() >= 1


@pytest.fixture
def nothing_cached_no_export(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(onnx_export, "can_export", lambda: False)
    wiring._EMBEDDERS.clear()
    yield
    wiring._EMBEDDERS.clear()


def test_auto_falls_back_to_torch_when_onnx_cannot_be_had(nothing_cached_no_export):
    from llmops_cli.adapters.embedders.sentence_transformers import SentenceTransformerEmbedder

    emb = wiring.build_embedder(EmbedderSettings())
    assert isinstance(emb, SentenceTransformerEmbedder)


def test_explicit_onnx_and_int8_do_not_fall_back(nothing_cached_no_export):
    with pytest.raises(EmbedderError, match="not cached"):
        wiring.build_embedder(EmbedderSettings(backend="onnx"))
    with pytest.raises(EmbedderError, match="not cached"):
        wiring.build_embedder(EmbedderSettings(backend="auto", precision="int8"))


def test_auto_and_onnx_pick_onnx_when_cached(fake_cached_export):
    assert isinstance(wiring.build_embedder(EmbedderSettings()), OnnxEmbedder)
    emb = wiring.build_embedder(EmbedderSettings(backend="onnx", precision="int8"))
    assert isinstance(emb, OnnxEmbedder) and emb.precision == "int8"


def test_torch_backend_refuses_int8():
    with pytest.raises(ConfigError, match="int8"):
        wiring.build_embedder(EmbedderSettings(backend="sentence-transformers", precision="int8"))


def test_a_corrupt_model_file_fails_at_first_use_with_one_message(tmp_path, monkeypatch):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_embedder, "ensure_exported", lambda layout, precision: bad)
    emb = OnnxEmbedder("all-MiniLM-L6-v2")  # the session loads in the background; its failure is kept for later
    with pytest.raises(EmbedderError, match="cannot load the ONNX model") as e:
        emb.embed(["x"])
    assert "export it again" in e.value.hint
