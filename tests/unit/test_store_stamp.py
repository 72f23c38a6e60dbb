"""The embedded store's content stamp: what a long-running reader (``llmops serve``) compares to know that another
process wrote the store. Opening the store must not move it (Chroma records each client's start in the same file, so
the file's mtime does move: a server comparing mtimes reopened its workspace on every request)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("chromadb")
REPO = Path(__file__).resolve().parents[2]


def _client(path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def test_the_stamp_moves_with_writes_and_not_with_opens(tmp_path):
    from llmops_cli.adapters.vectorstores.chroma import content_stamp

    assert content_stamp(tmp_path) is None  # no store yet
    col = _client(tmp_path).get_or_create_collection("docs")
    col.add(ids=["a"], embeddings=[[0.1, 0.2, 0.3]], documents=["alpha"])
    before = content_stamp(tmp_path)
    mtime = (tmp_path / "chroma.sqlite3").stat().st_mtime_ns

    # another process opens the store and reads (in this process Chroma would hand back the client it has)
    code = "import sys; from tests.unit.test_store_stamp import _client; _client(sys.argv[1]).get_collection('docs')"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO, timeout=120)
    assert (tmp_path / "chroma.sqlite3").stat().st_mtime_ns != mtime  # the file was touched...
    assert content_stamp(tmp_path) == before  # ...and nothing in it changed

    col.add(ids=["b"], embeddings=[[0.3, 0.2, 0.1]], documents=["beta"])
    after_add = content_stamp(tmp_path)
    assert after_add != before
    col.modify(metadata={"generation": 2})  # a collection's own metadata (the ingest generation lives there)
    after_modify = content_stamp(tmp_path)
    assert after_modify != after_add
    col.delete(ids=["a"])
    assert content_stamp(tmp_path) != after_modify


def test_a_file_that_is_not_chroma_is_stamped_by_its_size_and_time(tmp_path):
    from llmops_cli.adapters.vectorstores.chroma import content_stamp

    (tmp_path / "chroma.sqlite3").write_bytes(b"v1")
    first = content_stamp(tmp_path)
    (tmp_path / "chroma.sqlite3").write_bytes(b"v2 longer")
    assert content_stamp(tmp_path) != first
