"""Providers' Batch APIs (files + batch jobs) behind ``core.batch.provider.BatchAPI``.

- ``OpenAIBatchHTTP``: OpenAI's ``/v1/files`` and ``/v1/batches`` over plain HTTP (httpx), for ``openai/<model>``
  at OpenAI or at any endpoint that implements them (``llm.api_base``: proxies, Azure-style gateways, the tests'
  server). No SDK, so no litellm import (~2 s) for a command that mostly waits.
- ``LiteLLMBatch``: litellm's files/batches functions (``create_file``, ``create_batch``, ``retrieve_batch``,
  ``cancel_batch``, ``file_content``, ``list_batches``) for the other providers litellm serves that way (azure,
  vertex_ai, bedrock, anthropic ...): same interface, litellm's errors turned into ours.

Every call but ``create`` is retried like any LLM call (429, 5xx, timeouts, connection errors; ``core/retry.py``'s
policy with ``llm.max_retries``): a failed ``create`` may have made the job, so the caller looks it up by its key
before trying again (``core.batch.provider.ProviderRun``). ``open_batch_api(settings, model)`` picks one.
"""

from __future__ import annotations

import json
from typing import Any

from llmops_cli.adapters.llm.openai_http import _retry_after, _status_error
from llmops_cli.adapters.llm.retry import call_with_retries, client_policy
from llmops_cli.core.ports import LLMCallError, LLMUnreachableError
from llmops_cli.errors import UsageError

OPENAI_BASE = "https://api.openai.com/v1"
FIND_PAGES = 5  # listing pages searched for a job by its key (newest first, 100 per page)


class OpenAIBatchHTTP:
    provider = "openai"
    api_name = "batch API"  # what its errors call it

    def __init__(
        self, *, api_base: str | None, api_key: str | None, timeout: float = 60.0, max_retries: int = 2
    ) -> None:
        self.api_base = (api_base or OPENAI_BASE).rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.policy = client_policy(max(max_retries, 4))  # a poll that gives up costs a whole re-run: retry more
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.Client(base_url=self.api_base, headers=headers, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, path: str, *, raw: bool = False, retry: bool = True, **kw: Any) -> Any:
        import httpx

        where = f"{self.api_name} at {self.api_base}"

        def once() -> Any:
            try:
                r = self._http().request(method, path, **kw)
            except httpx.ConnectError as e:
                raise LLMUnreachableError(
                    f"{where} is not reachable ({e})",
                    retryable=True,
                    hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)",
                ) from None
            except httpx.TimeoutException:
                raise LLMCallError(
                    f"{where}: {method} {path} had no answer within {self.timeout:g} s", status=408, retryable=True
                ) from None
            except httpx.HTTPError as e:
                raise LLMCallError(f"{where}: {method} {path} failed: {type(e).__name__}", retryable=True) from None
            if r.status_code != 200:
                e = _status_error(f"{where} ({method} {path})", "batch", r.status_code, r.content, None, self._api_key)
                e.retry_after = _retry_after(r.headers.get("Retry-After"))
                raise e
            if raw:
                return r.content
            try:
                return r.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LLMCallError(f"{where}: {method} {path} returned no JSON", status=502, retryable=True) from None

        return call_with_retries(self.policy, once) if retry else once()

    def upload(self, data: bytes, filename: str) -> str:
        doc = self._call("POST", "/files", data={"purpose": "batch"}, files={"file": (filename, data)})
        return str(doc["id"])

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": metadata,
        }
        return self._call("POST", "/batches", json=body, retry=False)  # retried by the caller, after a lookup

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._call("GET", f"/batches/{batch_id}")

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._call("POST", f"/batches/{batch_id}/cancel")

    def content(self, file_id: str) -> bytes:
        return self._call("GET", f"/files/{file_id}/content", raw=True)

    def find(self, key: str, since: float) -> dict[str, Any] | None:
        after: str | None = None
        for _ in range(FIND_PAGES):
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["after"] = after
            page = self._call("GET", "/batches", params=params)
            data = page.get("data") or []
            for b in data:
                if (b.get("metadata") or {}).get("llmops_key") == key:
                    return b
            if not page.get("has_more") or not data or min(int(b.get("created_at") or 0) for b in data) < since:
                return None
            after = data[-1]["id"]
        return None


class LiteLLMBatch:
    """litellm's files/batches API for one provider (``custom_llm_provider``)."""

    def __init__(self, provider: str, *, api_base: str | None, api_key: str | None, max_retries: int = 2) -> None:
        self.provider = provider
        self.kw: dict[str, Any] = {"custom_llm_provider": provider}
        if api_base:
            self.kw["api_base"] = api_base
        if api_key:
            self.kw["api_key"] = api_key
        self.policy = client_policy(max(max_retries, 4))

    def _call(self, fn_name: str, *args: Any, retry: bool = True, **kw: Any) -> Any:
        from llmops_cli.adapters.llm.litellm_llm import import_litellm

        litellm = import_litellm()

        def once() -> Any:
            try:
                return getattr(litellm, fn_name)(*args, **kw, **self.kw)
            except Exception as e:  # noqa: BLE001 - litellm's errors become ours
                status = getattr(e, "status_code", None)
                retryable = status is None or status in (408, 409, 429) or int(status) >= 500
                raise LLMCallError(
                    f"{self.provider} batch API: {fn_name} failed: {type(e).__name__}: {str(e)[:300]}",
                    status=status,
                    retryable=retryable,
                ) from None

        return call_with_retries(self.policy, once) if retry else once()

    @staticmethod
    def _dict(obj: Any) -> dict[str, Any]:
        return obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)

    def upload(self, data: bytes, filename: str) -> str:
        return str(self._call("create_file", file=(filename, data), purpose="batch").id)

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        b = self._call(
            "create_batch",
            completion_window="24h",
            endpoint="/v1/chat/completions",
            input_file_id=file_id,
            metadata=metadata,
            retry=False,  # retried by the caller, after a lookup
        )
        return self._dict(b)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._dict(self._call("retrieve_batch", batch_id=batch_id))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._dict(self._call("cancel_batch", batch_id=batch_id))

    def content(self, file_id: str) -> bytes:
        r = self._call("file_content", file_id=file_id)
        return bytes(getattr(r, "content", r))

    def find(self, key: str, since: float) -> dict[str, Any] | None:
        page = self._dict(self._call("list_batches", limit=100))
        for b in page.get("data") or []:
            b = self._dict(b) if not isinstance(b, dict) else b
            if (b.get("metadata") or {}).get("llmops_key") == key and float(b.get("created_at") or 0) >= since:
                return b
        return None

    def close(self) -> None:
        pass


def open_batch_api(
    model: str,
    *,
    api_base: str | None,
    api_key: str | None,
    timeout: float = 60.0,
    max_retries: int = 2,
    client: str = "auto",
) -> Any:
    """The Batch API for ``model``: plain HTTP for ``openai/`` models (unless ``client="litellm"``), litellm's for
    the providers it serves that way; any other is a usage error naming them."""
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    if provider == "openai" and client != "litellm":
        return OpenAIBatchHTTP(api_base=api_base, api_key=api_key, timeout=timeout, max_retries=max_retries)
    if provider in ("openai", "azure", "vertex_ai", "bedrock", "anthropic", "hosted_vllm"):
        return LiteLLMBatch(provider, api_base=api_base, api_key=api_key, max_retries=max_retries)
    raise UsageError(
        f"--via provider: {provider!r} has no batch API llmops can use (model {model})",
        hint="use openai/, azure/, vertex_ai/, bedrock/ or anthropic/ models, or --via online",
    )
