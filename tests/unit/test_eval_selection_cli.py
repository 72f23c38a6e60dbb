"""Model and prompt selection through the CLI in a FakeWorkspace (memory store, scripted LLM, the real history):
prompts recorded by name and hash, the matrix and its leaderboard, blessing and the per-question gate (exit 4 on a
planted regression, 3 when rows merely errored), ratings from a file and in the terminal, and agreement."""

from __future__ import annotations

import json

import pytest

from llmops_cli.core.prompts import default_prompt, load_prompt
from tests.support.fakes import FakeEmbedder, MemoryStore, ScriptedLLM, use_fake_workspaces
from tests.unit.test_eval_cli import invoke
from tests.unit.test_eval_workspace import PASSAGES

QUESTIONS = [
    {"id": "a", "question": "Which executor runs tasks locally?", "reference_answer": "LocalExecutor"},
    {"id": "b", "question": "What triggers DAG runs?", "reference_answer": "the scheduler"},
    {"id": "c", "question": "What limits concurrent tasks?", "reference_answer": "pools"},
]
RIGHT = {"a": "LocalExecutor", "b": "the scheduler", "c": "pools"}


class ScriptedByPrompt(ScriptedLLM):
    """Answers each question right with the built-in prompt; the 'sloppy' prompt gets question b wrong; a question
    listed in ``fail`` raises (a failed call); judge requests get a 1-5 score by the answer's length."""

    def __init__(self):
        super().__init__()
        self.fail: set[str] = set()

    def complete(self, messages, **params):
        self.history.append(list(messages))
        user = messages[-1]["content"]
        if "ANSWER" in user and "QUESTION" in user:  # a judge verdict
            score = 5 if "LocalExecutor" in user or "pools" in user else 2
            return self._reply(json.dumps({"score": score, "reason": "scripted"}), messages)
        for q in QUESTIONS:
            if user.endswith(q["question"]):
                if q["id"] in self.fail:
                    raise RuntimeError(f"scripted failure on {q['id']}")
                sloppy = "sloppy" in messages[0]["content"] and q["id"] == "b"
                return self._reply("the triggerer" if sloppy else RIGHT[q["id"]], messages)
        return self._reply(self.default, messages)

    def _reply(self, text, messages):
        from llmops_cli.core.ports import Completion

        return Completion(text=text, model=self.model, input_tokens=10, output_tokens=len(text.split()), cost=0.0)


def _store() -> MemoryStore:
    store = MemoryStore()
    store.ensure_collection("docs")
    names = sorted(PASSAGES)
    texts = [PASSAGES[n] for n in names]
    store.upsert(
        "docs", [f"{n}#0" for n in names], list(FakeEmbedder().embed(texts)), texts, [{"source": n} for n in names]
    )
    return store


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/llm")
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "0")
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS))
    (tmp_path / "sloppy.md").write_text("---\nname: sloppy\n---\nAnswer from the context, sloppy style.\n")
    llm = ScriptedByPrompt()
    use_fake_workspaces(monkeypatch, store=_store(), llm=llm)
    return tmp_path, llm


def run_json(capsys, *args):
    code, out, err = invoke(capsys, *args, "--json")
    return code, (json.loads(out) if out.strip() else None), err


def test_bless_then_gate_per_question(project, capsys):
    tmp, llm = project
    common = ["qs.jsonl", "--collection", "docs", "-m", "exact_match,token_f1", "--no-cache"]
    code, base, err = run_json(capsys, *common)
    assert code == 0, err
    assert (
        base["config"]["prompt"]["sha256"] == default_prompt().sha256 and base["config"]["prompt"]["name"] == "answer"
    )
    code, doc, _ = run_json(capsys, "bless", str(base["run_id"]), "--note", "shipped")
    assert code == 0 and doc["run_id"] == base["run_id"] and doc["replaced"] is None
    # a planted regression: the sloppy prompt gets b wrong -> b passed and fails now -> exit 4
    code, new, err = run_json(capsys, *common, "--prompt", "sloppy.md", "--against-baseline")
    assert code == 4, err
    assert new["config"]["prompt"] == load_prompt(tmp / "sloppy.md").ref() | {"source": "sloppy.md"}
    c = new["comparison"]
    assert c["against_blessed"] and c["base"]["run_id"] == base["run_id"]
    assert {(f["metric"], f["id"]) for f in c["question_regressions"]} == {("exact_match", "b"), ("token_f1", "b")}
    assert "regressed against baseline blessed run" in err
    # rows that merely errored: reported (exit 3), compared over the questions both runs scored, no regression
    llm.fail = {"a"}
    code, errored, err = run_json(capsys, *common, "--against-baseline")
    assert code == 3, err
    assert errored["comparison"]["regressions"] == [] and errored["error_rows"] == 1
    assert errored["comparison"]["significance"]["exact_match"]["n_paired"] == 2
    code, listed, _ = run_json(capsys, "bless", "--list")
    assert [b["run_id"] for b in listed["blessed"]] == [base["run_id"]]


