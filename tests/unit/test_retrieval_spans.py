"""Retrieval in a trace: one `query` (fakes for the store and embedder, the real SDK provider and trace store) makes
a root span with a child per list (vector, lexical) and one for the fusion, each holding the collection, k, the hit
count and the returned chunk ids and scores, never their texts; untraced, no attribute list is even built. And the
process-wide span sink follows the workspace: a second workspace's spans go to its own state database, none to the
first one's, and one with tracing off adds nothing anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_cli.adapters import tracing as tracing_sdk
from llmops_cli.adapters.state import open_state
from llmops_cli.core import tracing
from llmops_cli.core.retrieval import retriever as retriever_mod
from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry.ingest import ingest
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore

DOCS = {
    "quokka.md": "# Quokka rotation\n\nQuokka rotation happens every 17 minutes on the night shift.\n",
    "wombat.md": "# Wombat feeding\n\nWombats are fed twice a day, rotation of keepers weekly.\n",
    "otter.md": "# Otters\n\nOtters sleep holding hands.\n",
}


def _settings(root: Path, **flags):
    return load_settings(
        environ={},
        cwd=root,
        flags={"data_dir": str(root / "state"), "ingest.source_root": str(root), **flags},
    ).settings


def _project(tmp_path: Path, name: str = "p"):
    root = tmp_path / name
    (root / "docs").mkdir(parents=True)
    for f, text in DOCS.items():
        (root / "docs" / f).write_text(text)
    return root


def _spans(settings) -> list:
    tracing_sdk.flush()
    state = open_state(None, settings.data_path)
    try:
        with state.traces(create=False) as store:
            return [s for r in store.recent(1000) for s in store.trace(r.trace_id)]
    except FileNotFoundError:
        return []
    finally:
        state.close()


@pytest.fixture(autouse=True)
def _untraced_after():
    yield
    tracing.disable()  # later tests' workspaces set their own sink


def test_a_query_trace_has_retrieval_spans_with_ids_and_scores_under_its_root(tmp_path):
    root = _project(tmp_path)
    settings = _settings(root)
    store, emb = MemoryStore(), FakeEmbedder()
    with FakeWorkspace(settings, store=store, embedder=emb) as ws:
        ingest(ws, [str(root / "docs")], collection="docs")
        hits = ask_entry.query(ws, "when does quokka rotation happen", collection="docs", k=2)
    spans = _spans(settings)
    top = next(s for s in spans if s.name == "llmops query")
    tree = [s for s in spans if s.trace_id == top.trace_id]
    children = {s.name: s for s in tree if s.parent_id == top.span_id}
    assert {"retrieval vector docs", "retrieval lexical docs", "fusion rrf"} <= set(children), [s.name for s in tree]
    for side in ("vector", "lexical"):
        a = children[f"retrieval {side} docs"].attributes
        assert a["gen_ai.operation.name"] == "retrieval" and a["gen_ai.data_source.id"] == "docs"
        assert a["llmops.retrieval.list"] == side and a["gen_ai.request.top_k"] == settings.retrieval.candidates
        assert a["llmops.hits"] == len(a["llmops.chunk_ids"]) == len(a["llmops.scores"]) > 0
    fusion = children["fusion rrf"].attributes
    assert list(fusion["llmops.chunk_ids"]) == [h.id for h in hits]
    assert list(fusion["llmops.scores"]) == pytest.approx([h.score for h in hits], rel=1e-5)
    assert fusion["llmops.hits"] == 2 and fusion["llmops.retrieval.lists"] == 2
    assert hits[0].id in children["retrieval lexical docs"].attributes["llmops.chunk_ids"]
    dumped = repr([s.attributes for s in tree]).lower()
    assert "night shift" not in dumped and "quokka rotation happens" not in dumped  # ids, never texts


def test_untraced_retrieval_builds_no_span_attributes(tmp_path, monkeypatch):
    root = _project(tmp_path)
    settings = _settings(root, **{"tracing.enabled": False})
    with FakeWorkspace(settings, store=MemoryStore(), embedder=FakeEmbedder()) as ws:
        ingest(ws, [str(root / "docs")], collection="docs")
        tracing.disable()

        def built(*a, **kw):
            raise AssertionError("span attributes built while nothing records")

        monkeypatch.setattr(retriever_mod, "_annotate_hits", built)
        assert ask_entry.query(ws, "quokka rotation", collection="docs", k=2)


def test_the_span_sink_follows_the_workspace(tmp_path):
    a_root, b_root = _project(tmp_path, "a"), _project(tmp_path, "b")
    a, b = _settings(a_root), _settings(b_root)
    for s in (a, b):
        Path(s.data_path).mkdir(parents=True)
    with FakeWorkspace(a):
        with tracing.span("work in a"):
            pass
    assert [s.name for s in _spans(a)] == ["work in a"]
    with FakeWorkspace(b):  # a second workspace of the same process, another state database
        with tracing.span("work in b"):
            pass
    assert [s.name for s in _spans(b)] == ["work in b"]
    # the first sink is retired on a thread: wait for it, then nothing of b's is in a's store
    for t in tracing_sdk._router._retiring:
        t.join(5)
    assert [s.name for s in _spans(a)] == ["work in a"]
    # a workspace with tracing off: no span anywhere
    with FakeWorkspace(_settings(b_root, **{"tracing.enabled": False})):
        with tracing.span("untraced") as s:
            assert not s.is_recording()
    assert [s.name for s in _spans(a)] == ["work in a"] and [s.name for s in _spans(b)] == ["work in b"]
    with FakeWorkspace(a):  # and back on: to a's store again
        with tracing.span("again in a"):
            pass
    assert sorted(s.name for s in _spans(a)) == ["again in a", "work in a"]
    assert [s.name for s in _spans(b)] == ["work in b"]
