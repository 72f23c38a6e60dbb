"""Ingest core on fakes: incremental, idempotent, exact replacement, cleanup, and crash safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_cli.core.ingest import IngestOptions, ingest
from llmops_cli.core.loaders import TableOptions
from llmops_cli.core.ports import SourceRecord
from tests.support.fakes import FakeEmbedder, Killed, MemoryStore

PARA = "Airflow schedules {w} tasks. The scheduler parses DAG files and queues {w} work for the executor. "


def write_corpus(root: Path, n: int = 6, paras: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = "\n\n".join(PARA.format(w=f"topic{i}word{j}") * 3 for j in range(paras))
        (root / f"page{i}.md").write_text(
            f"# Page {i}\n\n## Part A\n\n{body}\n\n## Part B\n\nClosing words for page {i}.\n"
        )
    return root


def opts(**kw) -> IngestOptions:
    base = dict(collection="test-col", chunk_size=64, chunk_overlap=8)
    base.update(kw)
    return IngestOptions(**base)


def test_rerun_on_unchanged_input_embeds_and_writes_nothing(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    store, emb = MemoryStore(), FakeEmbedder()
    first = ingest([str(docs)], embedder=emb, store=store, opts=opts())
    assert len(first.new) == 6 and first.chunks_added == store.count("test-col") > 6
    embedded, writes = emb.embedded_count, store.writes
    second = ingest([str(docs)], embedder=emb, store=store, opts=opts())
    assert second.unchanged == 6 and not second.new and not second.changed
    assert second.chunks_added == 0 and emb.embedded_count == embedded and store.writes == writes


def test_changed_source_has_exactly_its_chunks_replaced(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    store, emb = MemoryStore(), FakeEmbedder()
    ingest([str(docs)], embedder=emb, store=store, opts=opts())
    before = store.snapshot("test-col")
    p = docs / "page2.md"
    p.write_text(p.read_text().replace("Closing words for page 2.", "Entirely new closing paragraph about retries."))
    n_before = emb.embedded_count
    rep = ingest([str(docs)], embedder=emb, store=store, opts=opts())
    after = store.snapshot("test-col")
    assert rep.changed == ["docs/page2.md"] and rep.unchanged == 5
    # only the changed chunk was embedded; the source's other chunks kept their vectors
    assert emb.embedded_count - n_before == rep.chunks_added == 1 and rep.chunks_removed == 1
    others_before = {k: v for k, v in before.items() if v[1]["source_file"] != "docs/page2.md"}
    others_after = {k: v for k, v in after.items() if v[1]["source_file"] != "docs/page2.md"}
    assert others_before == others_after
    texts = [v[0] for v in after.values() if v[1]["source_file"] == "docs/page2.md"]
    assert any("retries" in t for t in texts) and not any("Closing words for page 2." in t for t in texts)
    # and a clean ingest of the same files gives the same store
    clean = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=clean, opts=opts())
    assert clean.snapshot("test-col") == after


def test_cleanup_full_removes_sources_that_are_gone(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    store, emb = MemoryStore(), FakeEmbedder()
    ingest([str(docs)], embedder=emb, store=store, opts=opts())
    (docs / "page0.md").unlink()
    inc = ingest([str(docs)], embedder=emb, store=store, opts=opts())
    assert inc.removed == [] and any(
        v[1]["source_file"] == "docs/page0.md" for v in store.snapshot("test-col").values()
    )
    full = ingest([str(docs)], embedder=emb, store=store, opts=opts(cleanup="full"))
    assert full.removed == ["docs/page0.md"] and full.chunks_removed > 0
    assert not any(v[1]["source_file"] == "docs/page0.md" for v in store.snapshot("test-col").values())
    assert "docs/page0.md" not in store.read_manifest("test-col")


def _older_version(docs: Path) -> None:
    """An older state of the corpus: every page different, one page that is gone later, one added later."""
    write_corpus(docs, paras=9)
    for p in docs.glob("*.md"):
        p.write_text(p.read_text().replace("Closing words", "Older closing words"))
    (docs / "gone.md").write_text("# Gone\n\nThis page is removed later.\n")
    (docs / "page5.md").unlink()


def test_a_run_killed_at_any_write_then_rerun_equals_a_clean_run(tmp_path):
    docs = tmp_path / "docs"
    write_corpus(docs)
    clean = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=clean, opts=opts(cleanup="full"))
    expected = clean.snapshot("test-col"), sorted(clean.read_manifest("test-col"))

    # how many writes an uninterrupted update from the older version makes
    probe = MemoryStore()
    _older_version(docs)
    ingest([str(docs)], embedder=FakeEmbedder(), store=probe, opts=opts())
    (docs / "gone.md").unlink()
    write_corpus(docs)
    before = probe.writes
    ingest([str(docs)], embedder=FakeEmbedder(), store=probe, opts=opts(cleanup="full"))
    total = probe.writes - before
    assert total >= 8

    for kill_at in range(total):
        store = MemoryStore()
        _older_version(docs)
        ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
        (docs / "gone.md").unlink()
        write_corpus(docs)
        store.fail_after_writes = store.writes + kill_at
        with pytest.raises(Killed):
            ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(cleanup="full"))
        store.fail_after_writes = None
        ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(cleanup="full"))
        assert (store.snapshot("test-col"), sorted(store.read_manifest("test-col"))) == expected, (
            f"killed at write {kill_at}"
        )
        # and a third run has nothing left to do
        again = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(cleanup="full"))
        assert not again.changed_anything


def test_killed_then_source_reverted_leaves_no_orphans(tmp_path):
    """A killed update of a file that is then reverted must not leave the aborted version's chunks."""
    docs = write_corpus(tmp_path / "docs", n=2)
    store = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    reference = store.snapshot("test-col")
    original = (docs / "page0.md").read_text()
    (docs / "page0.md").write_text(original + "\n\n## Extra\n\n" + "Brand new section text. " * 40)
    store.fail_after_writes = store.writes + 2  # intent record + first chunk batch, then killed
    with pytest.raises(Killed):
        ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    store.fail_after_writes = None
    (docs / "page0.md").write_text(original)
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    assert store.snapshot("test-col") == reference


