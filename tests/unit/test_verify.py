"""collections verify / --repair on fakes: each kind of damage is named, and the repair does exactly what it needs
(counted embedder calls). The real store and model: tests/integration/test_verify_real.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_cli.core import verify as v
from llmops_cli.core.collection_meta import GENERATION_KEY
from llmops_cli.core.ingest import IngestOptions, ingest, plan_changes, signature
from llmops_cli.core.loaders import discover
from llmops_cli.core.retrieval import LexicalIndex
from tests.support.fakes import FakeEmbedder, MemoryStore

C = "docs"


class DamageableStore(MemoryStore):
    """MemoryStore with a vector index that can lose chunks (as a deleted HNSW folder does): their rows stay,
    their vectors cannot be read and vector search does not reach them; an upsert puts them back."""

    def __init__(self):
        super().__init__()
        self.lost: set[str] = set()

    def read_embeddings(self, name, ids):
        return {cid: None if cid in self.lost else self.cols[name][cid][0] for cid in ids if cid in self.cols[name]}

    def vector_search_ids(self, name, dimension, n):
        return set(self.cols[name]) - self.lost

    def upsert(self, name, ids, embeddings, documents, metadatas):
        super().upsert(name, ids, embeddings, documents, metadatas)
        self.lost -= set(ids)


def _corpus(root: Path) -> Path:
    root.mkdir()
    for i in range(3):
        body = "\n\n".join(
            f"## Part {j}\n\n" + " ".join(f"page {i} part {j} word{k} topic{(i + j + k) % 7}." for k in range(40))
            for j in range(3)
        )
        (root / f"p{i}.md").write_text(f"# Page {i}\n\n{body}\n")
    return root


@pytest.fixture
def world(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    store, emb = DamageableStore(), FakeEmbedder(max_tokens=60)
    opts = IngestOptions(collection=C, chunk_size=50, chunk_overlap=5)
    ingest([str(corpus)], embedder=emb, store=store, opts=opts)
    lex = LexicalIndex(tmp_path / "lexical", store, C)
    lex.build()
    emb.calls.clear()
    return corpus, store, emb, opts, lex


def _sid(store, name: str) -> str:
    """The ledger's source id of file ``name`` (how ids are spelled is ingest's rule, not this test's)."""
    (sid,) = [k for k in store.read_manifest(C) if k.endswith("/" + name) or k == name]
    return sid


def _files(corpus, store, emb, opts) -> dict[str, bool]:
    found, _ = discover([str(corpus)], None, [])
    plan = plan_changes(found, store.read_manifest(C), signature(opts, emb), opts)
    differ = {sf.source_id for sf, _, _ in plan.to_process}
    return {sf.source_id: sf.source_id not in differ for sf in found}


def _repair(world, rep, *, with_files: bool = True):
    corpus, store, emb, opts, lex = world

    def reingest(sources):
        o = IngestOptions(collection=C, chunk_size=opts.chunk_size, chunk_overlap=opts.chunk_overlap, only=set(sources))
        return ingest([str(corpus)], embedder=emb, store=store, opts=o).chunks_added

    files = _files(corpus, store, emb, opts) if with_files else None
    return v.repair(
        store,
        C,
        rep,
        embed=emb.embed,
        lexical=lex,
        reingest=reingest if with_files else None,
        available=set(files) if files is not None else None,
    )


def _verify(world, *, with_files: bool = True):
    corpus, store, emb, opts, lex = world
    return v.verify(store, C, lexical=lex, files=_files(corpus, store, emb, opts) if with_files else None)


def test_a_clean_collection_verifies_clean(world):
    rep = _verify(world)
    assert rep.clean, rep.problems()
    assert rep.chunks == rep.ledger_chunks > 10 and rep.sources == 3 and rep.lexical.state == "ok"


def test_orphan_chunk_is_named_and_deleted_without_embedding(world):
    _, store, emb, _, _ = world
    store.upsert(C, ["orphan1"], emb.embed(["stray"]), ["stray text"], [{"source": "nowhere"}])
    emb.calls.clear()
    rep = _verify(world)
    assert not rep.clean and rep.orphan_chunks == ["orphan1"]
    assert any("orphan" in p for p in rep.problems())
    fixed = _repair(world, rep)
    assert fixed.orphans_deleted == 1 and emb.embedded_count == 0
    assert _verify(world).clean


def test_missing_chunk_needs_its_file_and_reembeds_only_that_chunk(world):
    _, store, emb, _, _ = world
    sid = _sid(store, "p1.md")
    gone = store.read_manifest(C)[sid].chunk_ids[2]
    store.delete(C, [gone])
    rep = _verify(world)
    assert rep.missing_chunks == {sid: [gone]}
    assert rep.lexical.state == "mismatch"  # the BM25 index still lists it
    # without the paths the chunk's text is nowhere: say so, fix the rest
    fixed = _repair(world, _verify(world, with_files=False), with_files=False)
    assert fixed.sources_need_files == [sid] and emb.embedded_count == 0
    assert _verify(world).missing_chunks
    fixed = _repair(world, _verify(world))
    assert fixed.sources_reingested == [sid]
    assert emb.embedded_count == 1 and fixed.embedded_texts == 1
    assert _verify(world).clean


