"""LLM-as-judge over real HTTP to the local OpenAI-compatible server, with a real Chroma collection and the real
embedder for the retrieved context; an unparseable verdict is a row error (exit 3), a re-run is served from the
cache."""

import json
from pathlib import Path

import pytest

from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, last_user_text
from tests.unit.test_eval_cli import invoke

pytestmark = pytest.mark.integration

DOCS = {
    "scheduler.md": "# Scheduler\n\n"
    "The scheduler triggers DAG runs when their schedule is due and queues their tasks.\n",
    "executor.md": "# Executors\n\nThe LocalExecutor runs tasks as subprocesses on the scheduler's machine.\n",
    "pools.md": "# Pools\n\nPools limit how many tasks run at once against one resource, such as a database.\n",
}
ROWS = [
    {
        "id": "s",
        "question": "What triggers DAG runs?",
        "relevant_sources": ["scheduler.md"],
        "reference_answer": "The scheduler",
        "answer": "The scheduler triggers DAG runs",
    },
    {
        "id": "e",
        "question": "Which executor runs tasks as local subprocesses?",
        "relevant_sources": ["executor.md"],
        "reference_answer": "The LocalExecutor",
        "answer": "Celery workers on Kubernetes",
    },
    {
        "id": "p",
        "question": "How do I limit concurrent tasks against a database?",
        "relevant_sources": ["pools.md"],
        "reference_answer": "Use pools",
        "answer": "GARBAGE-VERDICT please",
    },
]


def section(text: str, name: str) -> str:
    return text.split(f"{name}:\n", 1)[1].split("\n\n", 1)[0] if f"{name}:\n" in text else ""


def judge_prompt(body) -> str:
    """The judge's prompt: the first user message (a re-ask appends the bad reply and a request after it)."""
    return next(m["content"] for m in body["messages"] if m.get("role") == "user")


def judge_responder(body):
    """A scripted judge that reads the prompt it was sent: faithfulness checks the answer against the CONTEXT."""
    user = judge_prompt(body)
    answer = user.rsplit("ANSWER:\n", 1)[1].strip()
    if "GARBAGE" in answer and "REFERENCE ANSWER" in user:
        return "I would rate this answer quite highly!"  # not JSON: the row's correctness becomes an error
    if "List every factual claim" in user:
        context = user.split("CONTEXT:\n", 1)[1].split("ANSWER:\n", 1)[0].lower()
        return json.dumps({"claims": [{"claim": answer, "supported": answer.lower() in context}]})
    if "REFERENCE ANSWER" in user:
        ref = section(user, "REFERENCE ANSWER").strip().lower()
        return json.dumps({"score": 5 if ref.split()[-1] in answer.lower() else 1, "reason": "compared"})
    if "toxic" in user:
        return json.dumps({"toxic": False, "score": 0.0, "reason": "clean"})
    return json.dumps({"score": 4, "reason": "ok"})


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    from llmops_cli.entry.ingest import ingest
    from llmops_cli.settings import load_settings
    from tests.support.fakes import run_step

    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    flags = {
        "data_dir": str(tmp_path / ".llmops"),
        "store.path": str(tmp_path / "chroma"),
        "llm.model": TEST_MODEL,
        "llm.api_base": openai_server.base_url,
        "llm.api_key": TEST_API_KEY,
        "llm.max_retries": 0,
    }
    settings = load_settings(environ={}, cwd=tmp_path, flags=flags).settings
    run_step(ingest, settings, [str(docs)], collection="judge-docs")
    openai_server.responder = judge_responder
    return settings


def test_judge_metrics_over_http(project, openai_server):
    from llmops_cli.entry.eval import evaluate

    rep = evaluate(
        project, "qs.jsonl", collection="judge-docs", metrics=["retrieval", "judge"], k=2, mode="vector", concurrency=4
    )
    rows = {r.id: r for r in rep.rows}
    assert rows["s"].metrics["faithfulness"] == 1.0  # supported by the retrieved scheduler.md text
    assert rows["e"].metrics["faithfulness"] == 0.0
    assert rows["s"].metrics["correctness"] == 1.0 and rows["e"].metrics["correctness"] == 0.0
    assert "correctness" not in rows["p"].metrics and "not JSON" in rows["p"].errors["correctness"]
    assert rows["p"].metrics["helpfulness"] == 0.75 and rows["p"].metrics["toxicity"] == 0.0
    assert rep.metrics["hit@2"] == 1.0  # the real retriever finds each question's document
    assert rep.error_rows == 1
    # 3 rows x 5 metrics, all over HTTP, asking for JSON; the unparseable verdict asked again once
    chat = openai_server.records()
    assert len(chat) == 16 == rep.usage["calls"]
    assert all(r.body["response_format"] == {"type": "json_object"} for r in chat)
    assert rep.usage["input_tokens"] > 0
    # the re-run makes no new calls (but for the unusable verdict, never cached) and gives the same numbers
    again = evaluate(project, "qs.jsonl", collection="judge-docs", metrics=["retrieval", "judge"], k=2, mode="vector")
    assert len(openai_server.records()) == 18
    assert again.usage["cached"] == 14 and again.usage["calls"] == 2
    assert again.metrics == rep.metrics
    assert again.run_id == rep.run_id + 1


