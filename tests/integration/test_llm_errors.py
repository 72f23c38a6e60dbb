"""LLM errors and retries over real HTTP to the local OpenAI-compatible server: every client (litellm and the lean
HTTP client) retries 429/5xx/connection errors up to llm.max_retries, honours Retry-After, never repeats another
4xx, and raises the project's errors (401 -> exit 8, no connection -> exit 7). Request counts come from the
server's own records."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from llmops_cli.core.ports import LLMCallError
from llmops_cli.errors import AuthError, ExitCode, UnreachableError
from tests.integration.conftest import llmops_env, run_llmops
from tests.support.net import closed_port
from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, Fault

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hello"}]


def _client(kind: str, base_url: str, **kw):
    kw.setdefault("max_retries", 2)
    kw.setdefault("input_cost_per_token", 1e-6)  # known prices: no litellm price lookup
    kw.setdefault("output_cost_per_token", 2e-6)
    if kind == "litellm":
        from llmops_cli.adapters.llm.litellm_llm import LiteLLM

        return LiteLLM(TEST_MODEL, api_base=base_url, api_key=TEST_API_KEY, **kw)
    from llmops_cli.adapters.llm.openai_http import OpenAIHTTP

    return OpenAIHTTP(TEST_MODEL, api_base=base_url, api_key=TEST_API_KEY, **kw)


CLIENTS = ["litellm", "http"]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_500_then_success_is_retried_once(openai_server, client):
    openai_server.fail_next("500")
    c = _client(client, openai_server.base_url).complete(MSG)
    assert c.text.startswith("reply-")
    assert [r.status for r in openai_server.records()] == [500, 200]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_429_waits_for_retry_after_then_succeeds(openai_server, client):
    openai_server.fail_next("429", retry_after=1)
    c = _client(client, openai_server.base_url).complete(MSG)
    recs = openai_server.records()
    assert c.text.startswith("reply-") and [r.status for r in recs] == [429, 200]
    assert recs[1].started - recs[0].finished >= 0.95  # Retry-After: 1 was honoured


@pytest.mark.parametrize("client", CLIENTS)
def test_retries_stop_at_max_retries(openai_server, client):
    openai_server.fail_next("503", n=5, retry_after=None)
    with pytest.raises(LLMCallError) as ei:
        _client(client, openai_server.base_url, max_retries=2).complete(MSG)
    assert ei.value.status == 503 and len(openai_server.records()) == 3  # the call and 2 retries
    openai_server.reset()
    openai_server.fail_next("500", n=2)
    with pytest.raises(LLMCallError):
        _client(client, openai_server.base_url, max_retries=0).complete(MSG)
    assert len(openai_server.records()) == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_400_is_not_retried(openai_server, client):
    openai_server.fail_next("400", n=3)
    with pytest.raises(LLMCallError) as ei:
        _client(client, openai_server.base_url).complete(MSG)
    assert ei.value.status == 400 and ei.value.exit_code == ExitCode.FAILURE
    assert len(openai_server.records()) == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_401_is_an_auth_error_and_not_retried(openai_server, client):
    openai_server.fail_next("401", n=3)
    with pytest.raises(AuthError) as ei:
        _client(client, openai_server.base_url).complete(MSG)
    assert isinstance(ei.value, LLMCallError) and ei.value.exit_code == ExitCode.AUTH
    assert ei.value.hint and TEST_API_KEY not in ei.value.message
    assert len(openai_server.records()) == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_connection_is_unreachable_after_the_retries(client):
    t0 = time.perf_counter()
    with pytest.raises(UnreachableError) as ei:
        _client(client, f"http://127.0.0.1:{closed_port()}/v1", max_retries=1, timeout=5).complete(MSG)
    assert ei.value.exit_code == ExitCode.UNREACHABLE and "not reachable" in ei.value.message
    assert time.perf_counter() - t0 < 10


def test_retry_after_beyond_the_bound_is_not_waited_for(openai_server):
    openai_server.fail_next("429", retry_after=3600)
    t0 = time.perf_counter()
    with pytest.raises(LLMCallError) as ei:
        _client("http", openai_server.base_url).complete(MSG)
    assert time.perf_counter() - t0 < 5 and ei.value.status == 429 and "3600" in (ei.value.hint or "")
    assert len(openai_server.records()) == 1


def test_litellm_async_and_streaming_calls_retry_too(openai_server):
    llm = _client("litellm", openai_server.base_url)
    openai_server.fail_next("500")
    c = asyncio.run(llm.acomplete(MSG))
    assert c.text.startswith("reply-") and [r.status for r in openai_server.records()] == [500, 200]
    openai_server.reset()
    openai_server.fail_next("429", retry_after=0.2)
    assert "".join(llm.stream(MSG)).startswith("reply-")
    assert [r.status for r in openai_server.records()] == [429, 200]


def test_a_per_call_max_retries_overrides_the_client_default(openai_server):
    """The batch engine owns its retries (with the run's rate limiter) and passes max_retries=0."""
    openai_server.fail_next("500", n=3)
    with pytest.raises(LLMCallError):
        _client("http", openai_server.base_url).complete(MSG, max_retries=0)
    assert len(openai_server.records()) == 1


def test_a_feedback_review_survives_one_429_through_litellm(openai_server, tmp_path):
    """Issue 11: one 429 put a review in "failed" (litellm sent one request)."""
    from llmops_cli.core.feedback import AnswerLog
    from llmops_cli.core.feedback.review import review_answers

    verdict = {
        "helpfulness": {"score": 4, "reason": "clear"},
        "relevance": {"score": 5, "reason": "on topic"},
        "publicness": {"public": True, "reason": "fine"},
    }
    openai_server.responder = lambda body: json.dumps(verdict)
    openai_server.fail_next("429", retry_after=0.3)
    with AnswerLog(tmp_path / "log.sqlite") as log:
        aid = log.record(kind="ask", question="what is a gate?", answer="a threshold", collection="docs")
        report = review_answers(log, _client("litellm", openai_server.base_url), log.to_review(limit=5), concurrency=1)
        assert report.reviewed == [aid] and report.failed == []
        assert log.review_of(aid).status == "ok"
    assert [r.status for r in openai_server.records()] == [429, 200]


# --- through the CLI: `llmops ask` ---


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ask-errors")
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "gates.md").write_text("# Quality gates\n\nA failed quality gate exits with code 4.\n")
    r = run_llmops("ingest", str(docs), "--collection", "proj", env=llmops_env(tmp))
    assert r.returncode == 0, r.stderr
    return tmp


