"""LLM-as-judge over real HTTP to the local OpenAI-compatible server, with a real Chroma collection and the real
embedder for the retrieved context; an unparseable verdict is a row error (exit 3), a re-run is served from the cache."""

import json

import pytest

from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, last_user_text

pytestmark = pytest.mark.integration

DOCS = {
    "scheduler.md": "# Scheduler\n\nThe scheduler triggers DAG runs when their schedule is due and queues their tasks.\n",
    "executor.md": "# Executors\n\nThe LocalExecutor runs tasks as subprocesses on the scheduler's machine.\n",
    "pools.md": "# Pools\n\nPools limit how many tasks run at once against one resource, such as a database.\n",
}
ROWS = [
    {"id": "s", "question": "What triggers DAG runs?", "relevant_sources": ["scheduler.md"],
     "reference_answer": "The scheduler", "answer": "The scheduler triggers DAG runs"},
    {"id": "e", "question": "Which executor runs tasks as local subprocesses?", "relevant_sources": ["executor.md"],
     "reference_answer": "The LocalExecutor", "answer": "Celery workers on Kubernetes"},
    {"id": "p", "question": "How do I limit concurrent tasks against a database?", "relevant_sources": ["pools.md"],
     "reference_answer": "Use pools", "answer": "GARBAGE-VERDICT please"},
]


def section(text: str, name: str) -> str:
    return text.split(f"{name}:\n", 1)[1].split("\n\n", 1)[0] if f"{name}:\n" in text else ""


def judge_responder(body):
    """A scripted judge that reads the prompt it was sent: faithfulness checks the answer against the CONTEXT."""
    user = last_user_text(body)
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
    from llmops_cli import pipelines
    from llmops_cli.settings import load_settings

    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    flags = {"data_dir": str(tmp_path / ".llmops"), "store.path": str(tmp_path / "chroma"), "llm.model": TEST_MODEL,
             "llm.api_base": openai_server.base_url, "llm.api_key": TEST_API_KEY, "llm.max_retries": 0}
    settings = load_settings(environ={}, cwd=tmp_path, flags=flags).settings
    pipelines.ingest(settings, [str(docs)], collection="judge-docs")
    openai_server.responder = judge_responder
    return settings


def test_judge_metrics_over_http(project, openai_server):
    from llmops_cli.core.eval.pipeline import evaluate

    rep = evaluate(project, "qs.jsonl", collection="judge-docs", metrics=["retrieval", "judge"], k=2, mode="vector", concurrency=4)
    rows = {r.id: r for r in rep.rows}
    assert rows["s"].metrics["faithfulness"] == 1.0  # supported by the retrieved scheduler.md text
    assert rows["e"].metrics["faithfulness"] == 0.0
    assert rows["s"].metrics["correctness"] == 1.0 and rows["e"].metrics["correctness"] == 0.0
    assert "correctness" not in rows["p"].metrics and "not JSON" in rows["p"].errors["correctness"]
    assert rows["p"].metrics["helpfulness"] == 0.75 and rows["p"].metrics["toxicity"] == 0.0
    assert rep.metrics["hit@2"] == 1.0  # the real retriever finds each question's document
    assert rep.error_rows == 1
    # 3 rows x 5 metrics, all over HTTP, asking for JSON
    chat = openai_server.records()
    assert len(chat) == 15 == rep.usage["calls"]
    assert all(r.body["response_format"] == {"type": "json_object"} for r in chat)
    assert rep.usage["input_tokens"] > 0
    # the re-run makes no new calls and gives the same numbers
    again = evaluate(project, "qs.jsonl", collection="judge-docs", metrics=["retrieval", "judge"], k=2, mode="vector")
    assert len(openai_server.records()) == 15
    assert again.usage["cached"] == 15 and again.usage["calls"] == 0
    assert again.metrics == rep.metrics
    assert again.run_id == rep.run_id + 1


def test_cli_exit_3_on_row_errors_and_json_document(project, openai_server, monkeypatch, capsys):
    import click
    import typer

    from llmops_cli.cli import eval_cmd
    from llmops_cli.cli.state import AppState, set_state
    from llmops_cli.errors import LlmopsError

    for key, value in {"LLMOPS_DATA_DIR": project.data_dir, "LLMOPS_STORE_PATH": project.store.path, "LLMOPS_LLM_MODEL": TEST_MODEL,
                       "LLMOPS_LLM_API_BASE": openai_server.base_url, "LLMOPS_LLM_API_KEY": TEST_API_KEY}.items():
        monkeypatch.setenv(key, value)
    set_state(AppState())
    app = typer.Typer()
    app.callback()(lambda: None)
    eval_cmd.register(app)
    code = 0
    try:
        typer.main.get_command(app).main(["eval", "qs.jsonl", "--collection", "judge-docs", "-m", "correctness,toxicity", "--json"],
                                         prog_name="llmops", standalone_mode=False)
    except LlmopsError as e:
        code, msg = int(e.exit_code), e.message
    except click.exceptions.UsageError as e:  # pragma: no cover - would be a test bug
        raise AssertionError(e.format_message()) from None
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and "1 of 3 questions had errors" in msg
    assert doc["error_rows"] == 1 and doc["metrics"]["correctness"] == pytest.approx(0.5)
    assert doc["usage"]["calls"] == 6
