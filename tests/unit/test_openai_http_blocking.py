"""The lean HTTP client's blocking calls (``complete``, ``stream``: the answer path of ask and serve) over real HTTP
to the local OpenAI-compatible server: tokens in order, usage and cost, one client called from many threads at once,
keep-alive connections, and the same retries and errors as litellm, with no API key in any error."""

from __future__ import annotations

import threading
import time

import pytest

from llmops_cli.adapters.llm.openai_http import OpenAIHTTP
from llmops_cli.core.ports import LLMAuthError, LLMCallError, LLMUnreachableError
from llmops_cli.errors import ExitCode, UnreachableError
from tests.support.net import closed_port
from tests.support.openai_server import TEST_API_KEY, TEST_MODEL

MSG = [{"role": "user", "content": "what does a failed gate exit with?"}]


@pytest.fixture
def server(openai_server_session):
    openai_server_session.reset()
    return openai_server_session


def _statuses(server) -> list[int]:
    """The statuses of the server's chat requests, once each is finished (a stream's is set after its last byte,
    which the client may have read first)."""
    deadline = time.monotonic() + 5
    while any(r.status == 0 for r in server.records()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [r.status for r in server.records()]


def _client(base_url: str, **kw) -> OpenAIHTTP:
    kw.setdefault("max_retries", 2)
    kw.setdefault("input_cost_per_token", 1e-6)  # known prices: no litellm price lookup
    kw.setdefault("output_cost_per_token", 2e-6)
    kw.setdefault("api_key", TEST_API_KEY)
    return OpenAIHTTP(TEST_MODEL, api_base=base_url, **kw)


def test_a_stream_yields_the_reply_in_order_with_its_usage_and_cost(server):
    server.responder = lambda body: "a failed quality gate exits with code 4 [1]"
    llm = _client(server.base_url)
    pieces = list(llm.stream(MSG))
    assert len(pieces) > 3 and "".join(pieces) == "a failed quality gate exits with code 4 [1]"
    c = llm.last
    assert c.text == "".join(pieces) and c.input_tokens > 0 and c.output_tokens > 0
    assert c.cost == pytest.approx(c.input_tokens * 1e-6 + c.output_tokens * 2e-6)
    (rec,) = server.records()
    assert rec.body["stream"] is True and rec.body["stream_options"] == {"include_usage": True}
    assert rec.body["model"] == "test-model" and rec.authorized
    # the connection is kept alive and serves the next calls, a plain one and a stream
    assert llm.complete(MSG).text == "a failed quality gate exits with code 4 [1]"
    assert "".join(llm.stream(MSG)) == "a failed quality gate exits with code 4 [1]"
    assert len(llm._conns) == 1


def test_many_threads_stream_through_one_client_each_with_its_own_result(server):
    server.responder = lambda body: f"answer to {body['messages'][-1]['content']}"
    llm = _client(server.base_url)
    got: dict[int, tuple[str, str]] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            for _ in range(3):
                text = "".join(llm.stream([{"role": "user", "content": f"q{i}"}]))
                got[i] = (text, llm.last.text)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert got == {i: (f"answer to q{i}", f"answer to q{i}") for i in range(8)}
    assert len(llm._conns) == 8  # one keep-alive connection per thread
    llm.close()
    assert llm.complete(MSG).text  # a closed client opens a new connection


def test_an_abandoned_stream_leaves_the_client_usable(server):
    server.responder = lambda body: "one two three four five six"
    llm = _client(server.base_url)
    it = llm.stream(MSG)
    assert next(it) == "one"
    it.close()
    assert "".join(llm.stream(MSG)) == "one two three four five six"


def test_a_stream_retries_a_500_and_a_429_before_its_first_piece(server):
    llm = _client(server.base_url)
    server.fail_next("500")
    assert "".join(llm.stream(MSG)).startswith("reply-")
    assert _statuses(server) == [500, 200]
    server.reset()
    server.fail_next("429", retry_after=0.2)
    assert "".join(llm.stream(MSG)).startswith("reply-")
    assert _statuses(server) == [429, 200]
    recs = server.records()
    assert recs[1].started - recs[0].finished >= 0.15  # Retry-After was honoured
    server.reset()
    server.fail_next("503", n=5, retry_after=None)
    with pytest.raises(LLMCallError) as ei:
        list(_client(server.base_url, max_retries=1).stream(MSG))
    assert ei.value.status == 503 and len(server.records()) == 2


def test_a_401_is_an_auth_error_without_the_key_and_not_retried(server):
    for call in ("complete", "stream"):
        server.reset()
        server.fail_next("401", n=3)
        llm = _client(server.base_url)
        with pytest.raises(LLMAuthError) as ei:
            list(llm.stream(MSG)) if call == "stream" else llm.complete(MSG)
        assert ei.value.exit_code == ExitCode.AUTH and ei.value.hint
        assert TEST_API_KEY not in f"{ei.value.message} {ei.value.hint}"
        assert len(server.records()) == 1


def test_a_400_and_a_malformed_reply_are_call_errors(server):
    server.fail_next("400", n=3)
    with pytest.raises(LLMCallError) as ei:
        list(_client(server.base_url).stream(MSG))
    assert ei.value.status == 400 and "Bad request" in ei.value.message and len(server.records()) == 1
    server.reset()
    server.fail_next("malformed", n=3)
    with pytest.raises(LLMCallError) as ei:
        _client(server.base_url, max_retries=0).complete(MSG)
    assert "malformed" in ei.value.message


def test_a_key_of_no_known_format_echoed_by_the_server_is_masked_by_either_client(server):
    from tests.support.openai_server import litellm_for

    key = "hunter2hunter2xyz"  # a self-hosted server's key: no provider format redaction knows
    for llm in (_client(server.base_url, api_key=key, max_retries=0), litellm_for(server, api_key=key, max_retries=0)):
        for call in ("complete", "stream"):
            server.reset()
            server.fail_next("400", message=f"Incorrect API key provided: {key}.")
            with pytest.raises(LLMCallError) as ei:
                list(llm.stream(MSG)) if call == "stream" else llm.complete(MSG)
            assert "Incorrect API key provided: [REDACTED_API_KEY]" in ei.value.message
            assert key not in f"{ei.value.message} {ei.value.hint}"


def test_no_server_is_unreachable_without_the_key():
    base = f"http://127.0.0.1:{closed_port()}/v1"
    for call in ("complete", "stream"):
        llm = _client(base, max_retries=1, timeout=5)
        with pytest.raises(LLMUnreachableError) as ei:
            list(llm.stream(MSG)) if call == "stream" else llm.complete(MSG)
        assert ei.value.exit_code == ExitCode.UNREACHABLE and "not reachable" in ei.value.message
        assert TEST_API_KEY not in f"{ei.value.message} {ei.value.hint}"


def test_a_hung_server_times_out_as_a_retryable_408(server):
    server.fail_next("hang", seconds=5)
    with pytest.raises(LLMCallError) as ei:
        list(_client(server.base_url, max_retries=0, timeout=0.5).stream(MSG))
    assert ei.value.status == 408 and ei.value.retryable
    # the README's exit 7 for an LLM that did not answer in time; not an UnreachableError, so batch, eval and
    # review record a slow row and go on instead of stopping
    assert ei.value.exit_code == ExitCode.UNREACHABLE and ei.value.hint and not isinstance(ei.value, UnreachableError)


def test_the_answer_client_is_the_lean_one_only_for_an_openai_compatible_endpoint():
    from llmops_cli.adapters.llm.litellm_llm import LiteLLM
    from llmops_cli.settings import LLMSettings
    from llmops_cli.wiring import build_answer_llm

    local = LLMSettings(model=TEST_MODEL, api_base="http://127.0.0.1:9/v1")
    assert isinstance(build_answer_llm(local), OpenAIHTTP)
    assert isinstance(build_answer_llm(LLMSettings(model=TEST_MODEL)), LiteLLM)  # no api_base: the provider's API
    assert isinstance(build_answer_llm(local, "anthropic/claude-3-haiku"), LiteLLM)


def test_with_no_key_configured_the_key_comes_from_openai_api_key_as_litellm_takes_it(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    llm = OpenAIHTTP(TEST_MODEL, api_base=server.base_url, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    assert llm.complete(MSG).text
    assert [r.authorized for r in server.records()] == [True]
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIHTTP(TEST_MODEL, api_base=server.base_url, input_cost_per_token=1e-6, output_cost_per_token=2e-6).complete(
        MSG
    )
    assert [r.authorized for r in server.records()] == [True, False]  # neither configured nor in the environment


def test_credentials_in_the_endpoint_url_beside_a_key_work_for_async_calls_as_for_blocking_ones(server):
    # before: aiohttp raised "Cannot combine AUTHORIZATION header with ... credentials encoded in URL" (batch died
    # with an internal error, while ask, on the blocking client, answered)
    import asyncio

    server.responder = lambda body: "ok"
    base = server.base_url.replace("http://", "http://user:pw@")
    llm = _client(base)
    assert llm.complete(MSG).text == "ok"

    async def both():
        try:
            return (await llm.acomplete(MSG)).text
        finally:
            await llm.aclose()

    assert asyncio.run(both()) == "ok"
    assert [r.authorized for r in server.records()] == [True, True]
