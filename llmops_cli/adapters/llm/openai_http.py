"""A lean async client for OpenAI-compatible chat endpoints (vLLM, llama.cpp, Ollama, LM Studio, proxies...).

Why it exists: litellm spends ~8-12 ms of CPU per call (logging, cost lookup, the OpenAI SDK over httpx), which
caps one process near 100 calls/s. Batch runs against a self-hosted endpoint need ~300/s at 32 concurrent
calls of 100 ms; this adapter (one aiohttp session per event loop, no SDK) costs well under 1 ms per call.
Same interface, errors and retries as ``LiteLLM``: ``LLMCallError`` with status, retryable and retry_after
(``LLMAuthError`` for 401/403, ``LLMUnreachableError`` when no connection is made), retried up to ``max_retries``.
Used for ``openai/<model>`` with an ``api_base``; every other model goes through litellm.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from llmops_cli.adapters.llm.configured import ConfiguredLLM
from llmops_cli.adapters.llm.litellm_llm import token_prices
from llmops_cli.adapters.llm.retry import acall_with_retries, client_policy
from llmops_cli.core.ports import Completion, LLMAuthError, LLMCallError, LLMUnreachableError, Message
from llmops_cli.core.redaction import redact_secrets

_DROP = {"num_retries", "max_retries", "timeout", "api_base", "api_key", "stream", "stream_options"}


class OpenAIHTTP(ConfiguredLLM):
    def __init__(self, model: str, *, api_base: str, **options: Any):
        super().__init__(model, api_base=api_base, **options)
        self.remote_model = model.split("/", 1)[1] if model.startswith("openai/") else model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self._prices_resolved = self.prices != (None, None)
        self._session: Any = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        async def once() -> Completion:
            try:
                return await self.acomplete(messages, **params)
            finally:
                await self.aclose()

        return asyncio.run(once())

    async def _get_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0))
            self._session_loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        per_call = params.pop("max_retries", None)  # the batch engine passes 0: it runs its own retry loop
        policy = client_policy(self.max_retries if per_call is None else per_call)
        return await acall_with_retries(policy, lambda: self._once(messages, params))

    async def _once(self, messages: list[Message], params: dict[str, Any]) -> Completion:
        import aiohttp

        timeout = float(params.get("timeout") or self.timeout)
        body = {
            **self.defaults,
            **{k: v for k, v in params.items() if k not in _DROP},
            "model": self.remote_model,
            "messages": messages,
        }
        session = await self._get_session()
        t0 = time.perf_counter()
        where = f"LLM {self.model} at {self.api_base}"
        try:
            async with session.post(
                self.url, data=json.dumps(body), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise LLMCallError(
                f"{where} call failed: no answer within {timeout:g} s", status=408, retryable=True
            ) from None
        except aiohttp.ClientConnectorError as e:
            raise LLMUnreachableError(
                f"{where} is not reachable ({getattr(e, 'os_error', None) or e})",
                retryable=True,
                hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)",
            ) from None
        except aiohttp.ClientError as e:
            raise LLMCallError(f"{where} call failed: {type(e).__name__}: {e}", retryable=True) from None
        if status != 200:
            raise _status_error(where, self.model, status, raw, retry_after)
        try:
            doc = json.loads(raw)
            text = doc["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            raise LLMCallError(
                f"{where} returned a malformed response (not a chat completion)", status=502, retryable=True
            ) from None
        usage = doc.get("usage") or {}
        tin = int(usage.get("prompt_tokens") or 0)
        tout = int(usage.get("completion_tokens") or 0)
        return Completion(
            text=text,
            model=self.model,
            input_tokens=tin,
            output_tokens=tout,
            cost=self._cost(tin, tout),
            latency_s=time.perf_counter() - t0,
        )

    def prepare(self) -> None:
        """Resolve prices before a run (imports litellm when the config has none): keeps it out of the event loop."""
        self._cost(0, 0)

    def _cost(self, tin: int, tout: int) -> float | None:
        if not self._prices_resolved:
            # litellm's price table, looked up once per model (importing litellm costs ~2 s, once)
            self._prices_resolved = True
            self.prices = token_prices(self.model)
        pin, pout = self.prices
        if pin is None and pout is None:
            return None
        return tin * (pin or 0.0) + tout * (pout or 0.0)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _status_error(where: str, model: str, status: int, raw: bytes, retry_after: float | None) -> LLMCallError:
    try:
        detail = json.loads(raw).get("error", {}).get("message", "")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        detail = raw[:200].decode("utf-8", "replace")
    detail = redact_secrets(str(detail).splitlines()[0] if detail else "")[:300]
    if status in (401, 403):
        return LLMAuthError(
            f"{where} rejected the credentials ({status})",
            status=status,
            hint="set the API key (llm.api_key, LLMOPS_LLM_API_KEY)",
        )
    if status == 404:
        return LLMCallError(
            f"LLM model {model!r} was not found at {where.split(' at ')[-1]}: {detail}",
            status=404,
            hint="check llm.model and llm.api_base",
        )
    retryable = status in (408, 409, 425, 429) or status >= 500
    return LLMCallError(
        f"{where} call failed: HTTP {status}: {detail}", status=status, retryable=retryable, retry_after=retry_after
    )
