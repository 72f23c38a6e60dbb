"""A batch run is one root span ("llmops batch", with its input, prompt and counts); every row's chat span nests
under it instead of being a trace of its own."""

from __future__ import annotations

import os

from llmops_cli.core.batch.inputs import write_rows
from llmops_cli.settings import Settings
from tests.support.fakes import FakeWorkspace, ScriptedLLM


def test_a_batch_run_is_one_root_span_with_the_rows_chat_spans_under_it(tmp_path, monkeypatch, spans):
    from llmops_cli.entry.batch import batch

    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"q": f"q{i}"} for i in range(5)])
    settings = Settings(data_dir=str(tmp_path / "data"), tracing={"enabled": False})  # no SDK: the fixture's tracer
    with FakeWorkspace(settings, llm=ScriptedLLM("fake/m")) as ws:
        report = batch(ws, str(src), model="fake/m", prompt="Answer: {q}", concurrency=3, use_cache=False)
    assert report.answered == 5
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    roots = [s for s in finished if s.parent is None]
    assert [r.name for r in roots] == ["llmops batch"]
    root = roots[0]
    chats = [s for s in finished if s.name.startswith("chat ")]
    assert len(chats) == 5
    for s in finished:  # every span, the chat spans made in the engine's workers too, under the one root
        while s.parent is not None:
            s = by_id[s.parent.span_id]
        assert s is root
    a = root.attributes
    assert (a["llmops.batch.requests"], a["llmops.batch.answered"], a["llmops.batch.errors"]) == (5, 5, 0)
    assert a["llmops.prompt.name"] == "inline" and a["llmops.prompt.sha256"] == report.prompt["sha256"]
