"""The local RAG loop end to end, as a user runs it: real embedding model, real Chroma, real HTTP to an
OpenAI-compatible server; `llmops` runs as a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, llmops_env, run_llmops

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    return tmp_path, docs


def test_ingest_is_incremental_and_query_finds_the_page(project):
    tmp, docs = project
    env = llmops_env(tmp)
    r = run_llmops("ingest", str(docs), "--collection", "proj", "--json", env=env)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["sources"]["new"] == len(list(docs.glob("*.md"))) and first["chunks_added"] > 10
    assert first["chunks_total"] == first["chunks_added"]

    again = json.loads(run_llmops("ingest", str(docs), "--collection", "proj", "--json", env=env).stdout)
    assert again["chunks_added"] == 0 and again["sources"]["unchanged"] == first["sources"]["new"]

    (docs / "ci.md").write_text(
        (docs / "ci.md").read_text() + "\n\n## Nightly rebuilds\n\nRebuild the collection every night with cron.\n"
    )
    changed = json.loads(run_llmops("ingest", str(docs), "--collection", "proj", "--json", env=env).stdout)
    assert changed["changed"] == ["docs/ci.md"] and changed["chunks_added"] >= 1
    assert changed["chunks_total"] == first["chunks_total"] + changed["chunks_added"] - changed["chunks_removed"]

    for mode in ("hybrid", "vector", "lexical"):
        q = run_llmops(
            "query",
            "which exit code means a quality gate failed",
            "--collection",
            "proj",
            "--mode",
            mode,
            "--json",
            env=env,
        )
        assert q.returncode == 0, q.stderr
        hits = json.loads(q.stdout)["hits"]
        # the docs that document the gate's exit code (ci.md, eval-metrics.md) lead; the test reads the project's own
        # docs, which grow: it asks for the answer in the top 3, not for one page's rank
        assert any("gate" in h["text"].lower() and "4" in h["text"] for h in hits[:3]), (
            mode,
            [h["source"] for h in hits],
        )
        assert "docs/ci.md" in [h["source"] for h in hits], (mode, [h["source"] for h in hits])
        assert "heading" in hits[0] and hits[0]["score"] > 0

    human = run_llmops("query", "chunk size in tokens", "--collection", "proj", env=env)
    assert human.returncode == 0 and "docs/ingest.md" in human.stdout and "How it splits" in human.stdout

    filtered = json.loads(
        run_llmops(
            "query", "exit codes", "--collection", "proj", "--where", "source=docs/retrieval.md", "--json", env=env
        ).stdout
    )
    assert filtered["hits"] and {h["source"] for h in filtered["hits"]} == {"docs/retrieval.md"}


def test_skipped_inputs_exit_3_and_strict_exits_2(project):
    tmp, docs = project
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a real pdf")
    (docs / "blob.txt").write_bytes(b"\x00\xff" * 500)
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    env = llmops_env(tmp)
    r = run_llmops("ingest", str(docs), "--collection", "proj", "--json", env=env)
    assert r.returncode == 3, r.stderr
    rep = json.loads(r.stdout)
    skipped = {s["source"]: s["reason"] for s in rep["skipped"]}
    assert set(skipped) == {"docs/broken.pdf", "docs/blob.txt", "docs/latin1.txt"}, skipped
    assert "UTF-8" in skipped["docs/latin1.txt"] and "binary" in skipped["docs/blob.txt"]
    strict = run_llmops("ingest", str(docs), "--collection", "strict-one", "--strict", env=env)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr and strict.stderr.count("\n") <= 3
    # nothing already in the store was damaged
    ok = json.loads(run_llmops("ingest", str(docs), "--collection", "proj", "--json", env=env).stdout)
    assert ok["chunks_added"] == 0 and ok["chunks_total"] == rep["chunks_total"]


def llm_env(tmp, api_base: str, **extra: str) -> dict[str, str]:
    """The environment of a project whose LLM is the local OpenAI-compatible server at ``api_base``."""
    return llmops_env(
        tmp,
        LLMOPS_LLM_MODEL="openai/test-model",
        LLMOPS_LLM_API_BASE=api_base,
        LLMOPS_LLM_API_KEY="sk-test-not-a-real-key-000000",
        **extra,
    )


def test_ask_through_a_local_openai_compatible_server(project, openai_server):
    tmp, docs = project
    env = llm_env(tmp, openai_server.base_url)
    assert run_llmops("ingest", str(docs), "--collection", "proj", env=env).returncode == 0

    def responder(body):
        user = body["messages"][-1]["content"]
        if "rewordings" in user:
            return (
                "What exit code does a failed gate return?\nExit status when eval thresholds fail\n"
                "CI quality gate exit code"
            )
        assert "Context:" in user and "[1]" in user
        return "A failed quality gate exits with code 4 [1]."

    openai_server.responder = responder
    r = run_llmops(
        "ask", "Which exit code means the evaluation gate failed?", "--collection", "proj", "--json", env=env
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["answer"] == "A failed quality gate exits with code 4 [1]." and doc["cited"] == [1]
    assert len(doc["rewordings"]) == 3 and doc["usage"]["calls"] == 2
    assert "docs/ci.md" in [s["source"] for s in doc["sources"]]
    assert len(openai_server.records()) == 2
    assert "sk-test-not-a-real-key" not in r.stdout + r.stderr

    # piped: the answer alone on stdout, what was searched and the sources on stderr
    human = run_llmops("ask", "Which exit code means the evaluation gate failed?", "--collection", "proj", env=env)
    assert human.returncode == 0 and human.stdout == "A failed quality gate exits with code 4 [1].\n", human.stdout
    assert "Sources" in human.stderr and "docs/ci.md" in human.stderr

    ro = run_llmops("ask", "exit code of a failed gate", "--collection", "proj", "--retrieval-only", "--json", env=env)
    assert ro.returncode == 0 and json.loads(ro.stdout)["answer"] == "" and len(openai_server.records()) == 4


def test_llm_errors_are_one_line_with_exit_codes(project, openai_server):
    tmp, docs = project
    env = llm_env(tmp, openai_server.base_url, LLMOPS_LLM_MAX_RETRIES="0")
    assert run_llmops("ingest", str(docs), "--collection", "proj", env=env).returncode == 0
    from tests.support.openai_server import Fault

    openai_server.responder = lambda body: Fault("400", message="bad request from sk-test-not-a-real-key-000000")
    r = run_llmops("ask", "anything", "--collection", "proj", env=env)
    assert r.returncode == 1 and "call failed" in r.stderr and "Traceback" not in r.stderr
    assert len(openai_server.records()) == 1  # a 400 is not retried
    assert "sk-test-not-a-real-key" not in r.stdout + r.stderr
    unreachable = llmops_env(
        tmp,
        LLMOPS_LLM_MODEL="openai/test-model",
        LLMOPS_LLM_API_BASE="http://127.0.0.1:9/v1",
        LLMOPS_LLM_API_KEY="sk-x",
        LLMOPS_LLM_MAX_RETRIES="0",
        LLMOPS_LLM_TIMEOUT="5",
    )
    r = run_llmops("ask", "anything", "--collection", "proj", env=unreachable)
    assert r.returncode == 7 and "is not reachable" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 2  # the error and its hint


def test_query_on_a_missing_collection_says_how_to_fix(tmp_path):
    r = run_llmops("query", "x", "--collection", "nope-not-here", env=llmops_env(tmp_path))
    assert r.returncode == 9 and "llmops ingest" in r.stderr and "Traceback" not in r.stderr


def test_a_project_is_found_from_a_subfolder_looked_into_and_chatted_with(tmp_path, openai_server_session):
    """A user's project: its llmops.yaml, an int8 collection, commands run from a subfolder; read-only commands
    outside any project create nothing; a chat of two turns through a real HTTP LLM, each turn logged."""
    proj, outside = tmp_path / "proj", tmp_path / "elsewhere"
    (proj / "notes" / "deep").mkdir(parents=True)
    outside.mkdir()
    for page in ("ci.md", "retrieval.md", "configuration.md"):
        shutil.copy(REPO / "docs" / page, proj / "notes" / page)
    (proj / "llmops.yaml").write_text("store:\n  collection: notes\n")
    env = {k: v for k, v in llmops_env(tmp_path).items() if k not in ("LLMOPS_STORE_PATH", "LLMOPS_DATA_DIR")}
    env.pop("LLMOPS_INGEST_SOURCE_ROOT")
    env["LLMOPS_CEILING_DIRECTORIES"] = str(tmp_path)  # the walk up stays inside the test's folder
    deep = proj / "notes" / "deep"

    r = run_llmops("ingest", "..", "--embed-precision", "int8", "--json", env=env, cwd=deep)
    assert r.returncode == 0, r.stderr
    assert (proj / ".llmops" / "chroma").is_dir() and not (deep / ".llmops").exists()  # the project's store

    # the collection remembers its int8 embedder: searched without repeating the flag
    q = run_llmops("query", "exit code of a failed quality gate", "--json", env=env, cwd=deep)
    assert q.returncode == 0, q.stderr
    hit = json.loads(q.stdout)["hits"][0]
    assert hit["source"] == "notes/ci.md"
    shown = json.loads(run_llmops("collections", "show", "notes", "--json", env=env, cwd=deep).stdout)
    assert shown["embedder_config"]["precision"] == "int8" and shown["embedder"].endswith(":int8")
    assert shown["sources"] == 3 and shown["chunks"] == json.loads(r.stdout)["chunks_total"]
    got = json.loads(run_llmops("chunks", "get", hit["id"][:12], "--json", env=env, cwd=deep).stdout)
    assert got["text"] == hit["text"]
    exported = run_llmops(
        "collections", "export", "notes", "--vectors", "-o", "notes.jsonl", "--json", env=env, cwd=deep
    )
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (deep / "notes.jsonl").read_text().splitlines()]
    assert len(rows) == shown["chunks"] and all(len(row["vector"]) == shown["dimension"] for row in rows)
    again = run_llmops("collections", "export", "notes", "-o", "notes.jsonl", env=env, cwd=deep)
    assert again.returncode == 2 and "--force" in again.stderr

    # outside any project, commands that only read say there is nothing and create nothing
    for args in (["query", "anything"], ["collections", "list"]):
        run_llmops(*args, env=env, cwd=outside)
    assert list(outside.iterdir()) == []

    srv = openai_server_session
    srv.reset()

    def responder(body):
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system.startswith("You rewrite the last question"):
            return "Which exit code does llmops use when an evaluation gate fails?"
        if "rewordings" in user:
            return "quality gate exit code"
        return "Exit code 4 [1]." if len(body["messages"]) == 2 else "It is the code of a failed gate [1]."

    srv.responder = responder
    llm = {**env, "LLMOPS_LLM_MODEL": "openai/test-model", "LLMOPS_LLM_API_BASE": srv.base_url}
    llm["LLMOPS_LLM_API_KEY"] = "sk-test-not-a-real-key-000000"
    chat = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "chat"],
        input="Which exit code means the gate failed?\nwhat does it mean again?\n",
        capture_output=True,
        text=True,
        env=llm,
        cwd=deep,
        timeout=600,
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.splitlines() == ["Exit code 4 [1].", "It is the code of a failed gate [1]."]
    assert len(srv.records()) == 5  # reword + answer, then condense + reword + answer
    from llmops_cli.core.feedback.log import AnswerLog

    log = AnswerLog.for_data_dir(proj / ".llmops")  # the project's answer log, each turn in it
    try:
        turns = log.recent(kind="chat")
    finally:
        log.close()
    assert [t.question for t in turns][::-1] == ["Which exit code means the gate failed?", "what does it mean again?"]
