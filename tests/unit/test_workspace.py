"""wiring.Workspace: each part built on first use and only once, the LLM stack in its one order, nothing created by a
read-only look at the answer log, everything opened closed with it."""

from __future__ import annotations

from pydantic import SecretStr

from llmops_cli.core.eval.llm_calls import CachedLLM
from llmops_cli.core.feedback.recording import RecordingLLM
from llmops_cli.core.llm_tracing import TracedLLM
from llmops_cli.settings import LLMSettings, Settings
from tests.support.fakes import FakeWorkspace, ScriptedLLM


def _settings(tmp_path) -> Settings:
    return Settings(data_dir=str(tmp_path / "state"), llm=LLMSettings(model="fake/llm"))


def test_parts_are_built_once_and_a_writable_store_serves_reads(tmp_path):
    ws = FakeWorkspace(_settings(tmp_path))
    assert ws.store(read_only=True) is ws.store(read_only=True)
    ws.store()
    ws.store(read_only=True)
    assert [e for e in ws.events if e[0] == "store"] == [("store", True), ("store", False)]
    assert ws.embedder() is ws.embedder() and ws.count("embedder") == 1
    assert ws.lexical_index("docs") is ws.lexical_index("docs")


def test_llm_stack_order_and_memo(tmp_path):
    base = ScriptedLLM()
    with FakeWorkspace(_settings(tmp_path), llm=base) as ws:
        asked = ws.llm("ask", record=False)
        # base -> tracing (a span per call that reaches the client) -> recording -> cache
        assert isinstance(asked, TracedLLM) and asked.inner is base
        assert ws.llm("ask", record=False) is asked and ws.count("llm") == 1
        assert ws.count("answer_log") == 0  # an unrecorded stack opens no log
        stack = ws.llm("eval", cache=True)
        assert isinstance(stack, CachedLLM) and isinstance(stack.inner, RecordingLLM)
        assert stack.inner.inner.inner is base
        stack.complete([{"role": "user", "content": "hi"}])
        stack.complete([{"role": "user", "content": "hi"}])  # the cache answers: not sent, not recorded again
        assert len(base.history) == 1 and stack.usage.calls == 1 and stack.usage.cached == 1
        assert [r.kind for r in ws.answer_log().recent(limit=5)] == ["eval"]
        other_key = ws.settings.llm.model_copy(update={"api_key": SecretStr("sk-other-000000000000")})
        ws.llm("review", record=False)
        ws.llm("review", record=False, llm_settings=other_key)
        assert ws.count("llm") == 4  # ask, eval, review with each key
    assert ws.count("answer_log") == 1


def test_a_read_only_look_at_the_answer_log_creates_nothing(tmp_path):
    with FakeWorkspace(_settings(tmp_path)) as ws:
        assert ws.answer_log(read_only=True).recent(limit=1) == []
        assert not ws.answer_log_exists() and not (tmp_path / "state").exists()
        ws.answer_log()
        assert ws.answer_log_exists() and ws.answer_log(read_only=True) is ws.answer_log()


class _CountingState:
    """A State that counts what the workspace asks of it and whether it was closed."""

    def __init__(self, inner):
        self.inner, self.asked, self.closed = inner, [], False

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.asked.append(name)
            return method(*args, **kwargs)

        return counted

    def close(self):
        self.closed = True
        self.inner.close()


def test_state_stores_come_from_the_state_once_each_and_close_with_the_workspace(tmp_path):
    from llmops_cli.core.batch.checkpoint import FileCheckpoints

    opened = []

    class Counted(FakeWorkspace):
        def _open_state(self):
            opened.append(_CountingState(super()._open_state()))
            return opened[-1]

    ws = Counted(_settings(tmp_path))
    assert not opened  # nothing opened before a store is asked for
    log, cache, history = ws.answer_log(), ws.llm_cache(), ws.eval_history()
    assert (ws.answer_log(), ws.llm_cache(), ws.eval_history()) == (log, cache, history)
    assert isinstance(ws.checkpoints(tmp_path / "run"), FileCheckpoints)
    assert len(opened) == 1 and opened[0].asked == ["answer_log", "llm_cache", "run_history", "checkpoints"]
    assert {p.name for p in (tmp_path / "state").rglob("*.sqlite")} == {"llmops.sqlite", "llm.sqlite", "runs.sqlite"}
    ws.close()
    assert opened[0].closed
    assert ws.answer_log() is not log and len(opened) == 2  # reopened after close, through a new state
    ws.close()
