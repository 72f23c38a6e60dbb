"""The model x prompt matrix run task by task (the Airflow DAG's way) against the one-process matrix (`llmops eval run`
with several --model and --prompt), on a deterministic LLM that answers per model and prompt: the plan's context is
made once and survives a JSON round trip, each combination answers from it without searching or rewording again,
and the leaderboard and report reduced from the recorded runs equal the CLI's. And an evaluation is one root span:
its LLM calls nest under it, the judge's verdicts are ``gen_ai.evaluation.result`` events on it."""

from __future__ import annotations

import json
import os

import pytest

from llmops_cli.core.ports import LLM, Completion
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeWorkspace
from tests.unit.test_eval_selection_cli import QUESTIONS, RIGHT, _store

REWORD_MARK = "rewrite questions"


class PerModelLLM(LLM):
    """Deterministic per model and prompt: ``good`` answers right, ``cheap`` gets b and c wrong, the sloppy prompt
    gets b wrong; rewordings are two fixed lines; the judge scores 5 when the answer is right, else 2. Latency and
    tokens are fixed, so two runs of the same matrix measure exactly the same. ``calls`` is shared by every model."""

    def __init__(self, model: str, calls: list):
        self.model = model
        self.calls = calls

    def complete(self, messages, **params):
        self.calls.append((self.model, [dict(m) for m in messages]))
        system, user = messages[0]["content"], messages[-1]["content"]
        if REWORD_MARK in system:
            text = "first rewording\nsecond rewording"
        elif "ANSWER" in user and "QUESTION" in user:
            answer = user.rsplit("ANSWER", 1)[1]
            text = json.dumps({"score": 5 if any(a in answer for a in RIGHT.values()) else 2, "reason": "scripted"})
        else:
            q = next(q for q in QUESTIONS if user.endswith(q["question"]))
            wrong = ("cheap" in self.model and q["id"] in "bc") or ("sloppy" in system and q["id"] == "b")
            text = "I do not know" if wrong else RIGHT[q["id"]]
        return Completion(
            text=text,
            model=self.model,
            input_tokens=len(user.split()),
            output_tokens=len(text.split()),
            cost=None,
            latency_s=0.01 * (1 + len(text)),
        )


class PerModelWorkspace(FakeWorkspace):
    def __init__(self, settings, calls: list):
        super().__init__(settings, store=_store())
        self.calls = calls

    def _build_llm(self, ls, model, client, concurrency, hint):
        return PerModelLLM(model or ls.model, self.calls)


MODELS = ["fake/good", "fake/cheap"]
OPTIONS = {"collection": "docs", "metrics": ["retrieval", "exact_match", "token_f1", "answer_relevance"], "k": 2}


@pytest.fixture
def projects(tmp_path, monkeypatch):
    """Two project folders (own history, answer log and LLM cache each) over one question set and prompt file."""
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/good")
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "2")
    monkeypatch.setenv("LLMOPS_TRACING_ENABLED", "false")
    sources = ["executor.md", "scheduler.md", "pools.md"]
    rows = [{**q, "relevant_sources": [src]} for q, src in zip(QUESTIONS, sources, strict=True)]
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "sloppy.md").write_text("---\nname: sloppy\n---\nAnswer from the context, sloppy style.\n")
    out = []
    for name in ("cli", "dag"):
        (tmp_path / name).mkdir()
        environ = {**os.environ, "LLMOPS_PROJECT_DIR": str(tmp_path / name)}
        out.append(load_settings(environ=environ, cwd=tmp_path / name).settings)
        assert out[-1].data_path.is_relative_to(tmp_path / name)
    return tmp_path, out


