"""The onnx export's cache key and model layout (no torch, no export: the key only hashes files)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from llmops_cli.adapters.embedders import onnx_export
from llmops_cli.adapters.embedders.model_files import bundled_model_path
from llmops_cli.adapters.embedders.onnx_export import ModelLayout, model_key
from llmops_cli.errors import EmbedderError


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(d))
    return d


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A private copy of the bundled model, safe to change."""
    dst = tmp_path / "model"
    shutil.copytree(bundled_model_path(), dst)
    return dst


def test_layout_of_the_bundled_model():
    lay = ModelLayout.read(bundled_model_path())
    assert (lay.pooling, lay.dimension, lay.max_length) == ("mean", 384, 256)
    names = {f.name for f in lay.defining_files()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "modules.json"} <= names
    assert "README.md" not in names


def test_key_follows_contents_not_location(cache_dir, model_copy):
    original = model_key(ModelLayout.read(bundled_model_path()))
    assert model_key(ModelLayout.read(model_copy)) == original  # a copy holds the same model: same export

    cfg = model_copy / "config.json"
    cfg.write_text(cfg.read_text().replace('"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e-11'))
    changed = model_key(ModelLayout.read(model_copy))
    assert changed != original

    tok = model_copy / "tokenizer.json"
    tok.write_bytes(tok.read_bytes() + b" ")
    assert model_key(ModelLayout.read(model_copy)) not in {original, changed}


def test_key_changes_with_the_weights(cache_dir, model_copy):
    before = model_key(ModelLayout.read(model_copy))
    w = model_copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # same size, one bit of one weight
    w.write_bytes(bytes(data))
    assert model_key(ModelLayout.read(model_copy)) != before


def test_hashes_are_remembered_until_the_file_changes(cache_dir, model_copy):
    lay = ModelLayout.read(model_copy)
    key = model_key(lay)
    memo_file = cache_dir / "onnx" / "file-hashes.json"
    memo = json.loads(memo_file.read_text())
    weights = str((model_copy / "model.safetensors").resolve())
    assert weights in memo

    # an unchanged file is not read again: a planted hash is believed...
    memo[weights]["sha256"] = "0" * 64
    memo_file.write_text(json.dumps(memo))
    assert model_key(lay) != key
    # ...until the file is written (its ctime and mtime change), then it is hashed again
    os.utime(model_copy / "model.safetensors")
    assert model_key(lay) == key


def test_cache_dir_defaults_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMOPS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert onnx_export.cache_root() == tmp_path / "llmops"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_export.cache_root() == Path.home() / ".cache" / "llmops"


def test_model_with_a_dense_layer_is_refused(model_copy):
    modules = json.loads((model_copy / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EmbedderError, match="Dense"):
        ModelLayout.read(model_copy)


def test_unknown_precision_is_refused(cache_dir):
    with pytest.raises(EmbedderError, match="precision"):
        onnx_export.ensure_exported(ModelLayout.read(bundled_model_path()), "fp16")


def test_missing_export_libraries_give_one_clear_error(cache_dir, monkeypatch):
    monkeypatch.setattr(onnx_export, "can_export", lambda: False)
    with pytest.raises(EmbedderError) as e:
        onnx_export.ensure_exported(ModelLayout.read(bundled_model_path()))
    assert "not cached" in e.value.message and "pip install onnx" in e.value.hint


def test_unwritable_cache_gives_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(blocker))
    with pytest.raises(EmbedderError, match="cannot write the ONNX export") as e:
        onnx_export.ensure_exported(ModelLayout.read(bundled_model_path()))
    assert "LLMOPS_CACHE_DIR" in e.value.hint


@pytest.mark.parametrize(("mode", "expected"), [("mean", "mean"), ("cls", "cls"), (["max"], "max")])
def test_pooling_saved_by_sentence_transformers_6_is_read(model_copy, mode, expected):
    # `llmops finetune embedder` saves through sentence-transformers 6, whose pooling config is one `pooling_mode`
    # key (and `embedding_dimension`): the tuned model was refused ("uses pooling []") and fell back to torch
    (model_copy / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 384, "pooling_mode": mode, "include_prompt": True})
    )
    lay = ModelLayout.read(model_copy)
    assert (lay.pooling, lay.dimension) == (expected, 384)


@pytest.mark.parametrize("mode", ["mean_sqrt_len_tokens", "weightedmean", "lasttoken", ["mean", "max"]])
def test_pooling_the_export_cannot_reproduce_is_refused(model_copy, mode):
    (model_copy / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 384, "pooling_mode": mode})
    )
    with pytest.raises(EmbedderError, match="pooling"):
        ModelLayout.read(model_copy)