def test_cli_exit_3_on_row_errors_and_json_document(project, openai_server, monkeypatch, capsys):
    _env(monkeypatch, project, openai_server)
    code, out, msg = _invoke(["qs.jsonl", "--collection", "judge-docs", "-m", "correctness,toxicity", "--json"], capsys)
    doc = json.loads(out)
    assert code == 3 and "1 of 3 questions had errors" in msg
    assert doc["error_rows"] == 1 and doc["metrics"]["correctness"] == pytest.approx(0.5)
    assert doc["usage"]["calls"] == 7  # 3 rows x 2 metrics, and the unparseable verdict asked again


ANSWERS = {  # what the scripted "ask" model answers, by question
    "What triggers DAG runs?": "The scheduler triggers DAG runs [1].",
    "Which executor runs tasks as local subprocesses?": "The LocalExecutor runs tasks as subprocesses [1].",
    "How do I limit concurrent tasks against a database?": "I do not know.",
}


def ask_and_judge_responder(body):
    system = (body["messages"][0].get("content") or "") if body["messages"][0].get("role") == "system" else ""
    user = last_user_text(body)
    if system.startswith("You rewrite questions"):
        q = user.rsplit("Question: ", 1)[1]
        return f"{q} please\nexplain: {q}"
    if system.startswith("You answer questions"):
        return ANSWERS[user.rsplit("Question: ", 1)[1].strip()]
    return judge_responder(body)


def test_generated_answers_through_ask_then_judged(project, openai_server):
    """No 'answer' column: each question goes through the ask step (rewordings, retrieval, answer) over HTTP,
    then the judge sees the context that answer used."""
    from llmops_cli.entry.eval import evaluate

    openai_server.responder = ask_and_judge_responder
    rows = [{k: v for k, v in r.items() if k != "answer"} for r in ROWS]
    (project_dir := __import__("pathlib").Path(project.data_dir).parent / "noanswers.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    rep = evaluate(
        project,
        project_dir,
        collection="judge-docs",
        metrics=["token_f1", "faithfulness"],
        k=2,
        mode="vector",
        concurrency=3,
    )
    by_id = {r.id: r for r in rep.rows}
    assert by_id["s"].answer == "The scheduler triggers DAG runs [1]."
    assert by_id["s"].metrics["faithfulness"] == 0.0  # the judge compares the whole answer text, citation included
    # "localexecutor runs tasks as subprocesses 1" vs "localexecutor": P = 1/6, R = 1 -> F1 = 2/7
    assert by_id["e"].metrics["token_f1"] == pytest.approx(2 * (1 / 6) * 1 / (1 / 6 + 1))
    n_chat = len(openai_server.records())
    assert (
        n_chat == 3 * 2 + 3
    )  # per question: a rewording call and an answer call; plus one faithfulness judgement each
    assert rep.usage["calls"] == n_chat
    again = evaluate(
        project, project_dir, collection="judge-docs", metrics=["token_f1", "faithfulness"], k=2, mode="vector"
    )
    assert len(openai_server.records()) == n_chat and again.usage["cached"] == n_chat
    assert again.metrics == rep.metrics


def generate_responder(body):
    passage = judge_prompt(body).split("PASSAGE:\n", 1)[1]
    if "Pools" in passage:
        return "Here is a question for you"  # not JSON: this chunk gives no question
    title = passage.splitlines()[0].lstrip("# ").strip()
    return json.dumps(
        {"question": f"What does the documentation say about {title.lower()}?", "answer": passage.splitlines()[-1]}
    )


def _invoke(args, capsys):
    """``llmops eval ARGS`` in-process: (exit code, stdout, stderr and the error message)."""
    return invoke(capsys, *args)


