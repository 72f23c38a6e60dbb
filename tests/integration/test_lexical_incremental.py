"""The lexical index follows a real Chroma collection incrementally: ids listed without metadata (paged), only the
changed files' chunks read back and tokenized, results equal to a full rebuild."""

from __future__ import annotations

import pytest

from llmops_cli.adapters.vectorstores import chroma
from llmops_cli.adapters.vectorstores.chroma import ChromaStore
from llmops_cli.core.ingest import IngestOptions, ingest
from llmops_cli.core.retrieval.lexical import LexicalIndex
from tests.support.fakes import FakeEmbedder

pytestmark = pytest.mark.integration


def test_two_changed_files_update_the_index_of_a_chroma_collection(tmp_path, monkeypatch):
    monkeypatch.setattr(chroma, "MAX_BATCH", 7)  # ids() pages through the collection
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"p{i:02d}.md").write_text(f"# Page {i}\n\nTopic w{i}: retries, pools and sensors of page {i}.\n")
    store = ChromaStore.embedded(tmp_path / "store")
    opts = IngestOptions(collection="docs-lex", chunk_size=64, chunk_overlap=8, source_root=str(tmp_path))
    ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts)
    lex = LexicalIndex(tmp_path / "lex", store, "docs-lex")
    assert lex.build() == 30
    assert sorted(store.ids("docs-lex")) == sorted(h.id for h in store.get("docs-lex", include_documents=False))
    (docs / "p03.md").write_text("# Page 3\n\nZanzibar ferries and retries.\n")
    (docs / "p17.md").unlink()
    ingest(
        [str(docs)], embedder=FakeEmbedder(), store=store, opts=IngestOptions(**{**opts.__dict__, "cleanup": "full"})
    )
    assert lex.update() == 29
    assert lex.last_update == {"mode": "update", "added": 1, "removed": 2}
    ref = LexicalIndex(tmp_path / "ref", store, "docs-lex")
    ref.build()
    for q in ("zanzibar", "retries pools", "w17", "page 3 sensors"):
        assert lex.search(q, 10) == ref.search(q, 10), q
    assert lex.search("zanzibar", 1)[0][0] in store.ids("docs-lex")


def test_with_a_chroma_server_each_machines_cache_follows_the_store_and_is_never_read_stale(tmp_path):
    """Two machines (two data dirs) share a Chroma server: machine B's BM25 cache is built from the store, brought
    up to date after machine A changes the collection (keyed by the store's address, the collection and the
    generation the store records), and read as it is while nothing changed."""
    from llmops_cli.devstack import chroma as chroma_dev
    from llmops_cli.wiring import lexical_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"p{i:02d}.md").write_text(f"# Page {i}\n\nPools and sensors, part w{i}.\n")
    with chroma_dev.start(tmp_path / "server") as srv:
        writer = ChromaStore.server("127.0.0.1", srv.port)  # machine A
        opts = IngestOptions(collection="shared-docs", chunk_size=64, chunk_overlap=8, source_root=str(tmp_path))
        ingest([str(docs)], embedder=FakeEmbedder(), store=writer, opts=opts)

        class MachineB:  # what lexical_folder needs of the settings: its own data dir
            data_path = tmp_path / "machine-b"

        reader = ChromaStore.server("127.0.0.1", srv.port)
        folder = lexical_folder(MachineB, reader, "shared-docs")
        assert folder.is_relative_to(tmp_path / "machine-b")  # under data_dir, not beside the store
        lex = LexicalIndex(folder, reader, "shared-docs")
        assert lex.search("zanzibar", 3) == [] and lex.last_update["mode"] == "build"

        (docs / "p05.md").write_text("# Page 5\n\nZanzibar ferries.\n")
        ingest([str(docs)], embedder=FakeEmbedder(), store=writer, opts=opts)  # machine A changes the collection

        again = LexicalIndex(folder, reader, "shared-docs")  # machine B's next command
        found = again.search("zanzibar", 3)
        assert again.last_update == {"mode": "update", "added": 1, "removed": 1}
        assert [writer.get("shared-docs", ids=[found[0][0]])[0].metadata["source"]] == ["docs/p05.md"]
        third = LexicalIndex(folder, reader, "shared-docs")
        assert third.search("zanzibar", 3) == found and third.last_update["mode"] == "current"
