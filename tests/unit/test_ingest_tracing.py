"""An ingest is one trace: the embedding calls made on its embedding thread are spans under "llmops ingest", not
traces of their own."""

from __future__ import annotations

import os

from llmops_cli.entry.ingest import ingest
from llmops_cli.settings import Settings
from tests.support.fakes import FakeWorkspace


def test_the_embedding_spans_of_an_ingest_are_in_its_trace(tmp_path, monkeypatch, spans):
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\n" + "Some words about frobnicators. " * 40, encoding="utf-8")
    settings = Settings(data_dir=str(tmp_path / "data"), tracing={"enabled": False})  # no SDK: the fixture's tracer
    with FakeWorkspace(settings) as ws:
        ingest(ws, [str(docs)])
    finished = spans.get_finished_spans()
    embeds = [s for s in finished if s.name.startswith("embeddings ")]
    assert embeds, [s.name for s in finished]
    assert [s.name for s in finished if s.parent is None] == ["llmops ingest"]
    (root,) = [s for s in finished if s.parent is None]
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
