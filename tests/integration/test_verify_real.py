"""collections verify / --repair on a real embedded Chroma 1.5.9 store with the real bundled embedding model: the
store is damaged for real (HNSW folder deleted or overwritten, a chunk deleted behind the ledger's back, an orphan
chunk, a changed ledger hash, corrupt and stale BM25 files); verify exits 11 naming it, --repair fixes it embedding
only what was lost (the embedder's calls counted), and a fresh process then finds every chunk by vector search."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmops_cli.entry.verify import verify_collection
from llmops_cli.wiring import Workspace, lexical_folder
from tests.integration.conftest import llmops_env, run_llmops

pytestmark = pytest.mark.integration

C = "verify-docs"
DAMAGED = 11


def _page(i: int) -> str:
    sections = "\n\n".join(
        f"## Section {j}\n\n"
        + " ".join(
            f"Page {i} section {j} sentence {k} talks about topic {(i * 7 + j * 3 + k) % 23}." for k in range(30)
        )
        for j in range(5)
    )
    return f"# Page {i}\n\n{sections}\n"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A collection whose HNSW index is persisted to disk (as in any collection over Chroma's 1000-add sync threshold:
    here lowered to 10 so that a few small files do it) and whose WAL was purged: the vectors live in the HNSW folder
    only, as in the 1274-chunk collection of the issue."""
    root = tmp_path_factory.mktemp("verify")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "p0.md").write_text(_page(0))
    env = llmops_env(root / "w")
    assert run_llmops("ingest", str(corpus), "--collection", C, env=env).returncode == 0
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, chromadb; from chromadb.config import Settings; "
                "c = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False)); "
                "c.get_collection(sys.argv[2]).modify(configuration={'hnsw': {'sync_threshold': 10, 'batch_size': 10}})"
            ),
            str(root / "w" / "chroma"),
            C,
        ],
        check=True,
    )
    for i in (1, 2, 3):
        (corpus / f"p{i}.md").write_text(_page(i))
    r = run_llmops("ingest", str(corpus), "--collection", C, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return root, corpus


@pytest.fixture
def project(pristine, tmp_path):
    """A copy of the pristine store in a folder of its own (this process's Chroma clients are cached per path), its
    lexical index moved to the folder keyed by the new store path."""
    root, corpus = pristine
    work = tmp_path / "w"
    shutil.copytree(root / "w", work)
    (old,) = [p for p in (work / "state" / "lexical").iterdir() if p.is_dir()]
    settings = _settings(work)
    new = lexical_folder(settings, SimpleNamespace(where=str(work / "chroma")), C).parent
    new.parent.mkdir(parents=True, exist_ok=True)
    old.rename(new)
    return work, corpus, llmops_env(work)


def _settings(work: Path):
    from llmops_cli.settings import load_settings

    return load_settings(
        environ={}, cwd=work, flags={"data_dir": str(work / "state"), "store.path": str(work / "chroma")}
    ).settings


def _vector_segment(store: Path) -> Path:
    db = sqlite3.connect(store / "chroma.sqlite3")
    (seg,) = db.execute(
        "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id WHERE c.name = ? AND s.scope = 'VECTOR'",
        (C,),
    ).fetchone()
    db.close()
    return store / seg


def _verify(env, *args: str) -> tuple[int, dict]:
    r = run_llmops("collections", "verify", C, *args, "--json", env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def _repair_counting(work: Path, corpus: Path | None, monkeypatch) -> tuple[dict, int]:
    """verify_collection(repair=True) in this process, the real embedder wrapped to count what it embeds."""
    calls: list[int] = []

    class Counting:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, attr):
            return getattr(self._inner, attr)

        def embed(self, texts):
            calls.append(len(texts))
            return self._inner.embed(texts)

    class CountingWorkspace(Workspace):
        def _build_embedder(self, es):
            return Counting(super()._build_embedder(es))

    with CountingWorkspace(_settings(work)) as ws:
        res = verify_collection(ws, C, paths=[str(corpus)] if corpus else None, repair=True)
    return res, sum(calls)


def _all_found_by_vector_search(env, total: int) -> None:
    r = run_llmops(
        "query", "topic 5 section", "--collection", C, "--mode", "vector", "-k", str(total), "--json", env=env
    )
    assert r.returncode == 0, r.stderr
    assert len({h["id"] for h in json.loads(r.stdout)["hits"]}) == total


def test_clean_collection_verifies_0(project):
    work, corpus, env = project
    rc, rep = _verify(env, str(corpus))
    assert rc == 0 and rep["clean"], rep["problems"]
    assert rep["chunks"] == rep["ledger_chunks"] >= 30 and rep["lexical"]["state"] == "ok"
    r = run_llmops("collections", "verify", C, env=env)
    assert r.returncode == 0 and "clean" in r.stdout


def test_deleted_hnsw_folder_is_found_and_only_lost_vectors_are_reembedded(project, monkeypatch):
    work, corpus, env = project
    shutil.rmtree(_vector_segment(work / "chroma"))
    r = run_llmops("collections", "verify", C, env=env)
    assert r.returncode == DAMAGED, r.stdout + r.stderr
    assert "unreachable by vector search" in r.stdout and "--repair" in r.stderr
    rc, rep = _verify(env)
    lost, total = len(rep["unreachable_vectors"]), rep["chunks"]
    assert 0 < lost < total  # the WAL's tail survives: the "251 of 1274"
    res, embedded = _repair_counting(work, None, monkeypatch)
    assert res["repair"].vectors_reembedded == lost and embedded == lost  # nothing else embedded
    assert not res["repair"].lexical_rebuilt  # same ids and texts: the BM25 index had no reason to move
    assert _verify(env)[0] == 0
    _all_found_by_vector_search(env, total)


def test_overwritten_hnsw_file_crashing_chroma_is_found_and_rebuilt(project):
    work, corpus, env = project
    data = _vector_segment(work / "chroma") / "data_level0.bin"
    raw = bytearray(data.read_bytes())
    third = len(raw) // 3
    raw[third : 2 * third] = bytes((i * 131 + 7) % 256 for i in range(third))
    data.write_bytes(bytes(raw))
    rc, rep = _verify(env)
    assert rc == DAMAGED and rep["vector_index_error"], rep["problems"]
    assert any("vector index damaged" in p for p in rep["problems"])
    r = run_llmops("collections", "verify", C, "--repair", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "damaged vector index dropped" in r.stdout
    _all_found_by_vector_search(env, rep["chunks"])


def test_missing_chunk_orphan_and_changed_ledger_hash_repaired_embedding_one_chunk(project, monkeypatch):
    work, corpus, env = project
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore

    store = ChromaStore.embedded(work / "chroma")
    ledger = store.read_manifest(C)
    (p1,) = [s for s in ledger if s.endswith("p1.md")]
    (p2,) = [s for s in ledger if s.endswith("p2.md")]
    gone = ledger[p1].chunk_ids[3]
    store.delete(C, [gone])
    some = store.get(C, ids=[ledger[p2].chunk_ids[0]])[0]
    import numpy as np

    vec = np.zeros((1, 384), dtype=np.float32)
    vec[0, 0] = 1.0
    store.upsert(C, ["orphan-chunk-1"], vec, ["not from any source"], [dict(some.metadata)])
    rec = ledger[p2]
    rec.content_hash = "f" * 64 + rec.content_hash[64:]
    store.write_manifest(C, [rec])
    del store

    rc, rep = _verify(env, str(corpus))
    assert rc == DAMAGED
    assert (
        rep["missing_chunks"] == {p1: [gone]}
        and rep["orphan_chunks"] == ["orphan-chunk-1"]
        and rep["changed_files"] == [p2]
    )
    r = run_llmops("collections", "verify", C, env=env)  # without the paths: what it can see, and what it needs
    assert r.returncode == DAMAGED and "missing from the store" in r.stdout and "orphan" in r.stdout

    res, embedded = _repair_counting(work, corpus, monkeypatch)
    fixed = res["repair"]
    assert fixed.orphans_deleted == 1 and sorted(fixed.sources_reingested) == sorted([p1, p2])
    assert embedded == 1  # only the deleted chunk; p2's chunks were all intact and reused
    rc, after = _verify(env, str(corpus))
    assert rc == 0, after["problems"]
    _all_found_by_vector_search(env, after["chunks"])


@pytest.mark.parametrize("damage", ["corrupt", "stale"])
def test_corrupt_or_stale_bm25_index_is_found_and_rebuilt(project, damage):
    work, corpus, env = project
    (folder,) = [p for p in (work / "state" / "lexical").glob(f"*/{C}") if p.is_dir()]
    if damage == "corrupt":
        (folder / "ids.json").write_text('["not", "the", "ids"')
    else:
        meta = json.loads((folder / "meta.json").read_text())
        meta["generation"] = "0/stale"
        (folder / "meta.json").write_text(json.dumps(meta))
    rc, rep = _verify(env)
    assert rc == DAMAGED and rep["lexical"]["state"] == {"corrupt": "damaged", "stale": "stale"}[damage]
    r = run_llmops("collections", "verify", C, "--repair", env=env)
    assert r.returncode == 0 and "lexical index rebuilt" in r.stdout and "(0 text(s) embedded)" in r.stdout
    q = run_llmops("query", "topic 5", "--collection", C, "--mode", "lexical", env=env)
    assert q.returncode == 0 and "p" in q.stdout


@pytest.mark.parametrize("page", [5, 9, 14])
def test_damaged_database_pages_are_reported_not_a_crash(project, page):
    """Overwritten pages of chroma.sqlite3 (where they land decides how Chroma fails: a Rust panic when opening the
    store, an error reading segments or the collection): verify says the store's file is damaged and exits 11."""
    work, corpus, env = project
    db = work / "chroma" / "chroma.sqlite3"
    raw = bytearray(db.read_bytes())
    raw[4096 * page : 4096 * (page + 2)] = bytes((i * 37 + 11) % 256 for i in range(4096 * 2))
    db.write_bytes(bytes(raw))
    r = run_llmops("collections", "verify", C, env=env)
    assert r.returncode == DAMAGED, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "store file damaged: chroma.sqlite3: database disk image is malformed" in " ".join(r.stdout.split())


def test_a_repair_with_nothing_to_embed_loads_no_model(project, monkeypatch):
    work, corpus, env = project
    (folder,) = [p for p in (work / "state" / "lexical").glob(f"*/{C}") if p.is_dir()]
    (folder / "vocab.json").write_text("{")

    class NoModel(Workspace):
        def _build_embedder(self, es):
            raise AssertionError("the repair built an embedder it had no use for")

    with NoModel(_settings(work)) as ws:
        res = verify_collection(ws, C, repair=True)
    assert res["before"].lexical.state == "damaged" and res["repair"].lexical_rebuilt and res["report"].clean


def test_verify_waits_for_a_writer_instead_of_reporting_its_half_done_work(project):
    work, corpus, env = project
    from llmops_cli.core import store_lock

    with store_lock.write_lock(work / "chroma", 0):
        r = run_llmops("collections", "verify", C, env={**env, "LLMOPS_WAIT_LOCK": "0"})
    assert r.returncode == 10, r.stdout + r.stderr
    assert "being written" in r.stderr and "Traceback" not in r.stderr
    assert run_llmops("collections", "verify", C, env=env).returncode == 0
