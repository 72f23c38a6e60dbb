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