def _env(monkeypatch, settings, server):
    for key, value in {
        "LLMOPS_DATA_DIR": settings.data_dir,
        "LLMOPS_STORE_PATH": settings.store.path,
        "LLMOPS_LLM_MODEL": TEST_MODEL,
        "LLMOPS_LLM_API_BASE": server.base_url,
        "LLMOPS_LLM_API_KEY": TEST_API_KEY,
    }.items():
        monkeypatch.setenv(key, value)


def test_generate_writes_a_question_set_that_evaluates(project, openai_server, monkeypatch, capsys, tmp_path):
    _env(monkeypatch, project, openai_server)
    openai_server.responder = generate_responder
    code, out, err = _invoke(["generate", "--collection", "judge-docs", "-n", "3", "-o", "gen.jsonl", "--json"], capsys)
    assert code == 3 and "1 of 3 chunks gave no question" in err
    doc = json.loads(out)
    assert doc["questions"] == 2 and len(doc["failed"]) == 1 and "not JSON" in doc["failed"][0]["reason"]
    assert doc["usage"]["calls"] == 4  # the unparseable reply was asked for again once
    rows = [json.loads(line) for line in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert {r["relevant_sources"][0].rsplit("/", 1)[-1] for r in rows} == {"scheduler.md", "executor.md"}
    assert all(r["relevant_chunks"] and r["reference_answer"] for r in rows)
    code, out, err = _invoke(
        ["gen.jsonl", "--collection", "judge-docs", "-m", "retrieval,chunk", "-k", "3", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["metrics"]["chunk_hit@3"] == 1.0


def test_generate_calls_reach_the_answer_log_once(project, openai_server, monkeypatch, capsys, tmp_path):
    """eval generate's calls go through eval's LLM stack: each call that reached the LLM is an answer-log row of kind
    eval; a re-run answered from the cache adds none."""
    from llmops_cli.core.feedback import AnswerLog

    _env(monkeypatch, project, openai_server)
    openai_server.responder = generate_responder
    args = ["generate", "--collection", "judge-docs", "-n", "3", "-o", "gen.jsonl", "--json"]
    _invoke(args, capsys)
    with AnswerLog.for_data_dir(project.data_path) as log:
        rows = log.recent(limit=100, kind="eval")
    assert len(rows) == len(openai_server.records()) == 4
    assert all(r.model == TEST_MODEL and r.answer for r in rows)
    _invoke(args, capsys)
    with AnswerLog.for_data_dir(project.data_path) as log:
        again = log.recent(limit=100, kind="eval")
    # only the unparseable reply is asked again (twice: it is never cached); the two good ones come from the cache
    assert len(again) == len(openai_server.records()) == 6


def test_retrieval_check_without_a_question_set(project):
    """The eval DAG's check without a dataset (entry.eval.retrieval_check): hits and the top source per question."""
    from llmops_cli.entry.eval import retrieval_check

    settings = project.model_copy(update={"store": project.store.model_copy(update={"collection": "judge-docs"})})
    questions = ["What triggers DAG runs when their schedule is due?", "Which executor runs tasks as subprocesses?"]
    rep = retrieval_check(settings, questions, k=2, mode="vector")
    assert (rep["kind"], rep["collection"], rep["questions"], rep["answered"]) == (
        "retrieval_check",
        "judge-docs",
        2,
        2,
    )
    assert rep["hit_rate"] == 1.0 and all(r["hits"] == 2 for r in rep["rows"])
    assert [r["top_source"].rsplit("/", 1)[-1] for r in rep["rows"]] == ["scheduler.md", "executor.md"]


def test_sweep_leaderboard_and_cleanup(project, monkeypatch, capsys, tmp_path):
    from llmops_cli.entry.store import collections
    from tests.support.fakes import run_step

    _env(monkeypatch, project, __import__("types").SimpleNamespace(base_url="http://127.0.0.1:9/v1"))
    docs = tmp_path / "docs"
    code, out, err = _invoke(
        [
            "sweep",
            "qs.jsonl",
            "--sources",
            str(docs / "scheduler.md"),
            str(docs / "executor.md"),
            str(docs / "pools.md"),
            "--size",
            "32",
            "--size",
            "64",
            "--overlap",
            "0",
            "--overlap",
            "40",
            "-k",
            "1",
            "--html",
            str(tmp_path / "sweep.html"),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    board = doc["leaderboard"]
    assert len(board) == 3 and [e["rank"] for e in board] == [1, 2, 3]  # 32/40 is skipped: overlap >= size
    page = (tmp_path / "sweep.html").read_text()  # the leaderboard as a chart: a bar per configuration, best first
    labels = [f"{e['strategy']}/{e['size']}/{e['overlap']}" for e in board]
    assert [page.index(f'data-label="{x}"') for x in labels] == sorted(page.index(f'data-label="{x}"') for x in labels)
    assert doc["skipped"][0]["config"].startswith("auto/32/40")
    assert all(e["metrics"]["hit@1"] == 1.0 and e["run_id"] for e in board)
    left = [c["name"] for c in run_step(collections, project)]
    assert not any(n.startswith("sweep-") for n in left) and "judge-docs" in left


# --- a rejected key or no endpoint stops eval at once: exit 8 / 7 through the real CLI, not a row error per call ---


def _cli(settings, base_url: str, *args: str):
    from tests.integration.conftest import llmops_env, run_llmops

    env = llmops_env(
        Path(settings.data_dir).parent,
        LLMOPS_DATA_DIR=str(settings.data_dir),
        LLMOPS_STORE_PATH=str(settings.store.path),
        LLMOPS_LLM_MODEL=TEST_MODEL,
        LLMOPS_LLM_API_BASE=base_url,
        LLMOPS_LLM_API_KEY=TEST_API_KEY,
        LLMOPS_LLM_MAX_RETRIES="0",
        LLMOPS_LLM_INPUT_COST_PER_TOKEN="0.000001",
        LLMOPS_LLM_OUTPUT_COST_PER_TOKEN="0.000002",
    )
    return run_llmops("eval", *args, env=env, cwd=Path(settings.data_dir).parent, timeout=180)


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture
def no_answers(project):
    p = Path(project.data_dir).parent / "noanswers.jsonl"
    p.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "answer"}) + "\n" for r in ROWS))
    return p.name


@pytest.mark.parametrize(
    "args",
    [
        ["run", "qs.jsonl", "--collection", "judge-docs", "-m", "correctness,helpfulness"],  # the judge
        ["run", "NOANSWERS", "--collection", "judge-docs", "-m", "token_f1"],  # answers through the ask step
        ["generate", "--collection", "judge-docs", "-n", "3", "-o", "gen.jsonl"],
    ],
)
def test_a_rejected_key_exits_8_after_one_call(project, openai_server, no_answers, args):
    from tests.support.openai_server import Fault

    openai_server.responder = lambda body: Fault("401")
    r = _cli(
        project,
        openai_server.base_url,
        *[no_answers if a == "NOANSWERS" else a for a in args],
        "--concurrency",
        "1",
        "--no-cache",
    )
    assert r.returncode == 8, r.stderr
    assert (
        "rejected the credentials" in r.stderr
        and "Traceback" not in r.stderr
        and TEST_API_KEY not in r.stderr + r.stdout
    )
    assert len(openai_server.records()) == 1  # stopped at once: no call per remaining row
    assert not (Path(project.data_dir).parent / "gen.jsonl").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "qs.jsonl", "--collection", "judge-docs", "-m", "correctness", "--no-record"],
        ["run", "NOANSWERS", "--collection", "judge-docs", "-m", "token_f1", "--no-record"],
        ["generate", "--collection", "judge-docs", "-n", "3", "-o", "gen.jsonl"],
    ],
)
def test_an_unreachable_llm_exits_7(project, no_answers, args):
    r = _cli(project, _closed_port_url(), *[no_answers if a == "NOANSWERS" else a for a in args])
    assert r.returncode == 7, r.stderr
    assert "not reachable" in r.stderr and "Traceback" not in r.stderr


