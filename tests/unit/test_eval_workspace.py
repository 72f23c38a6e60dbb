"""Every LLM call of `llmops eval` goes through the workspace's one LLM stack (base -> recording -> cache): judge
verdicts and generated questions are answer-log rows of kind eval, the answer log and the LLM are opened once per
command, and a re-run answered from the cache neither calls the LLM nor records anything."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmops_cli.core.feedback import AnswerLog
from llmops_cli.errors import LlmopsError
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, MemoryStore, ScriptedLLM, use_fake_workspaces
from tests.unit.test_eval_cli import ROWS, invoke

PASSAGES = {
    "scheduler.md": "The scheduler triggers DAG runs when their schedule is due and queues their tasks.",
    "executor.md": "The LocalExecutor runs tasks as subprocesses on the machine the scheduler runs on.",
    "pools.md": "Pools limit how many tasks run at once against one resource, such as a database.",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/llm")
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return tmp_path


def _eval_rows(project) -> list:
    data = load_settings(environ={"LLMOPS_LLM_MODEL": "fake/llm"}, cwd=project).settings.data_path
    with AnswerLog.for_data_dir(data) as log:
        return log.recent(limit=100, kind="eval")


def _store() -> MemoryStore:
    store = MemoryStore()
    store.ensure_collection("docs")
    names = sorted(PASSAGES)
    store.upsert(
        "docs",
        [f"{n}#0" for n in names],
        [np.ones(4) for _ in names],
        [PASSAGES[n] for n in names],
        [{"source": n} for n in names],
    )
    return store


def test_generate_goes_through_the_stack_once(project, capsys, monkeypatch):
    llm = ScriptedLLM(default=json.dumps({"question": "What does it do?", "answer": "It runs tasks."}))
    events = use_fake_workspaces(monkeypatch, store=_store(), llm=llm)
    args = ["generate", "--collection", "docs", "-n", "3", "-o", "gen.jsonl", "--json"]
    code, out, err = invoke(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["questions"] == 3 and json.loads(out)["usage"]["calls"] == 3
    assert len(llm.history) == 3 and len(_eval_rows(project)) == 3
    # one command: the LLM built once, the answer log opened once, the store opened read-only
    assert [e for e in events if e[0] in ("llm", "answer_log", "store")] == [
        ("llm", "fake/llm", None, None),
        ("answer_log",),
        ("store", True),
    ]
    code, out, err = invoke(capsys, *args)  # the same chunks again: all from the cache
    assert code == 0, err
    assert json.loads(out)["usage"]["cached"] == 3 and json.loads(out)["usage"]["calls"] == 0
    assert len(llm.history) == 3 and len(_eval_rows(project)) == 3


def test_judge_calls_are_recorded_once_each(project, capsys, monkeypatch):
    llm = ScriptedLLM(default=json.dumps({"score": 5, "reason": "matches the reference"}))
    events = use_fake_workspaces(monkeypatch, llm=llm)
    code, out, err = invoke(capsys, "qs.jsonl", "--metrics", "correctness", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["correctness"] == 1.0 and doc["usage"]["calls"] == len(ROWS)
    rows = _eval_rows(project)
    assert len(rows) == len(llm.history) == len(ROWS)
    assert {r.answer for r in rows} == {llm.default}
    assert sum(1 for e in events if e[0] == "answer_log") == 1 and sum(1 for e in events if e[0] == "llm") == 1


@pytest.mark.parametrize(
    "where,needle",
    [
        ("nokey=1", "has the metadata key 'nokey'"),
        ("source=nowhere.md", "has that value"),
        ("$or=x", "not Chroma operators"),
    ],
)
def test_a_where_no_chunk_matches_is_a_usage_error_not_a_run_of_zeros(project, capsys, monkeypatch, where, needle):
    """`eval --where` with a typo scored every question 0, exited 0 and recorded the run; `query` refuses it."""
    (project / "ret.jsonl").write_text(
        json.dumps({"id": "1", "question": "What queues tasks?", "relevant_sources": ["scheduler.md"]}) + "\n"
    )
    store = MemoryStore()
    store.ensure_collection("docs")
    names = sorted(PASSAGES)
    vectors = FakeEmbedder().embed([PASSAGES[n] for n in names])
    store.upsert(
        "docs", [f"{n}#0" for n in names], list(vectors), [PASSAGES[n] for n in names], [{"source": n} for n in names]
    )
    use_fake_workspaces(monkeypatch, store=store, llm=ScriptedLLM(default="unused"))
    code, _, err = invoke(capsys, "ret.jsonl", "-m", "retrieval", "--where", where)
    assert code == 2 and needle in err, err
    assert not (project / ".llmops" / "eval" / "runs.sqlite").exists()
    code, out, err = invoke(capsys, "ret.jsonl", "-m", "retrieval", "--where", "source=scheduler.md", "--json")
    assert code == 0 and json.loads(out)["metrics"]["hit@5"] == 1.0, err


def test_generate_that_writes_nothing_does_not_say_it_wrote(project, capsys, monkeypatch):
    """Every reply unusable: the command said "wrote 0 questions ... to gen.jsonl" (and an older gen.jsonl stayed)."""
    (project / "gen.jsonl").write_text("older\n")
    use_fake_workspaces(monkeypatch, store=_store(), llm=ScriptedLLM(default="no json here"))
    code, out, err = invoke(capsys, "generate", "--collection", "docs", "--count", "2", "-o", "gen.jsonl")
    assert code == 1 and "no question could be written" in err
    assert "wrote" not in out + err and (project / "gen.jsonl").read_text() == "older\n"
    assert "reply is not JSON" in err and "judge" not in err  # no judge in generate: the question writer's reply


def test_a_metric_that_got_no_value_stays_in_the_summary(project, capsys, monkeypatch):
    """Every judge reply unusable: the summary table left the judge metric out, as if it had never been asked for."""
    use_fake_workspaces(monkeypatch, llm=ScriptedLLM(default="I think it is fine."))
    code, out, err = invoke(capsys, "qs.jsonl", "--metrics", "token_f1,correctness", "--worst", "0")
    assert code == 3, err
    line = next(x for x in out.splitlines() if "correctness" in x)
    assert "no value" in line and "token_f1" in out


def test_a_run_where_every_question_failed_exits_1_as_documented(project, capsys, monkeypatch):
    """docs/eval-metrics.md's exit-code table had no row for it: exit 1, the first error named."""
    from pathlib import Path

    use_fake_workspaces(monkeypatch, llm=ScriptedLLM(default="I think it is fine."))
    code, _, err = invoke(capsys, "qs.jsonl", "--metrics", "correctness", "--no-record")
    assert code == 1 and "every question failed" in err and "not JSON" in err, err
    table = (Path(__file__).resolve().parents[2] / "docs" / "eval-metrics.md").read_text()
    assert "| 1 | nothing was measured: every question's answer or judgement failed" in table


