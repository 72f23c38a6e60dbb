"""`llmops ask --prompt FILE|NAME` on fakes: the prompt's text is what the answer call sends, its name and hash are in
the JSON and the answer log, the semantic cache serves an answer only to the prompt that made it, and a bad prompt
is a one-line input error naming it."""

from __future__ import annotations

import json
import os

import pytest

from llmops_cli.core import prompts
from llmops_cli.entry.ingest import ingest
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore, use_fake_workspaces
from tests.unit.test_feedback_cli import VERDICT, invoke, ok_json

Q = "How do I rotate the frobnicator credentials?"
PIRATE = (
    "---\nname: pirate\n---\n[system]\nAnswer like a pirate, citing [n].\n[user]\nPassages:\n{context}\n\nQ: {question}"
)


class MessagesLLM:
    """Answers by the kind of request and keeps every answer call's messages."""

    model = "fake/llm"

    def __init__(self):
        self.answers: list[list[dict[str, str]]] = []

    def complete(self, messages, **params):
        from llmops_cli.core.ports import Completion

        system = messages[0]["content"]
        if system.startswith("You review"):
            text = json.dumps(VERDICT)
        elif system.startswith("You rewrite"):
            text = "rotate secrets frobnicator"
        else:
            self.answers.append(list(messages))
            text = "Run `frob rotate --all` [1]."
        return Completion(text=text, model=self.model, input_tokens=7, output_tokens=3, cost=0.0)

    def stream(self, messages, **params):
        yield self.complete(messages, **params).text


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/llm")
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "1")
    store, emb, llm = MemoryStore(), FakeEmbedder(), MessagesLLM()
    use_fake_workspaces(monkeypatch, store=store, embedder=emb, llm=llm)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frob.md").write_text("# Frobnicator\n\n## Credentials\n\nRotate them with frob rotate --all.\n")
    (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
    with FakeWorkspace(load_settings(None).settings, store=store, embedder=emb, llm=llm) as ws:
        ingest(ws, [str(docs)])
    (tmp_path / "pirate.md").write_text(PIRATE)
    return tmp_path, llm


def _log_extra(answer_id: str) -> dict:
    with FakeWorkspace(load_settings(None).settings) as ws:
        return ws.answer_log().get(answer_id).extra


def test_the_prompt_file_is_sent_recorded_and_keys_the_cache(project, capsys):
    tmp, llm = project
    pirate = prompts.load_prompt("pirate.md")  # as the command reads it (cwd is the project)
    default = prompts.default_prompt()

    plain = ok_json(capsys, "ask", Q)
    assert plain["prompt"] == default.ref()
    assert llm.answers[-1][0]["content"] == default.system
    assert _log_extra(plain["answer_id"])["prompt"]["sha256"] == default.sha256

    custom = ok_json(capsys, "ask", Q, "--prompt", "pirate.md", "--no-cache")
    assert custom["prompt"]["name"] == "pirate" and custom["prompt"]["sha256"] == pirate.sha256
    system, user = llm.answers[-1][0]["content"], llm.answers[-1][-1]["content"]
    assert system == "Answer like a pirate, citing [n]." and user.startswith("Passages:\n[1] ") and Q in user
    assert _log_extra(custom["answer_id"])["prompt"] == pirate.ref()

    # the default prompt's answer promoted: served to the default prompt only, not to another prompt's ask
    assert ok_json(capsys, "feedback", plain["answer_id"], "up")
    assert plain["answer_id"] in ok_json(capsys, "feedback", "review")["promotion"]["promoted"]
    assert ok_json(capsys, "ask", Q)["cache"]["answer_id"] == plain["answer_id"]
    n = len(llm.answers)
    again = ok_json(capsys, "ask", Q, "--prompt", "pirate.md")
    assert again["cache"] is None and len(llm.answers) == n + 1 and again["prompt"]["sha256"] == pirate.sha256


def test_a_prompt_by_name_and_a_bad_one(project, capsys):
    tmp, llm = project
    named = ok_json(capsys, "ask", Q, "--prompt", "answer-detailed")
    assert named["prompt"]["name"] == "answer-detailed"
    assert llm.answers[-1][0]["content"].startswith("You are a documentation assistant.")
    n = len(llm.answers)
    for bad in ("no-such-prompt", "missing/file.md"):
        code, out, err = invoke(capsys, "ask", Q, "--prompt", bad)
        assert code == 2 and out == "" and bad in err and len(llm.answers) == n
    code, _, err = invoke(capsys, "chat", "--prompt", "no-such-prompt")
    assert code == 2 and "no-such-prompt" in err