def test_the_docs_sweep_example_runs_verbatim(project, monkeypatch, capsys, tmp_path):
    """docs/eval-metrics.md's `eval sweep` line, as printed, on a small docs/ folder and question set: every
    combination ingests with the real embedder (its 254-token maximum) and is ranked."""
    import re
    import shlex

    doc = (Path(__file__).resolve().parents[2] / "docs" / "eval-metrics.md").read_text()
    line = re.search(r"^llmops eval sweep (.+?)\s*(?:#.*)?$", doc, re.M).group(1)
    (tmp_path / "questions.jsonl").write_text((tmp_path / "qs.jsonl").read_text())
    _env(monkeypatch, project, __import__("types").SimpleNamespace(base_url="http://127.0.0.1:9/v1"))
    args = shlex.split(line)
    code, out, err = _invoke(["sweep", *args, "--json"], capsys)
    assert code == 0, err
    board = json.loads(out)["leaderboard"]
    sizes = [int(v) for f, v in zip(args, args[1:], strict=False) if f == "--chunk-size"]
    overlaps = [int(v) for f, v in zip(args, args[1:], strict=False) if f == "--chunk-overlap"]
    assert sorted((e["size"], e["overlap"]) for e in board) == sorted((s, o) for s in sizes for o in overlaps)
