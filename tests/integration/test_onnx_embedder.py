"""The onnx backend against the real bundled model: one real export per session, compared with torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmops_cli.adapters.embedders import onnx_export
from llmops_cli.adapters.embedders.model_files import bundled_model_path
from llmops_cli.adapters.embedders.onnx_embedder import OnnxEmbedder
from llmops_cli.errors import EmbedderError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_DOCS = REPO.parent / "shared" / "corpora" / "airflow-docs"


def _paragraphs(n: int = 50) -> list[str]:
    """Real chunks: paragraphs of the Airflow docs when present, else of this repo's own docs."""
    if AIRFLOW_DOCS.is_dir():
        files = sorted(AIRFLOW_DOCS.rglob("*.rst"))
    else:
        files = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]
    paras = []
    for f in files:
        if f.is_file():
            paras += [
                p.strip() for p in f.read_text(encoding="utf-8", errors="replace").split("\n\n") if len(p.strip()) > 120
            ]
    if len(paras) < n:
        pytest.skip(f"fewer than {n} paragraphs of real docs available")
    step = len(paras) // n  # spread over the whole corpus: short and long, prose and code
    return paras[::step][:n]


@pytest.fixture(scope="session")
def exported_cache(tmp_path_factory) -> Path:
    """One export (fp32 + int8) for the whole session, in a private cache folder."""
    cache = tmp_path_factory.mktemp("llmops-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_CACHE_DIR", str(cache))
        lay = onnx_export.ModelLayout.read(bundled_model_path())
        onnx_export.ensure_exported(lay, "int8")  # exports fp32 first, then quantises it
    return cache


@pytest.fixture
def onnx_cache(exported_cache, monkeypatch) -> Path:
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(exported_cache))
    return exported_cache


@pytest.fixture(scope="session")
def torch_vectors():
    from llmops_cli.adapters.embedders.sentence_transformers import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    texts = _paragraphs()
    return texts, emb.embed(texts), emb.identity


def test_fp32_vectors_match_torch(onnx_cache, torch_vectors):
    texts, ref, identity = torch_vectors
    emb = OnnxEmbedder("all-MiniLM-L6-v2", precision="fp32")
    vecs = emb.embed(texts)
    assert vecs.dtype == np.float32 and vecs.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cos = (vecs * ref).sum(axis=1)
    assert cos.min() >= 0.9999, f"min cosine {cos.min():.6f}"
    assert emb.identity == identity  # same vectors, so collections are interchangeable between backends


def test_int8_vectors_stay_close_to_torch(onnx_cache, torch_vectors, record_property):
    texts, ref, _ = torch_vectors
    vecs = OnnxEmbedder("all-MiniLM-L6-v2", precision="int8").embed(texts)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cos = (vecs * ref).sum(axis=1)
    record_property("int8_cosine_min", float(cos.min()))
    record_property("int8_cosine_mean", float(cos.mean()))
    print(f"int8 vs torch cosine on {len(texts)} real paragraphs: min {cos.min():.4f} mean {cos.mean():.4f}")
    assert cos.min() >= 0.98


def test_second_build_reuses_the_export(onnx_cache, monkeypatch):
    def no_export(*a, **k):
        raise AssertionError("exported again although the model is cached")

    monkeypatch.setattr(onnx_export, "export_model", no_export)
    monkeypatch.setattr(onnx_export, "quantize_int8", no_export)
    before = {p: p.stat().st_mtime_ns for p in onnx_cache.rglob("*.onnx")}
    for precision in ("fp32", "int8"):
        assert OnnxEmbedder("all-MiniLM-L6-v2", precision=precision).embed(["a cached model"]).shape == (1, 384)
    assert {p: p.stat().st_mtime_ns for p in onnx_cache.rglob("*.onnx")} == before


def test_query_path_imports_neither_torch_nor_sentence_transformers(onnx_cache, tmp_path):
    code = """
import json, sys
from llmops_cli import wiring
from llmops_cli.settings import Settings
emb = wiring.build_embedder(Settings().embedder)
v = emb.embed_query("How do I retry a failed task?")
print(json.dumps({"type": type(emb).__name__, "dim": len(v), "norm": float((v * v).sum()) ** 0.5,
                  "heavy": sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)}))
"""
    env = {**os.environ, "LLMOPS_CACHE_DIR": str(onnx_cache)}
    env.pop("LLMOPS_EMBEDDER_BACKEND", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["type"] == "OnnxEmbedder" and got["dim"] == 384 and abs(got["norm"] - 1) < 1e-5
    assert got["heavy"] == []


_CLI_MODULES = """
import json, sys
from llmops_cli.cli.app import main
try:
    main()
except SystemExit as e:
    code = e.code
heavy = ("torch", "sentence_transformers", "transformers", "chromadb", "bm25s", "scipy", "litellm", "pandas")
print(json.dumps({"exit": code, "heavy": sorted(m for m in heavy if m in sys.modules)}), file=sys.stderr)
"""


def test_query_ask_and_unchanged_ingest_import_only_what_they_need(onnx_cache, tmp_path):
    """The whole command, on a real store: no torch, no chromadb package, no bm25s/scipy (their import alone is
    most of a second); see docs/embedding.md."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update(
        {
            "LLMOPS_CACHE_DIR": str(onnx_cache),
            "LLMOPS_STORE_PATH": str(tmp_path / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        }
    )
    ing = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "ingest", str(REPO / "docs"), "--collection", "own-docs", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ing.returncode == 0, ing.stderr
    for args in (
        ["query", "exit code of a failed DAG run"],
        ["ask", "How do I run the tests?", "--retrieval-only"],
        ["ingest", str(REPO / "docs")],
    ):  # unchanged: reads the manifest, writes nothing
        out = subprocess.run(
            [sys.executable, "-c", _CLI_MODULES, *args, "--collection", "own-docs", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = json.loads(out.stderr.strip().splitlines()[-1])
        assert report == {"exit": 0, "heavy": []}, (args, out.stderr)
        got = json.loads(out.stdout)
        assert got["hits"] if args[0] != "ingest" else (got["chunks_added"] == 0 and got["unchanged"] > 0), args


def test_failed_export_leaves_no_model_and_no_temp_files(tmp_path, monkeypatch):
    """A crash mid-write must not leave a file a later run would load; debris of a killed run is cleared."""
    import torch

    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path))
    lay = onnx_export.ModelLayout.read(bundled_model_path())
    d = onnx_export.export_dir(lay)
    d.mkdir(parents=True)
    (d / ".model.onnx.killed.tmp").write_bytes(b"half a model from a killed export")

    def crash_mid_write(model, args, f, **kw):
        Path(f).write_bytes(b"\x08\x07partial protobuf")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.onnx, "export", crash_mid_write)
    with pytest.raises(EmbedderError, match="disk full"):
        onnx_export.ensure_exported(lay, "fp32")
    assert sorted(p.name for p in d.iterdir()) == [".lock"]
    assert onnx_export.cached_model(lay) is None
