"""litellm adapter: any litellm model string; errors translated; cost from litellm's prices or the config's."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from llmops_cli.adapters.llm.configured import ConfiguredLLM
from llmops_cli.adapters.llm.retry import RetryPolicy, acall_with_retries, call_with_retries, client_policy
from llmops_cli.core.ports import (
    Completion,
    LLMAuthError,
    LLMCallError,
    LLMConfigError,
    LLMTimeoutError,
    LLMUnreachableError,
    Message,
)
from llmops_cli.core.redaction import redact_secrets

_PREPARED = False
_MISSING_KEY = re.compile(r"missing credentials|api_key client option must be set|missing \w+ api key", re.I)
NO_KEY = "EMPTY"  # sent to a local OpenAI-compatible server when no key is configured


def import_litellm():
    """Import litellm without its network price-map fetch and its stdout chatter."""
    global _PREPARED
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    if not _PREPARED:
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True
        _PREPARED = True
    return litellm


def token_prices(model: str) -> tuple[float | None, float | None]:
    """litellm's price per input and per output token of ``model``; (None, None) when it does not know the model."""
    try:
        litellm = import_litellm()
        pin, _ = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=0)
        _, pout = litellm.cost_per_token(model=model, prompt_tokens=0, completion_tokens=1)
        return float(pin), float(pout)
    except Exception:  # noqa: BLE001 - an unknown price is not an error
        return None, None


class LiteLLM(ConfiguredLLM):
    def _kwargs(self, params: dict[str, Any]) -> tuple[dict[str, Any], RetryPolicy]:
        """litellm's keyword arguments, and the retry policy (a per-call ``max_retries`` overrides the client's)."""
        kw: dict[str, Any] = {**self.defaults, **params}
        kw.setdefault("timeout", self.timeout)
        per_call = kw.pop("max_retries", None)
        policy = client_policy(self.max_retries if per_call is None else per_call)
        # The retries are ours (call_with_retries): litellm's num_retries retries 2N+1 times and repeats 400s,
        # and its max_retries reached no retry at all (one request on a 500 or a 429, measured).
        kw["num_retries"] = 0
        kw["max_retries"] = 0
        if self.api_base:
            kw["api_base"] = self.api_base
        if self._api_key:
            kw["api_key"] = self._api_key
        elif self.api_base and self.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            # a local OpenAI-compatible server needs no key (the HTTP client sends none), but the OpenAI SDK under
            # litellm refuses to call without one ("Missing credentials"): give it the placeholder vLLM documents
            kw["api_key"] = NO_KEY
        return kw, policy

    def _cost(self, litellm, response, usage_in: int, usage_out: int) -> float | None:
        """The configured prices, else litellm's (from the response when there is one); None when unknown."""
        pin, pout = self.prices
        if pin is not None or pout is not None:
            return usage_in * (pin or 0.0) + usage_out * (pout or 0.0)
        try:
            if response is not None:
                return float(litellm.completion_cost(completion_response=response))
            pi, po = litellm.cost_per_token(model=self.model, prompt_tokens=usage_in, completion_tokens=usage_out)
            return float(pi + po)
        except Exception:  # noqa: BLE001 - unknown price is not an error
            return None

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        litellm = import_litellm()
        kw, policy = self._kwargs(params)

        def once() -> Completion:
            t0 = time.perf_counter()
            try:
                resp = litellm.completion(model=self.model, messages=messages, **kw)
            except Exception as e:  # noqa: BLE001
                raise translate_error(e, self.model, self.api_base, self._api_key) from None
            return self._to_completion(litellm, resp, time.perf_counter() - t0)

        return call_with_retries(policy, once)

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        litellm = import_litellm()
        kw, policy = self._kwargs(params)

        async def once() -> Completion:
            t0 = time.perf_counter()
            try:
                resp = await litellm.acompletion(model=self.model, messages=messages, **kw)
            except Exception as e:  # noqa: BLE001
                raise translate_error(e, self.model, self.api_base, self._api_key) from None
            return self._to_completion(litellm, resp, time.perf_counter() - t0)

        return await acall_with_retries(policy, once)

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        litellm = import_litellm()
        t0 = time.perf_counter()
        kw, policy = self._kwargs(params)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        usage = None
        # retried only until the first piece is out: what was shown cannot be taken back
        chunks = call_with_retries(policy, lambda: self._open_stream(litellm, messages, kw))
        try:
            for chunk in chunks:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                if chunk.choices:
                    delta = chunk.choices[0].delta.content or ""
                    if delta:
                        parts.append(delta)
                        yield delta
        except Exception as e:  # noqa: BLE001
            raise translate_error(e, self.model, self.api_base, self._api_key) from None
        text = "".join(parts)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        tout = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
        self.last = Completion(
            text=text,
            model=self.model,
            input_tokens=tin,
            output_tokens=tout,
            cost=self._cost(litellm, None, tin, tout),
            latency_s=time.perf_counter() - t0,
        )

    def _open_stream(self, litellm, messages: list[Message], kw: dict[str, Any]) -> Iterator[Any]:
        """The stream with its first chunk already read: an error status surfaces here, where it can be retried."""
        try:
            it = iter(litellm.completion(model=self.model, messages=messages, **kw))
            first = next(it, None)
        except Exception as e:  # noqa: BLE001
            raise translate_error(e, self.model, self.api_base, self._api_key) from None
        return it if first is None else itertools.chain([first], it)

    def _to_completion(self, litellm, resp, latency: float) -> Completion:
        try:
            text = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise LLMCallError(f"{self.model} returned a response without a message", retryable=True) from None
        usage = getattr(resp, "usage", None)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(
            text=text,
            model=self.model,
            input_tokens=tin,
            output_tokens=tout,
            cost=self._cost(litellm, resp, tin, tout),
            latency_s=latency,
        )