def test_against_baseline_without_a_blessed_run_is_exit_9(project, capsys):
    code, _, err = invoke(capsys, "qs.jsonl", "--collection", "docs", "-m", "exact_match", "--against-baseline")
    assert code == 9 and "no blessed baseline" in err and "llmops eval bless" in err


def test_matrix_leaderboard_rate_and_agreement(project, capsys, monkeypatch):
    tmp, llm = project
    args = ["qs.jsonl", "--collection", "docs", "-m", "exact_match,answer_relevance", "--prompt", "default"]
    code, doc, err = run_json(capsys, *args, "--prompt", "sloppy.md", "-o", "matrix.html")
    assert code == 0, err
    board = doc["leaderboard"]
    by_prompt = {r["prompt"]["name"]: r for r in board["rows"]}
    assert by_prompt["answer"]["metrics"]["exact_match"]["mean"] == 1.0
    assert by_prompt["sloppy"]["metrics"]["exact_match"]["mean"] == pytest.approx(2 / 3)
    assert board["winners"]["exact_match"] == [by_prompt["answer"]["label"]] and by_prompt["answer"]["rank"] == 1
    # the same context per question: one search per question for both prompts (no rewordings here)
    assert len(doc["questions"]) == 3 and all(len(q["answers"]) == 2 for q in doc["questions"])
    page = (tmp / "matrix.html").read_text()
    assert "<svg" in page and "the triggerer" in page and "Pareto" in page
    runs = doc["runs"]
    # ratings from a file, then in the terminal (blind letters), for the whole matrix
    (tmp / "ratings.csv").write_text(
        "run_id,item_id,rater,criterion,score,comment\n"
        + "".join(f"{runs[0]},{q},ana,relevance,{s},\n" for q, s in [("a", 5), ("b", 2), ("c", 5)])
    )
    code, stored, err = run_json(capsys, "rate", str(runs[0]), "--from", "ratings.csv")
    assert code == 0 and stored["stored"] == 3, err
    # the scripted judge: relevance 5 for a and c, 2 for b (the people's scores exactly): full agreement
    code, agree, err = run_json(capsys, "agreement", str(runs[0]), "--min-kappa", "1")
    assert code == 0, err
    rel = agree["criteria"]["relevance"]
    assert rel["n"] == 3 and rel["exact_agreement"] == 1.0 and rel["weighted_kappa"] == pytest.approx(1.0)
    # a person who disagrees on c: kappa falls under the bound -> exit 4 with the reason
    (tmp / "more.jsonl").write_text(
        json.dumps({"run_id": runs[0], "item_id": "c", "rater": "cy", "criterion": "relevance", "score": 1}) + "\n"
    )
    assert run_json(capsys, "rate", str(runs[0]), "--from", "more.jsonl")[0] == 0
    code, agree, err = run_json(capsys, "agreement", str(runs[0]), "--min-kappa", "0.9")
    assert code == 4 and "disagrees with people on relevance" in err
    assert agree["criteria"]["relevance"]["confusion"]["table"][2][4] == 1  # people 3 (5 and 1 averaged), judge 5
    # in the terminal: A's relevance 4, the rest skipped, a comment, then quit at the next question
    answers = iter(["4", "", "fine", "", "", "", "q"])  # A: relevance, tone, comment; B: the same; then quit
    monkeypatch.setattr("click.termui.visible_prompt_func", lambda prompt="": next(answers))
    code, rated, err = run_json(capsys, "rate", str(runs[1]), "--rater", "bo", "--criteria", "relevance,tone")
    assert code == 0 and rated["stored"] == 1 and rated["runs"] == runs, err
    code, _, _ = invoke(capsys, "export", str(runs[0]), "-o", "run.json")
    exported = json.loads((tmp / "run.json").read_text())
    assert {(h["rater"], h["item_id"], h["score"]) for h in exported["human_ratings"]} >= {("ana", "a", 5)}
    from llmops_cli.core.eval.history import RunHistory

    with RunHistory(tmp / ".llmops" / "eval" / "runs.sqlite") as h:
        bo = [r for r in h.ratings(runs) if r["rater"] == "bo"]
    assert [(r["item_id"], r["criterion"], r["score"], r["comment"]) for r in bo] == [("a", "relevance", 4, "fine")]


