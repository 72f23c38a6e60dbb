"""The feedback loop end to end, with the real parts: the bundled embedding model, an embedded Chroma, and real
HTTP to the local OpenAI-compatible server (scripted: answers per question, judge verdicts per answer).

ask -> recorded with an id -> rate -> review (LLM judge) -> promotion into the collection -> a later query finds the
promoted answer (vector AND lexical) -> the semantic cache serves it -> rated down -> gone (store, cache).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.entry import ingest as ingest_entry
from tests.support.fakes import run_step
from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, last_user_text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LLMOPS = REPO / ".venv" / "bin" / "llmops"

CORPUS = {
    "frobnicator.md": "# Frobnicator\n\n## Rotating credentials\n\nThe frobnicator keeps its credentials in the vault. "
    "Rotate them with `frob rotate --all`; the old ones stop working after ten minutes.\n\n"
    "## Scaling\n\nAdd workers with `frob scale N`. Each worker handles forty requests per second.\n",
    "backups.md": "# Backups\n\nNightly backups run at 02:00 UTC and are kept for thirty days. "
    "Restore one with `frob restore DATE`.\n",
    "widgets.md": "# Widgets\n\nWidgets are configured in widgets.toml. The colour key accepts any CSS colour name.\n",
}

Q_ROTATE = "How do I rotate the frobnicator credentials?"
Q_SCALE = "How do I add workers to the frobnicator?"
Q_BACKUP = "When do the nightly backups run?"
FAKE_KEY = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"
ANSWERS = {
    Q_ROTATE: "Run `frob rotate --all` [1]; the old credentials stop working after ten minutes [1].",
    Q_SCALE: f"Use `frob scale N` [1]. If it fails, authenticate with the admin key {FAKE_KEY} first.",
    Q_BACKUP: "Backups run nightly at 02:00 UTC [1]. "
    "Ask Jane Roe (jane.roe@corp.example, +1 415 555 0199) for a restore.",
}
VERDICT_OK = {
    "helpfulness": {"score": 5, "reason": "complete"},
    "relevance": {"score": 5, "reason": "about the frobnicator"},
    "publicness": {"public": True, "reason": "nothing sensitive"},
}
VERDICT_PRIVATE = {**VERDICT_OK, "publicness": {"public": False, "reason": "names an employee and her contact details"}}


def responder(body: dict) -> str:
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    user = last_user_text(body)
    if system.startswith("You review answers"):
        return json.dumps(VERDICT_PRIVATE if "Jane Roe" in user else VERDICT_OK)
    if system.startswith("You rewrite questions"):
        return "frobnicator credential rotation"
    question = user.rsplit("Question: ", 1)[-1].strip()
    return ANSWERS.get(question, "I do not know.")


def env_for(tmp_path: Path, server) -> dict[str, str]:
    return {
        "LLMOPS_LLM_MODEL": TEST_MODEL,
        "LLMOPS_LLM_API_BASE": server.base_url,
        "LLMOPS_LLM_API_KEY": TEST_API_KEY,
        "LLMOPS_STORE_PATH": str(tmp_path / "chroma"),
        "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        "LLMOPS_LLM_REWORDINGS": "1",
        "LLMOPS_STORE_COLLECTION": "docs",
    }


def write_corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in CORPUS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


@pytest.fixture
def loop(tmp_path, openai_server, monkeypatch):
    from llmops_cli.settings import load_settings

    openai_server.responder = responder
    env = env_for(tmp_path, openai_server)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings(None, cwd=tmp_path).settings
    run_step(ingest_entry.ingest, settings, [str(write_corpus(tmp_path))])
    return settings, openai_server


def promoted_ids(settings) -> set[str]:
    from llmops_cli import wiring

    store = wiring.build_store(settings)
    return {h.metadata["answer_id"] for h in store.get("docs", where={"kind": "promoted_answer"})}


def test_ask_rate_review_promote_query_cache_and_demote(loop):

    settings, server = loop
    res = {q: run_step(ask_entry.ask, settings, q) for q in ANSWERS}
    ids = {q: r.answer_id for q, r in res.items()}
    assert all(ids.values()) and len(set(ids.values())) == 3
    assert res[Q_ROTATE].answer == ANSWERS[Q_ROTATE]

    # recorded: question, rewordings, chunks with sources, answer, model, tokens, latency, config hash
    with AnswerLog.for_data_dir(settings.data_path) as log:
        rec = log.get(ids[Q_ROTATE])
    assert rec.question == Q_ROTATE and rec.answer == ANSWERS[Q_ROTATE] and rec.model == TEST_MODEL
    assert rec.rewordings == ["frobnicator credential rotation"]
    assert rec.chunks and any(c["source"].endswith("frobnicator.md") for c in rec.chunks)
    assert rec.input_tokens > 0 and rec.output_tokens > 0 and rec.latency_s > 0 and len(rec.config_hash) == 12

    run_step(feedback_entry.rate, settings, ids[Q_ROTATE], "up", "exactly right")
    chats_before_review = len(server.records())
    review = run_step(feedback_entry.review, settings, limit=10)
    assert review["reviewed"] == 3 and not review["errors"] and not review["failed"]
    assert len(server.records()) - chats_before_review == 3  # one judge call per answer
    # the judge never sees the secret: questions and answers are redacted before they are sent
    assert not any(FAKE_KEY in last_user_text(r.body) for r in server.records())
    assert sorted(review["promotion"]["promoted"]) == sorted([ids[Q_ROTATE], ids[Q_SCALE]])
    assert {r["id"]: r["reason"] for r in review["promotion"]["not_promoted"]} == {ids[Q_BACKUP]: "judged not public"}
    assert promoted_ids(settings) == {ids[Q_ROTATE], ids[Q_SCALE]}

    # a later query on the same question finds the promoted answer, by vector and by BM25 alike
    for mode in ("vector", "lexical", "hybrid"):
        hits = run_step(ask_entry.query, settings, Q_ROTATE, mode=mode, k=3)
        assert hits[0].metadata.get("kind") == "promoted_answer", mode
        assert hits[0].metadata["answer_id"] == ids[Q_ROTATE]
        assert "frob rotate --all" in hits[0].text and "[1]" not in hits[0].text

    # re-ingesting changed documents (even with cleanup=full) keeps promoted answers, and BM25 still finds them
    docs = Path(settings.store_path).parent / "docs"  # the corpus the fixture ingested
    (docs / "widgets.md").write_text(CORPUS["widgets.md"] + "\nWidgets may also be blue.\n", encoding="utf-8")
    assert run_step(ingest_entry.ingest, settings, [str(docs)], cleanup="full").changed
    assert promoted_ids(settings) == {ids[Q_ROTATE], ids[Q_SCALE]}
    assert (
        run_step(ask_entry.query, settings, Q_ROTATE, mode="lexical", k=1)[0].metadata.get("answer_id") == ids[Q_ROTATE]
    )

    # redacted BEFORE promotion: the key is in neither the store nor the cache text
    from llmops_cli import wiring

    chunk = wiring.build_store(settings).get("docs", ids=[f"answer-{ids[Q_SCALE]}"])[0]
    assert FAKE_KEY not in chunk.text and "[REDACTED_API_KEY]" in chunk.text
    with AnswerLog.for_data_dir(settings.data_path) as log:
        assert FAKE_KEY not in log.promotion_of(ids[Q_SCALE]).answer_text
        assert log.review_of(ids[Q_SCALE]).redactions == ["API_KEY"]

    # the semantic cache: a near-identical question is served the promoted answer, without any LLM call
    chats = len(server.records())
    cached = run_step(ask_entry.ask, settings, "How do I rotate the frobnicator's credentials")
    assert cached.cache_hit is not None and cached.cache_hit["answer_id"] == ids[Q_ROTATE]
    assert cached.cache_hit["similarity"] >= settings.feedback.cache_threshold
    assert "frob rotate --all" in cached.answer and len(server.records()) == chats
    with AnswerLog.for_data_dir(settings.data_path) as log:
        assert log.get(cached.answer_id).cached_from == ids[Q_ROTATE]
    # a different question on the same topic (cosine ~0.82 with the real model) is not served the cached answer
    assert run_step(ask_entry.ask, settings, "How often should I rotate the frobnicator credentials?").cache_hit is None
    # nor is a near miss over the threshold (a negation: cosine ~0.96): the lexical check blocks it, the LLM answers
    chats_near = len(server.records())
    assert run_step(ask_entry.ask, settings, "How do I NOT rotate the frobnicator credentials?").cache_hit is None
    assert len(server.records()) > chats_near
    # --no-cache skips it
    assert run_step(ask_entry.ask, settings, Q_ROTATE, use_cache=False).cache_hit is None
    assert len(server.records()) > chats

    # rated down (here: the cache-served copy) -> removed from the store and from the cache at once
    out = run_step(feedback_entry.rate, settings, cached.answer_id, "down", "outdated")
    assert out["promoted_answer"] == ids[Q_ROTATE] and out["promotion"]["removed"][0]["id"] == ids[Q_ROTATE]
    assert promoted_ids(settings) == {ids[Q_SCALE]}
    for mode in ("vector", "lexical"):
        assert all(
            h.metadata.get("answer_id") != ids[Q_ROTATE]
            for h in run_step(ask_entry.query, settings, Q_ROTATE, mode=mode, k=5)
        )
    again = run_step(ask_entry.ask, settings, Q_ROTATE)
    assert again.cache_hit is None and again.answer == ANSWERS[Q_ROTATE]

    # the one judged not public is never promoted, even when rated up and reconciled again
    run_step(feedback_entry.rate, settings, ids[Q_BACKUP], "up")
    run_step(feedback_entry.promote, settings)
    assert ids[Q_BACKUP] not in promoted_ids(settings)

    # export: the good answers that remain, redacted
    rows = run_step(feedback_entry.export, settings)
    assert len(rows) == 1 and rows[0]["messages"][1]["content"] == Q_SCALE
    assert FAKE_KEY not in rows[0]["messages"][2]["content"]


def test_unparseable_verdict_is_a_review_error_not_a_crash(loop):

    settings, server = loop
    a = run_step(ask_entry.ask, settings, Q_ROTATE).answer_id
    server.responder = lambda body: (
        "Looks good to me!" if "You review answers" in body["messages"][0]["content"] else responder(body)
    )
    out = run_step(feedback_entry.review, settings)
    assert out["reviewed"] == 0 and [e["id"] for e in out["errors"]] == [a]
    with AnswerLog.for_data_dir(settings.data_path) as log:
        rv = log.review_of(a)
    assert rv.status == "error" and "not JSON" in rv.error
    assert promoted_ids(settings) == set()
    # not picked again unless asked to; then a good verdict promotes it
    server.responder = responder
    assert run_step(feedback_entry.review, settings)["reviewed"] == 0
    assert run_step(feedback_entry.review, settings, retry_errors=True)["promotion"]["promoted"] == [a]


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "NO_COLOR": "1", "COLUMNS": "200"}
    full.pop("LLMOPS_CONFIG", None)
    return subprocess.run([str(LLMOPS), *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not LLMOPS.exists(), reason=".venv/bin/llmops is not installed")
def test_cli_subprocess_loop(tmp_path, openai_server):
    """The commands as a user runs them (each a fresh process: imports, the model and Chroma load every time, so
    few and well chosen)."""
    openai_server.responder = responder
    env = env_for(tmp_path, openai_server)
    docs = write_corpus(tmp_path)

    def ok(args):
        r = run_cli(args, env, tmp_path)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        return r

    ok(["ingest", str(docs)])
    asked = json.loads(ok(["ask", Q_SCALE, "--json"]).stdout)
    answer_id = asked["answer_id"]
    assert asked["answer"] == ANSWERS[Q_SCALE] and asked["cache"] is None and len(answer_id) == 12

    ok(["feedback", answer_id[:6], "up", "--comment", "right"])
    reviewed = json.loads(ok(["feedback", "review", "--json"]).stdout)
    assert reviewed["reviewed"] == 1 and reviewed["promotion"]["promoted"] == [answer_id]

    hits = json.loads(ok(["query", Q_SCALE, "--json"]).stdout)["hits"]
    assert hits[0]["metadata"]["kind"] == "promoted_answer" and hits[0]["metadata"]["answer_id"] == answer_id
    assert FAKE_KEY not in hits[0]["text"] and "[REDACTED_API_KEY]" in hits[0]["text"]

    hist = json.loads(ok(["history", "--json", "--limit", "5"]).stdout)["answers"]
    assert [a["id"] for a in hist] == [answer_id] and hist[0]["promoted"] and hist[0]["rating"] == 1

    # human mode, served from the cache: the answer on stdout, the answer id and the cache note on stderr
    cached = ok(["ask", Q_SCALE])
    assert "frob scale N" in cached.stdout and FAKE_KEY not in cached.stdout
    assert "semantic cache" in cached.stderr and "answer id: " in cached.stderr and "answer id" not in cached.stdout

    dataset = tmp_path / "ft.jsonl"
    ok(["feedback", "export", "--format", "openai-chat", "--output", str(dataset)])
    lines = [json.loads(x) for x in dataset.read_text().splitlines()]
    assert [x["messages"][1]["content"] for x in lines] == [Q_SCALE]

    ok(["feedback", answer_id, "down"])
    shown = json.loads(ok(["history", "show", answer_id, "--json"]).stdout)
    assert [r["rating"] for r in shown["ratings"]] == ["up", "down"] and shown["review"]["status"] == "ok"
    assert shown["votes"] == {"up": 0, "down": 1}  # the same rater (the OS user) changed their vote
    assert shown["promotion"]["active"] is False and shown["promotion"]["removed_reason"] == "rated down"

    missing = run_cli(["feedback", "ffffffffffff", "up"], env, tmp_path)
    assert missing.returncode == 9 and "no answer with id" in missing.stderr and "Traceback" not in missing.stderr
    bad = run_cli(["feedback", answer_id, "sideways"], env, tmp_path)
    assert bad.returncode == 2