def test_split_matrix_equals_the_one_process_matrix(projects):
    from llmops_cli.entry.eval import evaluate_matrix, evaluate_matrix_combination, matrix_from_runs, plan_matrix_run

    tmp, (cli_settings, dag_settings) = projects
    dataset, prompts = str(tmp / "qs.jsonl"), ["default", str(tmp / "sloppy.md")]

    cli_calls: list = []
    with PerModelWorkspace(cli_settings, cli_calls) as ws:
        cli = evaluate_matrix(ws, dataset, models=MODELS, prompts=prompts, **OPTIONS)

    dag_calls: list = []
    with PerModelWorkspace(dag_settings, dag_calls) as ws:  # the plan task
        plan = json.loads(json.dumps(plan_matrix_run(ws, dataset, models=MODELS, prompts=prompts, **OPTIONS)))
    assert len(plan["combinations"]) == 4 and set(plan["contexts"]) == {q["question"] for q in QUESTIONS}
    rewordings = [c for c in dag_calls if REWORD_MARK in c[1][0]["content"]]
    assert len(rewordings) == 3 and {m for m, _ in rewordings} == {"fake/good"}  # llm.model words, once a question
    planned = len(dag_calls)
    run_ids = []
    for n in range(len(plan["combinations"])):  # one mapped task each, each with its own workspace
        with PerModelWorkspace(dag_settings, dag_calls) as ws:
            run_ids.append(evaluate_matrix_combination(ws, plan, n).run_id)
    # the combinations neither reworded nor searched again: every answer request quotes the plan's context
    assert not [c for c in dag_calls[planned:] if REWORD_MARK in c[1][0]["content"]]
    contexts = {}
    for _, messages in dag_calls[planned:]:
        user = messages[-1]["content"]
        if user.startswith("Context:"):
            contexts.setdefault(user.rsplit("Question: ", 1)[1], set()).add(user.split("\n\nQuestion: ")[0])
    assert len(contexts) == 3 and all(len(v) == 1 for v in contexts.values())
    with PerModelWorkspace(dag_settings, dag_calls) as ws:  # the reduce task, runs listed out of order
        dag = matrix_from_runs(ws, plan, list(reversed(run_ids)), outputs=[str(tmp / "dag.json")])

    assert cli.board == dag.board
    rows = {(r["model"], r["prompt"]["name"]): r for r in dag.board["rows"]}
    assert rows[("fake/good", "answer")]["rank"] == 1 and rows[("fake/cheap", "sloppy")]["rank"] == 4
    assert rows[("fake/cheap", "answer")]["metrics"]["exact_match"]["mean"] == pytest.approx(1 / 3)
    assert len({json.dumps(r["metrics"]["hit@2"]) for r in dag.board["rows"]}) == 1  # one shared search
    same = {"matrix_id", "duration_s"}
    cli_doc, dag_doc = cli.to_dict(), json.loads((tmp / "dag.json").read_text())
    assert {k: v for k, v in cli_doc.items() if k not in same} == {k: v for k, v in dag_doc.items() if k not in same}
    assert dag_doc["matrix_id"] == plan["matrix"]["id"] and dag_doc["context_usage"]["calls"] == 3


def test_a_changed_prompt_file_stops_a_planned_combination(projects):
    from llmops_cli.entry.eval import evaluate_matrix_combination, plan_matrix_run
    from llmops_cli.errors import InputError, UsageError

    tmp, (_, settings) = projects
    calls: list = []
    with PerModelWorkspace(settings, calls) as ws:
        plan = plan_matrix_run(ws, str(tmp / "qs.jsonl"), models=MODELS, prompts=[str(tmp / "sloppy.md")], **OPTIONS)
        with pytest.raises(UsageError):
            evaluate_matrix_combination(ws, plan, 2)
        (tmp / "sloppy.md").write_text("---\nname: sloppy\n---\nAnswer in one word.\n")
        with pytest.raises(InputError, match="changed since it was planned"):
            evaluate_matrix_combination(ws, plan, 0)


def _tree(finished):
    by_id = {s.context.span_id: s for s in finished}
    roots = [s for s in finished if s.parent is None]

    def root_of(s):
        while s.parent is not None:
            s = by_id[s.parent.span_id]
        return s

    return roots, root_of


def test_an_evaluation_is_one_root_span_with_the_judge_verdicts_as_events(projects, spans):
    from llmops_cli.entry.eval import evaluate, evaluate_matrix

    tmp, (settings, _) = projects
    calls: list = []
    with PerModelWorkspace(settings, calls) as ws:
        report = evaluate(ws, str(tmp / "qs.jsonl"), **OPTIONS)
    finished = spans.get_finished_spans()
    roots, root_of = _tree(finished)
    assert [r.name for r in roots] == ["llmops eval run"]
    root = roots[0]
    chats = [s for s in finished if s.name.startswith("chat ")]
    assert len(chats) == len(calls) == 3 * 3  # per question: one rewording, one answer, one verdict
    assert all(root_of(s) is root for s in finished)  # the answers' calls too, made in the answer threads
    events = [e for e in root.events if e.name == "gen_ai.evaluation.result"]
    assert len(events) == 3
    by_item = {e.attributes["llmops.eval.item_id"]: e.attributes for e in events}
    for row in report.rows:
        a = by_item[row.id]
        assert a["gen_ai.evaluation.name"] == "answer_relevance" and a["gen_ai.request.model"] == "fake/good"
        assert a["gen_ai.evaluation.score.value"] == row.metrics["answer_relevance"]
    assert root.attributes["llmops.eval.run_id"] == report.run_id
    assert not any("LocalExecutor" in json.dumps(dict(e.attributes)) for e in events)  # no answer text

    spans.clear()
    with PerModelWorkspace(settings, calls) as ws:
        rep = evaluate_matrix(ws, str(tmp / "qs.jsonl"), models=MODELS, **OPTIONS, use_cache=False)
    finished = spans.get_finished_spans()
    roots, root_of = _tree(finished)
    assert [r.name for r in roots] == ["llmops eval run"] and all(root_of(s) is roots[0] for s in finished)
    assert len([s for s in finished if s.name.startswith("chat ")]) == 3 + 2 * (3 + 3)  # shared rewordings once
    events = [e.attributes for e in roots[0].events if e.name == "gen_ai.evaluation.result"]
    assert len(events) == 6 and {e["llmops.eval.combination"] for e in events} == {e.combo.label for e in rep.entries}
    assert roots[0].attributes["llmops.eval.matrix_id"] == rep.matrix_id