def _ask(tmp: Path, base_url: str, *extra: str, **env: str):
    e = llmops_env(
        tmp,
        LLMOPS_LLM_MODEL=TEST_MODEL,
        LLMOPS_LLM_API_BASE=base_url,
        LLMOPS_LLM_API_KEY=TEST_API_KEY,
        LLMOPS_LLM_INPUT_COST_PER_TOKEN="0.000001",
        LLMOPS_LLM_OUTPUT_COST_PER_TOKEN="0.000002",
        **env,
    )
    return run_llmops(
        "ask",
        "what does a failed gate exit with?",
        "--collection",
        "proj",
        "--rewordings",
        "0",
        "--no-cache",
        *extra,
        env=e,
        timeout=120,
    )


def test_ask_with_a_rejected_key_exits_8(project, openai_server):
    openai_server.responder = lambda body: Fault("401")
    r = _ask(project, openai_server.base_url)
    assert r.returncode == 8, r.stderr
    assert "rejected the credentials" in r.stderr and "Traceback" not in r.stderr and TEST_API_KEY not in r.stderr
    assert len(openai_server.records()) == 1


def test_ask_with_no_server_exits_7(project):
    r = _ask(project, f"http://127.0.0.1:{closed_port()}/v1", LLMOPS_LLM_MAX_RETRIES="1")
    assert r.returncode == 7 and "not reachable" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_ask_retries_a_500_and_a_429(project, openai_server):
    openai_server.fail_next("500")
    r = _ask(project, openai_server.base_url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answer"].startswith("reply-")
    assert [x.status for x in openai_server.records()] == [500, 200]
    openai_server.reset()
    openai_server.fail_next("429", retry_after=1)
    r = _ask(project, openai_server.base_url, "--json")
    assert r.returncode == 0, r.stderr
    assert [x.status for x in openai_server.records()] == [429, 200]
    openai_server.reset()
    openai_server.fail_next("400", n=3)
    r = _ask(project, openai_server.base_url)
    assert r.returncode == 1 and "call failed" in r.stderr and len(openai_server.records()) == 1