def test_skipped_inputs_are_listed_and_strict_stops(tmp_path):
    from llmops_cli.errors import InputError

    docs = write_corpus(tmp_path / "docs", n=2)
    (docs / "empty.md").write_text("")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    store = MemoryStore()
    rep = ingest([str(docs), str(tmp_path / "missing")], embedder=FakeEmbedder(), store=store, opts=opts())
    reasons = {s["source"]: s["reason"] for s in rep.skipped}
    assert set(reasons) >= {"docs/empty.md", "docs/binary.txt"} and any("missing" in k for k in reasons)
    assert len(rep.new) == 2
    with pytest.raises(InputError):
        ingest([str(docs)], embedder=FakeEmbedder(), store=MemoryStore(), opts=opts(strict=True))


def test_oversized_files_are_skipped_before_reading(tmp_path):
    docs = write_corpus(tmp_path / "docs", n=1)
    (docs / "big.md").write_text("# Big\n\n" + "word " * 5000)
    rep = ingest([str(docs)], embedder=FakeEmbedder(), store=MemoryStore(), opts=opts(max_bytes=10_000))
    assert [s["source"] for s in rep.skipped] == ["docs/big.md"] and "size limit" in rep.skipped[0]["reason"]


def test_dry_run_writes_nothing(tmp_path):
    docs = write_corpus(tmp_path / "docs", n=2)
    store, emb = MemoryStore(), FakeEmbedder()
    rep = ingest([str(docs)], embedder=emb, store=store, opts=opts(dry_run=True))
    assert len(rep.new) == 2 and rep.chunks_added > 0
    assert store.writes == 0 and emb.embedded_count == 0 and store.list_collections() == []


def test_changing_chunking_reprocesses_and_another_embedder_is_refused(tmp_path):
    from llmops_cli.errors import UsageError

    docs = write_corpus(tmp_path / "docs", n=2)
    store = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    rep = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(chunk_size=100))
    assert len(rep.changed) == 2
    clean = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=clean, opts=opts(chunk_size=100))
    assert store.snapshot("test-col") == clean.snapshot("test-col")
    with pytest.raises(UsageError, match="embedder"):
        ingest([str(docs)], embedder=FakeEmbedder(identity="fake:other"), store=store, opts=opts())


def test_only_restricts_to_a_shard(tmp_path):
    docs = write_corpus(tmp_path / "docs", n=4)
    store = MemoryStore()
    rep = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(only={"docs/page1.md", "docs/page3.md"}))
    assert sorted(rep.new) == ["docs/page1.md", "docs/page3.md"]
    assert sorted(store.read_manifest("test-col")) == ["docs/page1.md", "docs/page3.md"]


def test_only_missing_paths_is_an_input_error_and_creates_nothing(tmp_path):
    from llmops_cli.errors import InputError

    store = MemoryStore()
    with pytest.raises(InputError, match="no-such-folder"):
        ingest([str(tmp_path / "no-such-folder")], embedder=FakeEmbedder(), store=store, opts=opts())
    assert store.list_collections() == []


