"""Model and prompt selection end to end over real HTTP: a 2 models x 2 prompts matrix on the project's Airflow-docs
questions (their pages from ../shared/corpora/airflow-docs, ingested with the real embedder into a real Chroma),
answered by the local OpenAI-compatible server that answers differently per model; the leaderboard recomputed here
from the per-question results and the server's own log; then the rating page driven in headless Chromium (5 answers
rated, blind) and the judge-vs-people agreement of those ratings."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmops_cli.core.eval.answer_metrics import token_f1
from llmops_cli.core.prompts import load_prompt
from tests.integration.airflow_docs_questions import QUESTIONS
from tests.integration.conftest import corpus
from tests.support.openai_server import TEST_API_KEY, last_user_text
from tests.unit.test_eval_cli import invoke

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

REPO = Path(__file__).resolve().parents[2]
REFERENCES = ["dynamic task mapping", "pools limit the slots", "the fernet key", "assets schedule the dag"]
PROMPTS = [REPO / "configs" / "prompts" / "answer.md", REPO / "configs" / "prompts" / "answer-detailed.md"]
DETAILED = load_prompt(PROMPTS[1])


def responder(body):
    """good-model answers with the reference (the detailed prompt adds a sentence); cheap-model half the time does
    not know; the judge scores relevance 5 when the answer holds the reference's last word, else 1; rewordings are
    two fixed lines."""
    model, user = body["model"], last_user_text(body)
    system = body["messages"][0]["content"]
    if "rewrite questions" in system:
        return "first rewording\nsecond rewording"
    if "ANSWER:" in user:
        answer = user.rsplit("ANSWER:\n", 1)[1]
        ok = any(ref.split()[-1] in answer for ref in REFERENCES)
        return json.dumps({"score": 5 if ok else 1, "reason": "scripted"})
    question = user.rsplit("Question: ", 1)[1].strip()
    n = next(i for i, (q, _) in enumerate(QUESTIONS) if q == question)
    if model == "cheap-model" and n % 2:
        return "I do not know."
    extra = " It is described in the documentation [1]." if system == DETAILED.system else " [1]"
    return REFERENCES[n] + extra


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    from llmops_cli.entry.ingest import ingest
    from llmops_cli.settings import load_settings
    from tests.support.fakes import run_step

    docs_root = corpus("airflow-docs")
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    env = {
        "LLMOPS_LLM_MODEL": "openai/good-model",
        "LLMOPS_LLM_API_BASE": openai_server.base_url,
        "LLMOPS_LLM_API_KEY": TEST_API_KEY,
        "LLMOPS_LLM_MAX_RETRIES": "0",
        "LLMOPS_LLM_REWORDINGS": "2",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # the pages that answer the first four questions (few: the real embedder reads them all on a 2-core CI machine)
    pages = [page for _, page in QUESTIONS[:4]]
    for page in pages:
        (tmp_path / "docs" / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(docs_root / page, tmp_path / "docs" / page)
    rows = [
        {"id": f"q{n}", "question": q, "relevant_sources": [page], "reference_answer": REFERENCES[n]}
        for n, (q, page) in enumerate(QUESTIONS[:4])
    ]
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = load_settings(environ=dict(os.environ), cwd=tmp_path).settings
    run_step(ingest, settings, [str(tmp_path / "docs")], collection="airflow-docs")
    openai_server.responder = responder
    openai_server.latency = lambda body: 0.12 if body.get("model") == "cheap-model" else 0.02
    return tmp_path, env


def ci95(values):
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def test_matrix_leaderboard_rating_page_and_agreement(project, openai_server, capsys):
    tmp, env = project
    args = ["qs.jsonl", "--collection", "airflow-docs", "--metrics", "retrieval,token_f1,answer_relevance", "-k", "3"]
    args += ["--model", "openai/good-model", "--model", "openai/cheap-model", "--judge-model", "openai/judge-model"]
    args += ["--prompt", str(PROMPTS[0]), "--prompt", str(PROMPTS[1]), "-o", "matrix.html", "--json"]
    code, out, err = invoke(capsys, *args)
    assert code == 0, err
    doc = json.loads(out)
    board = doc["leaderboard"]
    assert len(board["rows"]) == 4 and len(doc["runs"]) == 4

    # the context was made once per question: 4 rewording calls in all, not 4 per combination
    chats = [r.body for r in openai_server.records() if r.ok]
    assert sum("rewrite questions" in b["messages"][0]["content"] for b in chats) == 4
    # and each combination saw the same passages: every answer request for one question carries one context
    contexts: dict[str, set] = {}
    for b in chats:
        user = last_user_text(b)
        if user.startswith("Context:"):
            contexts.setdefault(user.rsplit("Question: ", 1)[1], set()).add(user.split("\n\nQuestion: ")[0])
    assert len(contexts) == 4 and all(len(v) == 1 for v in contexts.values())

    # recompute each row of the leaderboard from the side-by-side answers and the server's log
    for row in board["rows"]:
        answers = [next(a for a in q["answers"] if a["label"] == row["label"]) for q in doc["questions"]]
        f1 = [token_f1(a["answer"], q["reference_answer"]) for a, q in zip(answers, doc["questions"], strict=True)]
        mean, low, high = ci95(f1)
        got = row["metrics"]["token_f1"]
        assert got["mean"] == pytest.approx(mean) and got["n"] == 4
        if got["low"] is not None:
            assert (got["low"], got["high"]) == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))
        rel = [(5 if any(r.split()[-1] in a["answer"] for r in REFERENCES) else 1) for a in answers]
        assert row["metrics"]["answer_relevance"]["mean"] == pytest.approx(sum((s - 1) / 4 for s in rel) / 4)
        model = row["model"].split("/", 1)[1]
        system = load_prompt(PROMPTS[1] if row["prompt"]["name"] == "answer-detailed" else PROMPTS[0]).system
        sent = [b for b in chats if b["model"] == model and b["messages"][0]["content"] == system]
        assert len(sent) == 4 == row["calls"]  # one answer call per question, no more
        assert row["latency_n"] == 4 and row["latency_p50_s"] >= (0.1 if model == "cheap-model" else 0.0)
    rows = {(r["model"], r["prompt"]["name"]): r for r in board["rows"]}
    assert rows[("openai/good-model", "answer")]["metrics"]["token_f1"]["mean"] > 0.6
    assert rows[("openai/cheap-model", "answer")]["metrics"]["answer_relevance"]["mean"] == pytest.approx(0.5)
    # retrieval is the same for every combination (one shared search)
    assert len({json.dumps(r["metrics"]["hit@3"]) for r in board["rows"]}) == 1
    best = max(board["rows"], key=lambda r: r["metrics"]["token_f1"]["mean"])
    assert board["rank_by"] == "answer_relevance"  # the first answer-quality metric: retrieval is shared
    assert board["winners"]["token_f1"] == [best["label"]] and best["pareto"]
    top = max(r["metrics"]["answer_relevance"]["mean"] for r in board["rows"])
    assert board["rows"][0]["metrics"]["answer_relevance"]["mean"] == top
    assert board["cost_axis"] in ("cost", "tokens")
    page = (tmp / "matrix.html").read_text()
    assert page.count("<tr><td>q") == 4 and "<svg" in page and "I do not know." in page

    # each combination is a recorded run with its model and its prompt's name and hash
    code, runs, _ = invoke(capsys, "runs", "--json")
    recorded = {r["id"] for r in json.loads(runs)["runs"]}
    assert set(doc["runs"]) <= recorded

    # the rating page, in a real browser: five answers rated with the keyboard, blind to model and prompt
    from tests.support.browser import Browser

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmops_cli",
            "eval",
            "rate",
            str(doc["runs"][0]),
            "--web",
            "--rater",
            "ana",
            "--criteria",
            "relevance",
        ],
        cwd=tmp,
        env={**os.environ, **env, "NO_COLOR": "1"},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        deadline = time.time() + 120
        while "rating page:" not in line and time.time() < deadline:
            line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with Browser(tmp / "chromium-profile") as b:
            b.goto(url)
            b.wait("document.querySelectorAll('.answer').length === 4")
            text = b.eval("document.body.innerText")
            assert "good-model" not in text and "cheap-model" not in text and "answer-detailed" not in text

            def key(k: str) -> None:
                b.eval(f"document.dispatchEvent(new KeyboardEvent('keydown', {{key: {json.dumps(k)}}}))")

            for k in ["5", "4", "1", "2"]:  # the four answers of the first question
                key(k)
            key("Enter")
            b.wait("document.getElementById('status').textContent.startsWith('saved 4')")
            b.wait("document.getElementById('progress').textContent.startsWith('(2 of')")
            key("3")  # one answer of the second question, then finish (saves it)
            key("q")
            b.wait("document.getElementById('status').textContent.startsWith('finished')")
        assert proc.wait(30) == 0
        assert "stored 5 ratings by ana" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    from llmops_cli.core.eval.history import RunHistory

    with RunHistory(tmp / ".llmops" / "eval" / "runs.sqlite") as h:
        ratings = h.ratings(doc["runs"])
    assert len(ratings) == 5 and {r["rater"] for r in ratings} == {"ana"}
    assert sorted(r["score"] for r in ratings if r["item_id"] == "q0") == [1, 2, 4, 5]

    code, out, err = invoke(capsys, "agreement", str(doc["runs"][0]), "--json")
    rel = json.loads(out)["criteria"]["relevance"]
    assert rel["n"] == 5 and rel["judge_metric"] == "answer_relevance" and code in (0, 4)