def test_text_changed_behind_the_ledger_is_altered_and_restored_from_the_file(world):
    _, store, emb, _, _ = world
    sid = _sid(store, "p2.md")
    cid = store.read_manifest(C)[sid].chunk_ids[1]
    vec, _text, md = store.cols[C][cid]
    store.cols[C][cid] = (vec, "something else entirely", md)
    rep = _verify(world)
    assert rep.altered_chunks == {sid: [cid]} and not rep.missing_chunks
    _repair(world, rep)
    assert emb.embedded_count == 1
    assert _verify(world).clean
    assert store.cols[C][cid][1] != "something else entirely"


def test_lost_vectors_are_reembedded_from_stored_text_only(world):
    _, store, emb, _, _ = world
    ids = sorted(store.cols[C])
    lost = set(ids[::3])
    before = {cid: store.cols[C][cid][0].copy() for cid in lost}
    store.lost = set(lost)
    rep = _verify(world)
    assert set(rep.unreachable_vectors) == lost and set(rep.unreadable_vectors) == lost
    assert f"{len(lost)} of {len(ids)} chunk(s) unreachable by vector search" in rep.problems()
    fixed = _repair(world, rep)
    assert fixed.vectors_reembedded == len(lost) and emb.embedded_count == len(lost) and not fixed.sources_reingested
    assert all((store.cols[C][cid][0] == before[cid]).all() for cid in lost)  # the same text gives the same vector
    assert _verify(world).clean


def test_unreachable_but_readable_vector_is_readded_without_embedding(world):
    _, store, emb, _, _ = world
    cid = sorted(store.cols[C])[0]
    store.vector_search_ids = lambda name, dim, n: set(store.cols[name]) - {cid}
    rep = _verify(world)
    assert rep.unreachable_vectors == [cid] and not rep.unreadable_vectors
    fixed = _repair(world, rep)
    assert fixed.vectors_readded == 1 and emb.embedded_count == 0


@pytest.mark.parametrize("damage", ["stale", "corrupt", "missing"])
def test_lexical_index_stale_corrupt_or_missing_is_rebuilt_without_embedding(world, damage):
    _, store, emb, _, lex = world
    if damage == "stale":
        store.set_collection_metadata(C, {GENERATION_KEY: 99})
    elif damage == "corrupt":
        (lex.folder / "indptr.npy").write_bytes(b"\x93NUMPY garbage")
    else:
        import shutil

        shutil.rmtree(lex.folder)
    rep = _verify(world)
    assert rep.lexical.state == {"stale": "stale", "corrupt": "damaged", "missing": "missing"}[damage]
    assert not rep.clean and any(p.startswith("lexical index") for p in rep.problems())
    fixed = _repair(world, rep)
    assert fixed.lexical_rebuilt and emb.embedded_count == 0 and not fixed.sources_reingested
    assert _verify(world).clean


def test_lexical_index_over_other_ids_than_the_store_is_a_mismatch(world):
    _, store, emb, _, _ = world
    store.upsert(C, ["stray1"], emb.embed(["stray"]), ["stray text"], [{"source": "nowhere"}])
    gone = sorted(store.cols[C])[0]
    store.cols[C].pop(gone)  # behind the generation's back: nothing tells the index
    rep = _verify(world)
    assert rep.lexical.state == "mismatch" and rep.lexical.missing_ids == 1 and rep.lexical.extra_ids == 1
    store.cols[C].pop("stray1")
    fixed = _repair(world, _verify(world, with_files=False), with_files=False)
    assert fixed.lexical_rebuilt and fixed.sources_need_files
    assert _verify(world, with_files=False).lexical.state == "ok"


def test_a_changed_ledger_hash_is_found_and_repaired_without_embedding(world):
    _, store, emb, _, _ = world
    sid = _sid(store, "p0.md")
    rec = store.read_manifest(C)[sid]
    rec.content_hash = "0" * 64 + rec.content_hash[64:]
    store.write_manifest(C, [rec])
    assert _verify(world, with_files=False).clean  # only the files can tell
    rep = _verify(world)
    assert rep.changed_files == [sid] and rep.sources_to_reingest() == [sid]
    fixed = _repair(world, rep)
    assert fixed.sources_reingested == [sid] and emb.embedded_count == 0  # every chunk reused
    assert _verify(world).clean


def test_interrupted_write_is_reported_and_redone(world):
    _, store, emb, _, _ = world
    sid = _sid(store, "p0.md")
    rec = store.read_manifest(C)[sid]
    rec.content_hash = v.INCOMPLETE
    store.write_manifest(C, [rec])
    rep = _verify(world)
    assert rep.incomplete_sources == [sid]
    _repair(world, rep)
    assert _verify(world).clean


def test_an_unreadable_store_is_a_finding_not_a_crash(world):
    _, store, _, _, lex = world

    def broken(*a, **k):
        raise RuntimeError("database disk image is malformed")

    store.get = broken
    rep = v.verify(store, C, lexical=lex)
    assert not rep.clean and rep.errors == ["reading the chunks: RuntimeError: database disk image is malformed"]


def test_the_ingest_chunk_id_formula_is_the_one_verify_checks():
    from llmops_cli.core.ingest import chunk_id

    assert v.chunk_id("a/b.md", "Head\ntext", 2) == chunk_id("a/b.md", "Head\ntext", 2)


def test_a_report_carries_its_exit_code():
    from llmops_cli.errors import ExitCode, exit_code_of

    assert exit_code_of(v.VerifyReport("docs")) == ExitCode.OK
    assert exit_code_of(v.VerifyReport("docs", orphan_chunks=["x"])) == ExitCode.DAMAGED == 11
    stale = v.VerifyReport("docs", lexical=v.LexicalState(state="stale"))
    assert exit_code_of(stale) == ExitCode.DAMAGED and "exit_code" not in stale.to_dict()
