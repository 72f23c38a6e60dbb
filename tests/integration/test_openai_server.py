"""The local OpenAI-compatible test server, exercised over real HTTP through the LiteLLM adapter."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from llmops_cli.core.ports import LLMCallError
from tests.support.openai_server import (
    TEST_API_KEY,
    Fault,
    OpenAIServer,
    ServerProcess,
    default_reply,
    embedding_for,
    last_user_text,
    litellm_for,
)

pytestmark = pytest.mark.integration


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_default_reply_usage_and_log(openai_server):
    llm = litellm_for(openai_server, max_retries=0)
    c = llm.complete(_user("hello there"))
    assert c.text == default_reply({"messages": _user("hello there")})
    assert c.input_tokens == 3 and c.output_tokens == len(c.text) // 4 + (len(c.text) % 4 > 0)
    rec = openai_server.successes()
    assert len(rec) == 1 and rec[0].authorized and rec[0].body["model"] == "test-model"
    assert openai_server.success_counts_by()["hello there"] == 1


def test_custom_responder_text_and_full_dict(openai_server):
    llm = litellm_for(openai_server, max_retries=0)
    openai_server.responder = lambda body: json.dumps({"echo": last_user_text(body)})
    assert json.loads(llm.complete(_user("x1")).text) == {"echo": "x1"}
    openai_server.responder = lambda body: {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "full"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    c = llm.complete(_user("x2"))
    assert (c.text, c.input_tokens, c.output_tokens) == ("full", 7, 2)


def test_streaming_with_usage_chunk(openai_server):
    openai_server.responder = lambda body: "one two three four"
    llm = litellm_for(openai_server, max_retries=0)
    pieces = list(llm.stream(_user("stream please")))
    assert "".join(pieces) == "one two three four" and len(pieces) >= 4
    assert llm.last.input_tokens == 4 and llm.last.output_tokens == 5


@pytest.mark.parametrize("kind,status", [("429", 429), ("500", 500), ("503", 503)])
def test_retryable_faults_are_translated(openai_server, kind, status):
    openai_server.fail_next(kind, retry_after=2)
    llm = litellm_for(openai_server, max_retries=0)
    with pytest.raises(LLMCallError) as ei:
        llm.complete(_user("boom"))
    assert ei.value.status == status and ei.value.retryable
    if kind == "429":
        assert ei.value.retry_after == 2
    # the queue is consumed: the next call succeeds and only it counts as a success
    assert llm.complete(_user("boom")).text
    assert openai_server.success_count() == 1 and openai_server.counters[f"fault_{kind}"] == 1


def test_bad_request_is_not_retryable(openai_server):
    openai_server.fail_next("400")
    with pytest.raises(LLMCallError) as ei:
        litellm_for(openai_server, max_retries=0).complete(_user("bad"))
    assert ei.value.status == 400 and not ei.value.retryable


def test_hang_longer_than_the_client_timeout(openai_server):
    openai_server.add_rule(lambda b: last_user_text(b) == "slow", Fault("hang", seconds=30))
    llm = litellm_for(openai_server, max_retries=0, timeout=0.5)
    t0 = time.perf_counter()
    with pytest.raises(LLMCallError) as ei:
        llm.complete(_user("slow"))
    assert time.perf_counter() - t0 < 10 and ei.value.retryable
    assert llm.complete(_user("slow")).text  # the rule fired once


def test_malformed_body_is_an_error(openai_server):
    openai_server.fail_next("malformed")
    with pytest.raises(LLMCallError):
        litellm_for(openai_server, max_retries=0).complete(_user("garbled"))
    assert openai_server.success_count() == 0


def test_responder_may_return_a_fault(openai_server):
    openai_server.responder = lambda body: Fault("500") if "bad" in last_user_text(body) else "fine"
    llm = litellm_for(openai_server, max_retries=0)
    assert llm.complete(_user("good")).text == "fine"
    with pytest.raises(LLMCallError):
        llm.complete(_user("bad"))


def test_concurrency_and_latency(openai_server):
    openai_server.latency = 0.2
    llm = litellm_for(openai_server, max_retries=0)

    async def go():
        return await asyncio.gather(*(llm.acomplete(_user(f"q{i}")) for i in range(20)))

    t0 = time.perf_counter()
    out = asyncio.run(go())
    elapsed = time.perf_counter() - t0
    assert len(out) == 20 and elapsed < 2.0  # 20 x 0.2 s serially would be 4 s
    assert openai_server.max_in_flight >= 10


def test_embeddings_and_models(openai_server):
    req = urllib.request.Request(
        f"{openai_server.base_url}/embeddings",
        data=json.dumps({"model": "test-embedding", "input": ["a", "b"]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TEST_API_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        doc = json.loads(r.read())
    assert [d["embedding"] for d in doc["data"]] == [embedding_for("a"), embedding_for("b")]
    assert abs(sum(x * x for x in doc["data"][0]["embedding"]) - 1) < 1e-9
    with urllib.request.urlopen(f"{openai_server.base_url}/models", timeout=10) as r:
        assert "test-model" in {m["id"] for m in json.loads(r.read())["data"]}


def test_litellm_embedding_through_the_server(openai_server):
    from llmops_cli.adapters.llm.litellm_llm import import_litellm

    litellm = import_litellm()
    r = litellm.embedding(
        model="openai/test-embedding", input=["hello"], api_base=openai_server.base_url, api_key=TEST_API_KEY
    )
    assert list(r.data[0]["embedding"]) == pytest.approx(embedding_for("hello"))


def test_session_server_resets(openai_server_session):
    openai_server_session.reset()
    litellm_for(openai_server_session, max_retries=0).complete(_user("s"))
    assert openai_server_session.success_count() == 1


def test_stop_is_prompt_even_with_a_hanging_request():
    srv = OpenAIServer().start()
    srv.fail_next("hang", seconds=60)
    llm = litellm_for(srv, max_retries=0, timeout=30)

    import threading

    t = threading.Thread(target=lambda: pytest.raises(LLMCallError, llm.complete, _user("h")), daemon=True)
    t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - t0 < 5
    t.join(10)


def test_standalone_process():
    with ServerProcess(latency=0.01) as proc:
        c = litellm_for(proc, max_retries=0).complete(_user("proc"))
        assert c.text == default_reply({"messages": _user("proc")})
        assert proc.stats()["successes"] == 1
