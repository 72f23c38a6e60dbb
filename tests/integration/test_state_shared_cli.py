"""The CLI on a shared state database (``state.url``): what one project folder records, another one sees.

Two folders with their own ``data_dir`` (two laptops, or a laptop and a worker) share one embedded store, given by
absolute path, and one PostgreSQL state database (``llmops_cli.devstack.postgres``): an answer recorded by
``llmops ask`` in the first is listed by ``llmops history`` in the second, and a vote given there is seen in the
first. Neither folder gets an answer-log file. An unreachable database is one line naming state.url, exit 7.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_cli.devstack import free_port
from tests.integration.conftest import llmops_env, run_llmops
from tests.integration.test_state_postgres import PASSWORD, fresh_database, pg_server  # noqa: F401  (fixture)
from tests.support.openai_server import last_user_text, llm_env_for

pytestmark = pytest.mark.integration

QUESTION = "How do I rotate the frobnicator credentials?"
ANSWER = "Run `frob rotate --all` [1]; the old credentials stop working after ten minutes [1]."


def responder(body: dict) -> str:
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    if system.startswith("You rewrite questions"):
        return "frobnicator credential rotation"
    return ANSWER if QUESTION in last_user_text(body) else "I do not know."


def test_an_unreachable_state_database_is_exit_7_naming_state_url_without_the_password(tmp_path):
    url = f"postgresql://llmops:{PASSWORD}@127.0.0.1:{free_port()}/state"
    r = run_llmops("history", "--json", env=llmops_env(tmp_path, LLMOPS_STATE_URL=url), cwd=tmp_path, timeout=120)
    assert r.returncode == 7, r.stderr
    assert "state.url" in r.stderr and "127.0.0.1" in r.stderr
    assert PASSWORD not in r.stderr + r.stdout and "Traceback" not in r.stderr
    # under --json the error is also a document on stdout (docs/json.md), the password masked there too
    assert json.loads(r.stdout)["exit_code"] == 7
    assert not (tmp_path / "state").exists()  # nothing written under data_dir either


def test_an_answer_asked_in_one_folder_is_seen_and_rated_from_another(pg_server, tmp_path, openai_server):  # noqa: F811
    openai_server.responder = responder
    url = fresh_database(pg_server)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frobnicator.md").write_text(
        "# Frobnicator\n\n## Rotating credentials\n\nRotate them with `frob rotate --all`; the old ones stop working "
        "after ten minutes.\n",
        encoding="utf-8",
    )
    laptop, worker = tmp_path / "laptop", tmp_path / "worker"
    laptop.mkdir()
    worker.mkdir()

    def env_in(folder: Path, data_dir: str) -> dict[str, str]:
        return llmops_env(
            tmp_path,
            LLMOPS_STATE_URL=url,
            LLMOPS_DATA_DIR=data_dir,  # relative: each folder its own data_dir
            LLMOPS_STORE_PATH=str(tmp_path / "chroma"),  # one embedded store, by absolute path
            LLMOPS_STORE_COLLECTION="docs",
            LLMOPS_LLM_REWORDINGS="1",
            **llm_env_for(openai_server),
        )

    env_a, env_b = env_in(laptop, ".llmops-laptop"), env_in(worker, "worker-state")

    r = run_llmops("ingest", str(docs), env=env_a, cwd=laptop)
    assert r.returncode == 0, r.stderr
    r = run_llmops("ask", QUESTION, "--json", env=env_a, cwd=laptop)
    assert r.returncode == 0, r.stderr
    asked = json.loads(r.stdout)
    answer_id = asked["answer_id"]
    assert asked["answer"] == ANSWER and answer_id

    # the other folder, with another data_dir, lists it from the shared database
    r = run_llmops("history", "--json", env=env_b, cwd=worker)
    assert r.returncode == 0, r.stderr
    answers = {a["id"]: a for a in json.loads(r.stdout)["answers"]}
    assert answers[answer_id]["question"] == QUESTION and answers[answer_id]["answer"] == ANSWER

    # a vote given there is seen in the first folder
    r = run_llmops(
        "feedback", "rate", answer_id, "up", "-m", "exactly right", "--by", "reviewer", env=env_b, cwd=worker
    )
    assert r.returncode == 0, r.stderr
    r = run_llmops("history", "show", answer_id, "--json", env=env_a, cwd=laptop)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert [(x["rating"], x["comment"], x["rater"]) for x in shown["ratings"]] == [("up", "exactly right", "reviewer")]

    # the state is in the database only: no answer log, eval history or LLM cache file in either data_dir
    for data_dir in (laptop / ".llmops-laptop", worker / "worker-state"):
        assert not list(data_dir.rglob("*.sqlite")), data_dir
