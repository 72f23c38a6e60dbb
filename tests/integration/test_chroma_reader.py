"""The read-only Chroma path (adapters/vectorstores/chroma_reader.py) against the full chromadb client, on a real store.

The reader talks to Chroma's Rust bindings directly, under chromadb's public API: if a chromadb upgrade changes
them, the reader falls back to the full client (users keep working) and these tests fail (we notice).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llmops_cli.adapters.vectorstores.chroma import ChromaStore
from llmops_cli.errors import NotFoundError, StoreError
from tests.integration.conftest import REPO

N, DIM = 300, 16


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    full = ChromaStore.embedded(tmp_path / "chroma")
    full.ensure_collection("docs", metadata={"llmops_embedder": "test:16", "llmops_generation": 3})
    full.upsert(
        "docs",
        [f"c{i:03d}" for i in range(N)],
        vecs,
        [f"text number {i}" for i in range(N)],
        [{"source": f"s{i % 7}.md", "chunk_index": i, "heading": "H" if i % 2 else ""} for i in range(N)],
    )
    full.write_manifest("docs", [])
    full.ensure_collection("other")
    assert not full.on_read_view  # a new store: nothing to read, the full client from the start
    reader = ChromaStore.embedded(tmp_path / "chroma", read_only=True)
    return full, reader, vecs


def test_the_reader_is_used_and_reads_what_the_full_client_reads(stores):
    full, reader, vecs = stores
    assert reader.on_read_view, (
        "the fast read path fell back to the full client: check chroma_reader against this chromadb version"
    )
    assert reader.collection_metadata("docs") == full.collection_metadata("docs")
    assert reader.collection_metadata("missing") is None
    assert reader.count("docs") == full.count("docs") == N
    assert reader.list_collections() == full.list_collections() == ["docs", "other"]
    for q in vecs[:10] * 0.9 + vecs[10:20] * 0.1:
        for where in (None, {"source": "s3.md"}, {"source": "s3.md", "heading": "H"}):
            a, b = full.query("docs", q, 12, where), reader.query("docs", q, 12, where)
            assert [h.id for h in a] == [h.id for h in b]
            assert np.allclose([h.score for h in a], [h.score for h in b])
            assert [(h.text, h.metadata) for h in a] == [(h.text, h.metadata) for h in b]
    ids = ["c005", "c100", "c002", "nope"]
    assert [(h.id, h.text, h.metadata) for h in reader.get("docs", ids=ids)] == [
        (h.id, h.text, h.metadata) for h in full.get("docs", ids=ids)
    ]
    assert [h.id for h in reader.get("docs", ids=ids, where={"source": "s5.md"})] == [
        h.id for h in full.get("docs", ids=ids, where={"source": "s5.md"})
    ]
    assert [h.id for h in reader.get("docs", limit=50, offset=20)] == [
        h.id for h in full.get("docs", limit=50, offset=20)
    ]
    assert len(reader.get("docs")) == N
    assert reader.query("other", vecs[0], 5) == []


def test_the_reader_refuses_writes_and_reports_missing_collections(stores):
    _full, reader, vecs = stores
    with pytest.raises(StoreError, match="read-only"):
        reader.upsert("docs", ["x"], vecs[:1], ["x"], [{}])
    with pytest.raises(NotFoundError, match="does not exist"):
        reader.count("missing")


def test_a_writable_store_reads_fast_and_opens_the_full_client_at_its_first_write(stores, tmp_path):
    _full, _reader, vecs = stores
    store = ChromaStore.embedded(tmp_path / "chroma")
    assert store.on_read_view and store.count("docs") == N and store.read_manifest("docs") == {}
    assert (
        store.ensure_collection("docs", metadata={"llmops_generation": 0})["llmops_generation"] == 3
    )  # exists: no write
    assert store.on_read_view
    assert store.read_manifest("other") == {}  # reading a manifest creates nothing
    assert "other__sources" not in [c.name for c in _full._client.list_collections()]
    store.upsert("docs", ["new"], vecs[:1], ["a new chunk"], [{"source": "n.md"}])
    assert not store.on_read_view  # upgraded by the write
    assert store.count("docs") == N + 1 and store.query("docs", vecs[0], 1)[0].id in ("new", "c000")
    assert ChromaStore.embedded(tmp_path / "chroma", read_only=True).count("docs") == N + 1


def test_no_store_or_broken_bindings_fall_back_to_the_full_client(tmp_path, monkeypatch):
    assert not ChromaStore.embedded(tmp_path / "empty", read_only=True).on_read_view  # nothing on disk yet
    ChromaStore.embedded(tmp_path / "c").ensure_collection("docs")
    import chromadb_rust_bindings

    def broken(**kwargs):
        raise TypeError("Bindings() got an unexpected keyword argument")

    monkeypatch.setattr(chromadb_rust_bindings, "Bindings", broken)
    store = ChromaStore.embedded(tmp_path / "c", read_only=True)
    assert not store.on_read_view and store.collection_metadata("docs") is not None


def test_reading_imports_no_chromadb(stores, tmp_path):
    code = (
        "import sys; from llmops_cli.adapters.vectorstores.chroma import ChromaStore; import numpy as np; "
        f"s = ChromaStore.embedded({str(tmp_path / 'chroma')!r}); "
        "assert s.on_read_view; hits = s.query('docs', np.ones(16, dtype=np.float32) / 4, 3); "
        "print(len(hits), 'chromadb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "False"]