def test_another_embedder_is_refused_with_a_hint_that_fits_ingest_or_search():
    from llmops_cli.core.collection_meta import EMBEDDER_KEY, check_embedder
    from llmops_cli.errors import UsageError

    emb = FakeEmbedder()
    check_embedder({EMBEDDER_KEY: emb.identity}, emb, "docs")  # the same embedder passes
    check_embedder(None, emb, "docs", searching=True)  # a new collection has no embedder yet
    with pytest.raises(UsageError, match="mixing them") as ingest_err:
        check_embedder({EMBEDDER_KEY: "st:other"}, emb, "docs")
    assert "another --collection" in ingest_err.value.hint
    with pytest.raises(UsageError, match="cannot be searched") as search_err:
        check_embedder({EMBEDDER_KEY: "st:other"}, emb, "docs", searching=True)
    assert "embedder.precision" in search_err.value.hint


def test_a_file_changed_while_ingested_is_recorded_with_the_hash_of_the_text_stored(tmp_path, monkeypatch):
    """Issue 12 item 3: the file is hashed at planning and read later; if it changes in between, the record must
    carry the hash of what was read, so that restoring the file makes the next run re-ingest it."""
    import hashlib

    from llmops_cli.core import ingest as core

    docs = write_corpus(tmp_path / "docs", n=2)
    page = docs / "page0.md"
    version_a = page.read_text()
    version_b = "# Page 0\n\nAn edit saved while the ingest was running.\n"
    real_hash = core.content_hash

    def hash_then_edit(sf):  # the editor saves right after planning hashed the file
        digest = real_hash(sf)
        if sf.path == page:
            page.write_text(version_b)
        return digest

    monkeypatch.setattr(core, "content_hash", hash_then_edit)
    store = MemoryStore()
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    monkeypatch.setattr(core, "content_hash", real_hash)
    sid = next(s for s in store.read_manifest("test-col") if s.endswith("page0.md"))
    stored = [text for text, md in store.snapshot("test-col").values() if md["source_file"] == sid]
    assert any("An edit saved" in t for t in stored)
    assert (
        store.read_manifest("test-col")[sid].content_hash.split(":")[0]
        == hashlib.sha256(version_b.encode()).hexdigest()
    )

    page.write_text(version_a)  # restored: the next run must serve version A again, not "unchanged"
    rerun = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    assert rerun.changed == [sid] and rerun.unchanged == 1
    stored = [text for text, md in store.snapshot("test-col").values() if md["source_file"] == sid]
    assert not any("An edit saved" in t for t in stored) and any("Closing words for page 0" in t for t in stored)


# --- source ids (issue 12 item 4) ---


def _readme(root: Path, words: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "README.md"
    path.write_text(f"# {root.name}\n\n{PARA.format(w=words) * 4}\n")
    return path


def test_files_with_the_same_name_in_two_folders_are_two_sources(tmp_path):
    store = MemoryStore()
    a = ingest([str(_readme(tmp_path / "projA", "alpha"))], embedder=FakeEmbedder(), store=store, opts=opts())
    b = ingest([str(_readme(tmp_path / "projB", "beta"))], embedder=FakeEmbedder(), store=store, opts=opts())
    assert a.new == ["projA/README.md"] and b.new == ["projB/README.md"] and not b.changed and not b.removed
    write_corpus(tmp_path / "r1" / "docs", n=2)
    write_corpus(tmp_path / "r2" / "docs", n=2)
    ingest([str(tmp_path / "r1" / "docs")], embedder=FakeEmbedder(), store=store, opts=opts())
    r2 = ingest([str(tmp_path / "r2" / "docs")], embedder=FakeEmbedder(), store=store, opts=opts())
    assert r2.new == ["r2/docs/page0.md", "r2/docs/page1.md"] and not r2.changed
    assert sorted(store.read_manifest("test-col")) == [
        "projA/README.md",
        "projB/README.md",
        "r1/docs/page0.md",
        "r1/docs/page1.md",
        "r2/docs/page0.md",
        "r2/docs/page1.md",
    ]


class RecordExtrasStore(MemoryStore):
    """A MemoryStore that keeps each record's extras (the file's path), as Chroma does."""

    def read_manifest(self, name):
        return {
            sid: SourceRecord(r.source_id, r.content_hash, list(r.chunk_ids), dict(r.extra))
            for sid, r in self.manifests.get(name, {}).items()
        }

    def write_manifest(self, name, records):
        if records:
            self._tick()
        for r in records:
            self.manifests[name][r.source_id] = SourceRecord(
                r.source_id, r.content_hash, list(r.chunk_ids), dict(r.extra)
            )


def _make_legacy(store: MemoryStore, collection: str = "test-col") -> None:
    """What a collection written before root-relative ids looks like: no rule recorded, records without paths."""
    from llmops_cli.core.source_ids import SOURCE_IDS_KEY

    store.meta[collection].pop(SOURCE_IDS_KEY)
    for rec in store.manifests[collection].values():
        rec.extra = {}


def _legacy_collection(tmp_path, store):
    """The ids the old rule gave: `ingest projA/README.md` -> README.md, `ingest docs` -> docs/page*.md (here under
    tmp_path/repo, with the source root at tmp_path: its ids become repo/docs/...), and the same file twice."""
    readme = _readme(tmp_path / "projA", "alpha")
    docs = write_corpus(tmp_path / "repo" / "docs", n=3)
    ingest([str(readme)], embedder=FakeEmbedder(), store=store, opts=opts(source_root=str(readme.parent)))
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(source_root=str(docs.parent)))
    ingest([str(docs / "page1.md")], embedder=FakeEmbedder(), store=store, opts=opts(source_root=str(docs)))
    _make_legacy(store)
    assert sorted(store.read_manifest("test-col")) == [
        "README.md",
        "docs/page0.md",
        "docs/page1.md",
        "docs/page2.md",
        "page1.md",
    ]
    return readme, docs


