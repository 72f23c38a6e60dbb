"""Ingest's progress: the phases core.ingest reports (counts of chunks, the total growing until the last source is
parsed), how `llmops ingest` shows them, and a run that changed nothing saying so instead of a 0.0 chunks/s rate."""

from __future__ import annotations

import os

import pytest

from llmops_cli.cli.ingest_cmd import _ingest_progress
from llmops_cli.entry.ingest import ingest
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore, use_fake_workspaces
from tests.unit.test_feedback_cli import invoke


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    store, emb = MemoryStore(), FakeEmbedder()
    use_fake_workspaces(monkeypatch, store=store, embedder=emb)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        body = "\n\n".join(f"## Part {j}\n\n" + f"word{i}{j} " * 60 for j in range(60))
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\n{body}\n")
    return store, emb, docs


def test_ingest_reports_phases_with_chunk_counts(project):
    store, emb, docs = project
    events = []
    with FakeWorkspace(load_settings(None).settings, store=store, embedder=emb) as ws:
        report = ingest(ws, [str(docs)], progress=lambda *e: events.append(e))
    phases = [p for p, _, _ in events]
    assert phases[:3] == ["load model", "plan", "parse"] and phases[-1] == "index"
    assert [e for e in events if e[0] == "parse"][-1] == ("parse", 3, 3)  # sources, the parse phase's own count
    embeds = [(d, t) for p, d, t in events if p == "embed"]
    writes = [(d, t) for p, d, t in events if p == "write"]
    added = report.chunks_added
    assert added > 2 * 64  # several progress steps (core.ingest.PROGRESS_SLICE chunks each)
    assert embeds[-1] == (added, added) and writes[-1] == (added, added)
    assert len({d for d, _ in embeds}) >= 3  # the count moves within the embed calls
    assert all(d <= t for d, t in embeds + writes)


class _Bar:
    def __init__(self):
        self.shown = []

    def show(self, phase, done=None, total=None, *, final=False, detail=""):
        self.shown.append((phase, done, total, final, detail))


def test_the_progress_line_has_an_eta_only_once_the_total_is_final():
    bar = _Bar()
    progress = _ingest_progress(bar)
    progress("plan", 0, 0)
    progress("parse", 0, 2)
    progress("parse", 1, 2)
    progress("embed", 32, 40)  # a full batch of the first source, the second not parsed yet
    progress("parse", 2, 2)
    progress("embed", 64, 70)
    progress("embed", 70, 70)
    progress("write", 70, 70)
    progress("index", 0, 0)
    assert bar.shown[0][0] == "plan"
    assert bar.shown[3] == ("embed", 32, 40, False, "1/2 sources parsed")  # total still growing: no ETA
    assert bar.shown[5] == ("embed", 64, 70, True, "2/2 sources parsed")
    assert bar.shown[6][:3] == ("write", 0, 70)  # all embedded: what is left is writing
    assert bar.shown[7][:4] == ("write", 70, 70, True)
    assert bar.shown[-1][0] == "index"


def test_a_re_run_that_changed_nothing_says_so_instead_of_a_rate(project, capsys):
    _, _, docs = project
    code, out, err = invoke(capsys, "ingest", str(docs))
    assert code == 0, err
    assert "chunks/s" in out
    code, out, err = invoke(capsys, "ingest", str(docs))
    assert code == 0, err
    assert "nothing changed" in out
    assert "chunks/s" not in out