def test_feedback_agreement_needs_votes_and_one_source(project, capsys):
    code, _, err = invoke(capsys, "agreement", "--feedback")
    assert code == 2 and "no reviewed answer has up/down votes" in err
    # the hint names a command that exists (`llmops rate` does not)
    assert "llmops feedback ANSWER_ID up|down" in err and "llmops rate" not in err
    code, _, err = invoke(capsys, "agreement")
    assert code == 2 and "or pass --feedback" in err


def test_offline_toxicity_needs_no_llm(project, capsys, tmp_path):
    pytest.importorskip("better_profanity")
    rows = [
        {"id": "x", "question": "Q1?", "answer": "Use pools."},
        {"id": "y", "question": "Q2?", "answer": "What a damn stupid question."},
    ]
    (tmp_path / "given.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, doc, err = run_json(capsys, "given.jsonl", "-m", "toxicity_wordlist", "--fail-under", "toxicity_wordlist=0.4")
    assert code == 4, err  # half the answers are flagged: above the 0.4 bound (lower is better)
    assert doc["metrics"] == {"toxicity_wordlist": 0.5} and doc["usage"]["calls"] == 0


def test_matrix_task_by_task_and_its_leaderboard_from_the_history(project, capsys):
    """The DAG's way: combinations planned up front, each evaluated as its own task, ranked from the recorded runs;
    the same leaderboard as the one-process matrix (same answers, same scores)."""
    from llmops_cli.entry.eval import evaluate, matrix_combinations, matrix_leaderboard
    from llmops_cli.settings import load_settings
    from tests.support.fakes import FakeWorkspace

    tmp, llm = project
    combos = matrix_combinations(["fake/llm"], ["default", str(tmp / "sloppy.md")])
    assert [c["prompt"] for c in combos] == [None, str(tmp / "sloppy.md")]
    assert len({c["matrix"]["id"] for c in combos}) == 1
    settings = load_settings(environ=dict(__import__("os").environ), cwd=tmp).settings
    with FakeWorkspace(settings, store=_store(), llm=llm) as ws:
        runs = [evaluate(ws, "qs.jsonl", collection="docs", metrics=["exact_match"], **c).run_id for c in combos]
        rep = matrix_leaderboard(ws, str(runs[1]))
    board = rep.board
    assert [r["run_id"] for r in board["rows"]] == runs  # the built-in prompt gets all three right: first
    assert [r["prompt"]["name"] for r in board["rows"]] == ["answer", "sloppy"]
    assert board["rows"][1]["metrics"]["exact_match"]["mean"] == pytest.approx(2 / 3)
    assert board["rows"][0]["calls"] == 3  # the answers' own usage, recorded with the run


def test_matrix_cost_counts_cached_answers_at_what_they_cost(project, capsys):
    """Answers cached by an earlier run made the combination look free (tokens 0, $0) and put it alone on the
    Pareto front; the leaderboard compares what each combination's answers cost, cached or not."""
    tmp, llm = project
    code, single, err = run_json(capsys, "qs.jsonl", "--collection", "docs", "-m", "exact_match")
    assert code == 0 and single["usage"]["answers"]["calls"] == 3, err
    args = ["qs.jsonl", "--collection", "docs", "-m", "exact_match", "--prompt", "default", "--prompt", "sloppy.md"]
    code, doc, err = run_json(capsys, *args)
    assert code == 0, err
    by_prompt = {r["prompt"]["name"]: r for r in doc["leaderboard"]["rows"]}
    cached, fresh = by_prompt["answer"], by_prompt["sloppy"]
    assert cached["calls"] == 0 and cached["cached"] == 3 and fresh["calls"] == 3
    assert cached["input_tokens"] == fresh["input_tokens"] == 30  # 10 a call, as the scripted LLM reports
    assert cached["tokens"] == single["usage"]["answers"]["input_tokens"] + single["usage"]["answers"]["output_tokens"]
    assert cached["cost"] == 0.0 and doc["leaderboard"]["cost_axis"] == "cost"


def test_imported_ratings_must_name_a_question_of_the_run(project, capsys):
    """A typo'd item_id was stored ("stored 1 ratings"), never matched an answer, and still counted in agreement's
    ratings; now the file is refused (exit 2) naming the row, and nothing of it is stored."""
    tmp, _ = project
    code, single, err = run_json(capsys, "qs.jsonl", "--collection", "docs", "-m", "exact_match")
    assert code == 0, err
    run = single["run_id"]
    rows = [{"run_id": run, "item_id": q, "rater": "ana", "criterion": "relevance", "score": 4} for q in ("a", "nope")]
    (tmp / "typo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = invoke(capsys, "rate", str(run), "--from", "typo.jsonl")
    assert code == 2 and f"typo.jsonl row 2: run {run} has no question 'nope'" in err and "a, b, c" in err, err
    from llmops_cli.core.eval.history import RunHistory

    with RunHistory(tmp / ".llmops" / "eval" / "runs.sqlite") as h:
        assert h.ratings([run]) == []


def test_a_matrix_rank_by_typo_fails_before_any_work(project, capsys):
    """--rank-by was checked only once the leaderboard was drawn: every answer and verdict paid for, the runs
    recorded, then exit 2 and no leaderboard."""
    tmp, llm = project
    args = ["qs.jsonl", "--collection", "docs", "-m", "exact_match", "--prompt", "default", "--prompt", "sloppy.md"]
    code, _, err = invoke(capsys, *args, "--rank-by", "exact_mach")
    assert code == 2 and "--rank-by exact_mach" in err and "did you mean exact_match" in err, err
    assert llm.history == [] and not (tmp / ".llmops" / "eval" / "runs.sqlite").exists()


def test_rating_in_the_terminal_stops_at_end_of_input_and_ctrl_c_is_an_interruption(project, capsys, monkeypatch):
    """Ctrl-D (or a closed stdin) at a rating prompt was "internal error: Abort" (exit 1): click's Abort is not
    Typer's. End of input now quits as q does (what was rated is kept); Ctrl-C is an interruption (exit 130)."""
    code, single, err = run_json(capsys, "qs.jsonl", "--collection", "docs", "-m", "exact_match")
    assert code == 0, err
    run = str(single["run_id"])
    replies = iter(["5", "fine"])  # question a: relevance 5, a comment; then the input ends

    def reply(prompt=""):
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("click.termui.visible_prompt_func", reply)
    code, rated, err = run_json(capsys, "rate", run, "--rater", "ana", "--criteria", "relevance")
    assert code == 0 and rated["stored"] == 1, err

    def interrupt(prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr("click.termui.visible_prompt_func", interrupt)
    code, _, err = invoke(capsys, "rate", run, "--rater", "bo", "--criteria", "relevance")
    assert code == 130 and "Abort" not in err, err  # app.main() adds "interrupted; work already written is kept"


def test_imported_ratings_are_for_the_run_being_rated(project, capsys):
    """`eval rate RUN --from FILE` ignored RUN: a file of another run's ratings was stored for that other run."""
    tmp, _ = project
    runs = []
    for _ in range(2):
        code, doc, err = run_json(capsys, "qs.jsonl", "--collection", "docs", "-m", "exact_match")
        assert code == 0, err
        runs.append(doc["run_id"])
    row = {"run_id": runs[0], "item_id": "a", "rater": "ana", "criterion": "relevance", "score": 4}
    (tmp / "r.jsonl").write_text(json.dumps(row) + "\n")
    code, _, err = invoke(capsys, "rate", str(runs[1]), "--from", "r.jsonl")
    assert code == 2 and f"r.jsonl row 1: run_id {runs[0]} is not the run being rated ({runs[1]})" in err, err
    assert f"llmops eval rate {runs[0]} --from r.jsonl" in err
    code, stored, err = run_json(capsys, "rate", str(runs[0]), "--from", "r.jsonl")
    assert code == 0 and stored["stored"] == 1, err


def test_the_rating_page_on_a_port_in_use_is_a_conflict_not_an_internal_error():
    """`eval rate RUN --web --port P` with P taken: 'internal error: OSError: [Errno 98] Address already in use'."""
    import socket

    from llmops_cli.cli.rating_page import serve_rating_page
    from llmops_cli.errors import ConflictError

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConflictError, match=f"127.0.0.1:{port}: the port is in use") as e:
            serve_rating_page([], ["relevance"], "ana", store=lambda r: 0, port=port, announce=lambda m: None)
    assert int(e.value.exit_code) == 10 and "--port 0" in e.value.hint


def test_the_rating_page_port_is_checked_as_a_flag(project, capsys):
    """--port 70000: 'internal error: OverflowError: bind(): port must be 0-65535' (exit 1)."""
    from typer._click.exceptions import BadParameter  # Typer's own click: app.main() makes it exit 2

    with pytest.raises(BadParameter, match="65535"):
        invoke(capsys, "rate", "1", "--rater", "ana", "--web", "--port", "70000")