def _fresh(tmp_path, readme, docs):
    store = MemoryStore()
    ingest([str(readme)], embedder=FakeEmbedder(), store=store, opts=opts())
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
    return store


def _by_source(store) -> dict[str, tuple[str, list[tuple[str, dict]]]]:
    """Source id -> (content hash, its chunks' (text, metadata) in order), chunk ids and id_source left out."""
    snap = store.snapshot("test-col")
    return {
        sid: (
            r.content_hash,
            [(snap[c][0], {k: v for k, v in snap[c][1].items() if k != "id_source"}) for c in r.chunk_ids],
        )
        for sid, r in store.read_manifest("test-col").items()
    }


def _ids_check(store) -> None:
    """Every chunk id is still what chunk_id gives for its document and text (the check verify makes)."""
    from llmops_cli.core.documents import indexed_text
    from llmops_cli.core.ingest import chunk_id
    from llmops_cli.core.source_ids import id_source

    for cid, (text, md) in store.snapshot("test-col").items():
        assert any(chunk_id(id_source(md), indexed_text(md.get("heading") or "", text), o) == cid for o in range(4)), md


def test_a_legacy_collection_is_migrated_without_embedding_to_what_a_fresh_ingest_holds(tmp_path):
    store = RecordExtrasStore()
    readme, docs = _legacy_collection(tmp_path, store)
    legacy_ids = {sid: r.chunk_ids for sid, r in store.read_manifest("test-col").items()}
    emb = FakeEmbedder()
    rep = ingest([str(docs)], embedder=emb, store=store, opts=opts())
    assert rep.renamed == ["README.md", "docs/page0.md", "docs/page1.md", "docs/page2.md", "page1.md"]
    assert rep.unchanged == 3 and not rep.new and not rep.changed and emb.embedded_count == 0
    fresh = _fresh(tmp_path, readme, docs)
    assert _by_source(store) == _by_source(fresh)  # sources, hashes, texts, metadata: as if ingested today
    assert store.read_manifest("test-col")["projA/README.md"].chunk_ids == legacy_ids["README.md"]  # vectors kept
    assert store.count("test-col") == fresh.count("test-col")  # the duplicate record's chunks are gone
    _ids_check(store)
    from llmops_cli.core.verify import verify

    checked = verify(store, "test-col")
    assert not checked.altered_chunks and not checked.orphan_chunks and not checked.missing_chunks
    again = ingest([str(docs), str(readme)], embedder=emb, store=store, opts=opts())
    assert again.unchanged == 4 and not again.renamed and not again.changed_anything and emb.embedded_count == 0


def test_a_migrated_file_that_changes_gets_the_chunks_a_fresh_ingest_gives(tmp_path):
    store = MemoryStore()
    readme, docs = _legacy_collection(tmp_path, store)
    ingest([str(readme)], embedder=FakeEmbedder(), store=store, opts=opts())
    readme.write_text(readme.read_text() + "\n## More\n\nA new section.\n")
    rep = ingest([str(readme)], embedder=FakeEmbedder(), store=store, opts=opts())
    assert rep.changed == ["projA/README.md"]
    fresh = _fresh(tmp_path, readme, docs)
    assert _by_source(store) == _by_source(fresh)
    mine = store.read_manifest("test-col")["projA/README.md"].chunk_ids
    assert mine == fresh.read_manifest("test-col")["projA/README.md"].chunk_ids  # ids under the new rule now
    _ids_check(store)


