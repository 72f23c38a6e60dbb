"""The LLM clients' retry loop on a scripted call (no network, no real sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from llmops_cli.adapters.llm.retry import CLIENT_MAX_RETRY_AFTER_S, acall_with_retries, call_with_retries, client_policy
from llmops_cli.core.ports import LLMAuthError, LLMCallError, LLMUnreachableError
from llmops_cli.errors import AuthError, ExitCode, UnreachableError


class Script:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        o = self.outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o


def _run(policy, script):
    slept: list[float] = []
    return call_with_retries(policy, script, sleep=slept.append), slept


def test_retryable_errors_are_retried_with_growing_waits():
    e500 = LLMCallError("500", status=500, retryable=True)
    script = Script(e500, e500, "ok")
    result, slept = _run(client_policy(2), script)
    assert result == "ok" and script.calls == 3
    assert 0.5 <= slept[0] <= 0.5 * 1.25 and 1.0 <= slept[1] <= 1.0 * 1.25


def test_retry_after_is_honoured_and_bounded():
    script = Script(LLMCallError("429", status=429, retryable=True, retry_after=5), "ok")
    assert _run(client_policy(2), script) == ("ok", [5])
    too_long = LLMCallError("429", status=429, retryable=True, retry_after=CLIENT_MAX_RETRY_AFTER_S + 1)
    script = Script(too_long, "ok")
    with pytest.raises(LLMCallError) as ei:
        _run(client_policy(2), script)
    assert script.calls == 1 and f"{CLIENT_MAX_RETRY_AFTER_S + 1:g} s" in ei.value.hint


@pytest.mark.parametrize("error", [LLMCallError("400", status=400), LLMAuthError("401", status=401)])
def test_other_4xx_are_never_retried(error):
    script = Script(error, "ok")
    with pytest.raises(LLMCallError):
        _run(client_policy(5), script)
    assert script.calls == 1


def test_gives_up_after_max_retries_and_zero_means_one_call():
    down = LLMUnreachableError("refused", retryable=True)
    script = Script(down, down, down, "ok")
    with pytest.raises(UnreachableError) as ei:
        _run(client_policy(2), script)
    assert script.calls == 3 and ei.value.exit_code == ExitCode.UNREACHABLE
    script = Script(LLMCallError("503", status=503, retryable=True), "ok")
    with pytest.raises(LLMCallError):
        _run(client_policy(0), script)
    assert script.calls == 1


def test_the_async_loop_behaves_the_same(monkeypatch):
    slept: list[float] = []

    async def fake_sleep(s):
        slept.append(s)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    outcomes = Script(LLMCallError("429", status=429, retryable=True, retry_after=2), "ok")

    async def call():
        return outcomes()

    assert asyncio.run(acall_with_retries(client_policy(1), call)) == "ok" and slept == [2]


def test_llm_errors_carry_the_documented_exit_codes():
    assert isinstance(LLMAuthError("x"), AuthError) and LLMAuthError("x").exit_code == ExitCode.AUTH
    assert (
        isinstance(LLMUnreachableError("x"), UnreachableError)
        and LLMUnreachableError("x").exit_code == ExitCode.UNREACHABLE
    )
    assert LLMCallError("x").exit_code == ExitCode.FAILURE


def test_a_litellm_timeout_exits_7_as_the_readme_says_without_stopping_a_batch():
    from llmops_cli.adapters.llm.litellm_llm import translate_error

    timeout_error = type("Timeout", (Exception,), {})  # litellm.Timeout, by name as translate_error reads it
    err = translate_error(timeout_error("APITimeoutError - Request timed out."), "openai/x", "http://127.0.0.1:9/v1")
    assert err.exit_code == ExitCode.UNREACHABLE and err.status == 408 and err.retryable and err.hint
    assert not isinstance(err, UnreachableError)  # batch / eval / review record the row and go on


def test_a_server_error_once_the_retries_are_spent_has_a_hint():
    script = Script(*[LLMCallError("HTTP 500", status=500, retryable=True)] * 3)
    with pytest.raises(LLMCallError) as ei:
        _run(client_policy(2), script)
    assert ei.value.exit_code == ExitCode.FAILURE and "llm.max_retries" in ei.value.hint
    assert LLMCallError("HTTP 400", status=400).hint is None  # the request's own fault: the message says what


def test_a_litellm_model_without_a_provider_is_bad_config_exit_2():
    from llmops_cli.adapters.llm.litellm_llm import translate_error

    bad_request = type("BadRequestError", (Exception,), {})
    err = translate_error(bad_request("LLM Provider NOT provided. You passed model=xyz"), "nonprovider/xyz", "")
    assert err.exit_code == ExitCode.USAGE and "openai/gpt-4o-mini" in err.hint
    from llmops_cli.serve.app import error_status

    assert error_status(err) == 503  # `llmops serve`: the server's configuration, not the caller's request


def test_a_missing_api_key_is_bad_config_exit_2_and_not_retried():
    # litellm raises the OpenAI SDK's refusal as an InternalServerError: it was retried 3 times and ended
    # "the server failed on all 3 tries: try again later", exit 1, though no request was ever sent
    from llmops_cli.adapters.llm.litellm_llm import translate_error

    internal = type("InternalServerError", (Exception,), {})
    msg = "litellm.InternalServerError: OpenAIException - Missing credentials. Please pass an `api_key`"
    err = translate_error(internal(msg), "openai/gpt-4o-mini", None)
    assert err.exit_code == ExitCode.USAGE and not err.retryable
    assert str(err) == "LLM openai/gpt-4o-mini has no API key" and "OPENAI_API_KEY" in err.hint


def test_litellm_reaches_a_local_openai_compatible_server_without_a_key(monkeypatch):
    # the HTTP client calls a local server with no key; through litellm (llm.client: litellm) the OpenAI SDK refused
    from llmops_cli.adapters.llm.litellm_llm import NO_KEY, LiteLLM

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    kw, _ = LiteLLM("openai/m", api_base="http://127.0.0.1:9/v1")._kwargs({})
    assert kw["api_key"] == NO_KEY
    kw, _ = LiteLLM("openai/m", api_base="http://127.0.0.1:9/v1", api_key="sk-mine")._kwargs({})
    assert kw["api_key"] == "sk-mine"
    assert "api_key" not in LiteLLM("openai/gpt-4o-mini")._kwargs({})[0]  # a hosted API: its own variable or error
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert "api_key" not in LiteLLM("openai/m", api_base="http://127.0.0.1:9/v1")._kwargs({})[0]  # litellm reads it