_CONNECT_ERRORS = {"ConnectError", "ClientConnectorError", "ClientConnectorDNSError", "gaierror", "NameResolutionError"}


def _connection_failure(e: BaseException) -> str | None:
    """The network error under ``e`` when no connection could be made. litellm reports a refused connection as an
    InternalServerError; the cause chain (openai -> httpx -> OSError) tells what happened."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionError) or type(cur).__name__ in _CONNECT_ERRORS:
            return str(cur).split("\n")[0][:200] or type(cur).__name__
        cur = cur.__cause__ or cur.__context__
    return None


def translate_error(e: Exception, model: str, api_base: str | None, api_key: str | None = None) -> LLMCallError:
    """Map litellm/OpenAI exceptions to LLMCallError with status, retryability and Retry-After; ``api_key`` (the key
    sent) is masked in the message even where the provider echoes it in a format redaction does not know."""
    name = type(e).__name__
    status = getattr(e, "status_code", None)
    retry_after = None
    resp = getattr(e, "response", None)
    # litellm keeps the provider's headers here; e.response is a synthetic response without them
    headers = getattr(e, "litellm_response_headers", None) or getattr(resp, "headers", None)
    if headers is not None:
        ra = headers.get("retry-after") if hasattr(headers, "get") else None
        try:
            retry_after = float(ra) if ra is not None else None
        except ValueError:
            retry_after = None
    msg = str(e).split("\n")[0]
    # never echo keys: litellm messages can include the request; keep the first line and mask sk-... patterns
    msg = redact_secrets(msg, api_key)[:300]
    where = f" at {api_base}" if api_base else ""
    if name in {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return LLMAuthError(
            f"LLM {model}{where} rejected the credentials ({status or name})",
            status=status,
            hint="set the API key (llm.api_key, LLMOPS_LLM_API_KEY or the provider's own variable)",
        )
    if _MISSING_KEY.search(msg):
        # the SDK refused before sending anything (litellm calls it an InternalServerError): no server failed, and
        # retrying cannot help; nothing is configured, exit 2
        return LLMConfigError(
            f"LLM {model}{where} has no API key",
            hint="set the provider's key (e.g. OPENAI_API_KEY) or llm.api_key (LLMOPS_LLM_API_KEY)",
        )
    refused = _connection_failure(e)
    if refused is not None:
        return LLMUnreachableError(
            f"LLM {model}{where} is not reachable ({refused})",
            retryable=True,
            hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)"
            if api_base
            else "check the network and proxy settings",
        )
    if name in {"Timeout", "APITimeoutError"}:
        return LLMTimeoutError(f"LLM {model}{where} call failed: {msg}", retry_after=retry_after)
    if name in {
        "APIConnectionError",
        "Timeout",
        "APITimeoutError",
        "ServiceUnavailableError",
        "InternalServerError",
        "RateLimitError",
    } or (status and (status == 429 or status >= 500)):
        return LLMCallError(
            f"LLM {model}{where} call failed: {msg}", status=status, retryable=True, retry_after=retry_after
        )
    if name == "BadRequestError" and "LLM Provider NOT provided" in str(e):
        return LLMConfigError(  # bad config, exit 2 as the README's table says (it was 1, a failure)
            f"LLM model {model!r} names no provider litellm knows",
            status=400,
            hint="use a litellm model string such as openai/gpt-4o-mini or ollama/llama3",
        )
    if name in {"NotFoundError"} or status == 404:
        return LLMCallError(
            f"LLM model {model!r}{where} was not found: {msg}", status=404, hint="check llm.model and llm.api_base"
        )
    return LLMCallError(f"LLM {model}{where} call failed: {msg}", status=status)