def test_rows_with_errors_are_said_once_and_also_when_a_gate_fails(project, capsys, monkeypatch):
    """Two warnings said the same ("3 questions had errors", then "3 of 3 questions had errors; ..."); with a failed
    gate, the errors are in the gate's one line."""
    use_fake_workspaces(monkeypatch, llm=ScriptedLLM(default="I think it is fine."))
    code, _, err = invoke(capsys, "qs.jsonl", "--metrics", "token_f1,correctness", "--no-record", "--worst", "0")
    assert code == 3 and err.count("questions had errors") == 1, err
    args = ["qs.jsonl", "--metrics", "token_f1,correctness", "--no-record", "--fail-under", "token_f1=0.9"]
    code, _, err = invoke(capsys, *args)
    assert code == 4 and err.count("questions had errors") == 1, err
    assert "quality gate failed: token_f1" in err and "3 of 3 questions had errors" in err


def test_generate_says_when_the_collection_has_fewer_chunks_than_asked(project, capsys, monkeypatch):
    """--count 5 on a collection of 3 chunks wrote 3 questions and exited 0 without a word about the other 2."""
    llm = ScriptedLLM(default=json.dumps({"question": "What does it do?", "answer": "It runs tasks."}))
    use_fake_workspaces(monkeypatch, store=_store(), llm=llm)
    code, out, err = invoke(capsys, "generate", "--collection", "docs", "--count", "5", "-o", "gen.jsonl")
    assert code == 0 and "wrote 3 questions" in out, err
    assert "--count 5: collection docs has 3 chunks long enough to ask about" in err


def test_generate_and_sweep_outputs_that_are_folders_fail_before_any_work(project, capsys, monkeypatch):
    """`generate -o q.jsonl` / `sweep --html page.html` where that is a folder: internal errors after all the work."""
    llm = ScriptedLLM(default=json.dumps({"question": "What does it do?", "answer": "It runs tasks."}))
    use_fake_workspaces(monkeypatch, store=_store(), llm=llm)
    (project / "q.jsonl").mkdir()
    code, _, err = invoke(capsys, "generate", "--collection", "docs", "--count", "2", "-o", "q.jsonl")
    assert code == 2 and "--output q.jsonl is a folder" in err and llm.history == [], err
    (project / "page.html").mkdir()
    (project / "ret.jsonl").write_text(json.dumps({"question": "What queues tasks?", "relevant_sources": ["s"]}) + "\n")
    code, _, err = invoke(capsys, "sweep", "ret.jsonl", "--sources", "nowhere", "--html", "page.html")
    assert code == 2 and "--html page.html is a folder" in err, err
    from llmops_cli.core.eval.datasets import EvalItem, write_dataset

    (project / "file").write_text("")
    with pytest.raises(LlmopsError, match="cannot write .*file/q.jsonl"):
        write_dataset([EvalItem("1", "q")], project / "file" / "q.jsonl")