def test_a_dry_run_reports_the_renames_and_writes_nothing(tmp_path):
    store = RecordExtrasStore()
    readme, docs = _legacy_collection(tmp_path, store)
    before, writes = store.snapshot("test-col"), store.writes
    rep = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(dry_run=True))
    assert len(rep.renamed) == 5 and rep.unchanged == 3 and not rep.new
    assert (
        store.snapshot("test-col") == before
        and store.writes == writes
        and "docs/page0.md" in store.read_manifest("test-col")
    )


def test_a_migration_killed_at_any_write_is_finished_by_the_next_run(tmp_path):
    for fail_after in range(0, 40):
        store = RecordExtrasStore()
        readme, docs = _legacy_collection(tmp_path / f"k{fail_after}", store)
        store.fail_after_writes = store.writes + fail_after
        try:
            ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts())
            finished = True
        except Killed:
            finished = False
        store.fail_after_writes = None
        ingest([str(docs), str(readme)], embedder=FakeEmbedder(), store=store, opts=opts())
        fresh = _fresh(tmp_path / f"k{fail_after}", readme, docs)
        assert _by_source(store) == _by_source(fresh), fail_after
        assert store.count("test-col") == fresh.count("test-col"), fail_after
        _ids_check(store)
        if finished:
            break
    assert finished


def test_privacy_applies_to_the_metadata_stored_with_the_chunks_too(tmp_path):
    # an issue's title and a table's other columns are stored as chunk metadata: redact must clean them as it cleans
    # the text, and skip must see them (they held an e-mail address that reached the store as it was)
    src = tmp_path / "src"
    src.mkdir()
    (src / "issues.jsonl").write_text(
        '{"title": "Leak by carol@corp.example", "body": "crash on start", "number": 5}\n', encoding="utf-8"
    )
    store = MemoryStore()
    rep = ingest([str(src)], embedder=FakeEmbedder(), store=store, opts=opts(privacy="redact"))
    stored = store.snapshot("test-col")
    assert stored and "carol@corp.example" not in repr(stored)
    (md,) = {str(v[1]["title"]) for v in stored.values()}
    assert md == "Leak by [REDACTED_EMAIL]" and rep.privacy.found["EMAIL"] >= 1
    assert all(v[1]["source"] == "src/issues.jsonl#5" for v in stored.values())  # the source's id is left as it is

    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "t.csv").write_text("id,content,owner\n1,nothing private here,bob@corp.example\n", encoding="utf-8")
    table = TableOptions(text_column="content", id_column="id")
    store = MemoryStore()
    rep = ingest([str(rows)], embedder=FakeEmbedder(), store=store, opts=opts(privacy="redact", table=table))
    assert "bob@corp.example" not in repr(store.snapshot("test-col")) and rep.privacy.found == {"EMAIL": 1}
    skipped = ingest([str(rows)], embedder=FakeEmbedder(), store=MemoryStore(), opts=opts(privacy="skip", table=table))
    assert [s["source"] for s in skipped.skipped] == ["rows/t.csv"]


def test_privacy_redacts_a_row_id_holding_private_data_and_keeps_rows_apart(tmp_path):
    # --id-column on a column of e-mail addresses: the row's id (source metadata, chunk id input) held the address
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "t.csv").write_text(
        "owner,content\nbob@corp.example,first row\nann@corp.example,second row\n7,third row\n", encoding="utf-8"
    )
    table = TableOptions(text_column="content", id_column="owner")
    store = MemoryStore()
    ingest([str(rows)], embedder=FakeEmbedder(), store=store, opts=opts(privacy="redact", table=table))
    stored = store.snapshot("test-col")
    assert "@corp.example" not in repr(stored) and "@corp.example" not in repr(store.read_manifest("test-col"))
    sources = sorted(str(v[1]["source"]) for v in stored.values())
    assert len(set(sources)) == 3 and sources[0] == "rows/t.csv#7"
    assert all(s.startswith("rows/t.csv#[REDACTED_EMAIL]-") for s in sources[1:])
    again = MemoryStore()  # the same ids on every run
    ingest([str(rows)], embedder=FakeEmbedder(), store=again, opts=opts(privacy="redact", table=table))
    assert again.snapshot("test-col").keys() == stored.keys()
