"""A lean client for OpenAI-compatible chat endpoints (vLLM, llama.cpp, Ollama, LM Studio, proxies...).

Why it exists: litellm spends ~8-15 ms of CPU per call (logging, cost lookup, the OpenAI SDK over httpx), which
caps one process near 100 calls/s. Batch runs against a self-hosted endpoint need ~300/s at 32 concurrent
calls of 100 ms, and a server answering questions from many threads needs the same; this adapter (no SDK) costs
well under 1 ms per call. Two ways to call, one set of rules:

- async (``acomplete``: batch rows): one aiohttp session per event loop;
- blocking (``complete``, ``stream``: the answers of ``llmops ask`` / ``llmops serve``): one keep-alive
  ``http.client`` connection per calling thread, so any number of threads call one client at once; ``stream``
  reads the server-sent events of ``stream: true`` (usage from ``stream_options.include_usage``) and keeps the
  finished call's Completion in ``last``, per thread.

Same interface, errors and retries as ``LiteLLM``: ``LLMCallError`` with status, retryable and retry_after
(``LLMAuthError`` for 401/403, ``LLMUnreachableError`` when no connection is made), retried up to ``max_retries``
(a stream only until its first piece: what was shown cannot be taken back). Used for ``openai/<model>`` with an
``api_base``; every other model goes through litellm.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from llmops_cli.adapters.llm.configured import ConfiguredLLM
from llmops_cli.adapters.llm.litellm_llm import token_prices
from llmops_cli.adapters.llm.retry import acall_with_retries, call_with_retries, client_policy
from llmops_cli.core.ports import (
    Completion,
    LLMAuthError,
    LLMCallError,
    LLMTimeoutError,
    LLMUnreachableError,
    Message,
)
from llmops_cli.core.redaction import redact_secrets

_DROP = {"num_retries", "max_retries", "timeout", "api_base", "api_key", "stream", "stream_options"}


class OpenAIHTTP(ConfiguredLLM):
    def __init__(self, model: str, *, api_base: str, **options: Any):
        super().__init__(model, api_base=api_base, **options)
        # litellm and the OpenAI SDK read the key of an openai/ model from OPENAI_API_KEY when none is configured:
        # the same endpoint must get the same key whichever client calls it
        self._api_key = self._api_key or os.environ.get("OPENAI_API_KEY") or None
        self.remote_model = model.split("/", 1)[1] if model.startswith("openai/") else model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self._prices_resolved = self.prices != (None, None)
        self._session: Any = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        parts = urlsplit(self.url)
        # the blocking client sends the key alone (never a URL's user:password@); aiohttp refuses a URL with
        # credentials beside an Authorization header (ValueError: batch died with an internal error), so it too
        # posts to the URL without them when there is a key
        self._async_url = (
            parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
            if self._api_key and "@" in parts.netloc
            else self.url
        )
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        # self._local (ConfiguredLLM's, per thread) also holds each thread's keep-alive connection
        self._conns: set[http.client.HTTPConnection] = set()
        self._conns_lock = threading.Lock()

    # --- blocking calls: one keep-alive connection per thread ---

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        policy, timeout = self._call_options(params)
        body = json.dumps(self._body(messages, params)).encode()
        return call_with_retries(policy, lambda: self._complete_once(body, timeout))

    def _complete_once(self, body: bytes, timeout: float) -> Completion:
        t0 = time.perf_counter()
        resp = self._send(body, timeout)
        raw = self._read_body(resp, timeout)
        if resp.status != 200:
            raise self._status_error(resp, raw)
        return self._completion(raw, t0)

    def _read_body(self, resp: http.client.HTTPResponse, timeout: float) -> bytes:
        """The whole response; its connection is dropped when reading failed or the server closes it."""
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise self._read_error(e, timeout) from None
        if resp.will_close:
            self._drop()
        return raw

    def _status_error(self, resp: http.client.HTTPResponse, raw: bytes) -> LLMCallError:
        return _status_error(
            self._where(), self.model, resp.status, raw, _retry_after(resp.getheader("Retry-After")), self._api_key
        )

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        t0 = time.perf_counter()
        self.last = None
        policy, timeout = self._call_options(params)
        doc = self._body(messages, params)
        doc["stream"] = True
        doc["stream_options"] = {"include_usage": True}
        body = json.dumps(doc).encode()
        # retried only until the first event is read: an error status surfaces there
        resp, events = call_with_retries(policy, lambda: self._open_stream(body, timeout))
        parts: list[str] = []
        usage: dict[str, Any] = {}
        done = False
        try:
            for event in events:
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        parts.append(piece)
                        yield piece
            resp.read()  # the end of the chunked body, so the connection serves the next call
            done = not resp.will_close
        except (OSError, http.client.HTTPException) as e:
            raise self._read_error(e, timeout) from None
        finally:
            if not done:  # abandoned, failed or closing: its connection holds an unread response
                self._drop()
        tin = int(usage.get("prompt_tokens") or 0)
        tout = int(usage.get("completion_tokens") or 0)
        self.last = Completion(
            text="".join(parts),
            model=self.model,
            input_tokens=tin,
            output_tokens=tout,
            cost=self._cost(tin, tout),
            latency_s=time.perf_counter() - t0,
        )

    def _open_stream(self, body: bytes, timeout: float) -> tuple[Any, Iterator[dict[str, Any]]]:
        resp = self._send(body, timeout)
        if resp.status != 200:
            raise self._status_error(resp, self._read_body(resp, timeout))
        events = self._events(resp)
        try:
            first = next(events, None)
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise self._read_error(e, timeout) from None
        except LLMCallError:
            self._drop()
            raise
        return resp, events if first is None else itertools.chain((first,), events)

    def _events(self, resp: Any) -> Iterator[dict[str, Any]]:
        """The JSON documents of a server-sent event stream, up to ``data: [DONE]`` (or the end of the body)."""
        for line in resp:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": keep-alive"), event names
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                doc = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LLMCallError(
                    f"{self._where()} returned a malformed stream (an event that is not JSON)", status=502
                ) from None
            if not isinstance(doc, dict):
                continue
            if doc.get("error"):  # some servers report a failure inside a 200 stream
                detail = str((doc["error"] or {}).get("message", "") or doc["error"])
                detail = redact_secrets(detail, self._api_key)[:300]
                raise LLMCallError(f"{self._where()} call failed: {detail}", status=502, retryable=True)
            yield doc

    def _send(self, body: bytes, timeout: float) -> Any:
        """POST ``body`` on this thread's connection and return the response (its headers read). A kept-alive
        connection the server has closed meanwhile is replaced once without counting as a retry."""
        for attempt in (0, 1):
            conn, reused = self._connection(timeout)
            try:
                conn.request("POST", self._path, body, self._headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop()
                if reused and attempt == 0:
                    continue
                raise LLMCallError(f"{self._where()} call failed: {type(e).__name__}", retryable=True) from None
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise self._read_error(e, timeout) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (made and connected when it has none) and whether it served a call before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            conn.sock.settimeout(timeout)
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError:
            raise LLMTimeoutError(f"{self._where()} call failed: no connection within {timeout:g} s") from None
        except OSError as e:
            raise LLMUnreachableError(
                f"{self._where()} is not reachable ({e.strerror or type(e).__name__})",
                retryable=True,
                hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)",
            ) from None
        self._local.conn = conn
        with self._conns_lock:
            self._conns.add(conn)
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        """Close every thread's connection (a thread that calls again opens a new one)."""
        with self._conns_lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()

    def _read_error(self, e: BaseException, timeout: float) -> LLMCallError:
        if isinstance(e, TimeoutError):
            return LLMTimeoutError(f"{self._where()} call failed: no answer within {timeout:g} s")
        return LLMCallError(f"{self._where()} call failed: {type(e).__name__}", retryable=True)

    def _call_options(self, params: dict[str, Any]) -> tuple[Any, float]:
        """The retry policy (``max_retries`` taken out of ``params``: the batch engine passes 0 and retries itself)
        and the timeout of one blocking call."""
        per_call = params.pop("max_retries", None)
        return client_policy(self.max_retries if per_call is None else per_call), float(
            params.get("timeout") or self.timeout
        )

    def _where(self) -> str:
        return f"LLM {self.model} at {self.api_base}"

    def _body(self, messages: list[Message], params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.defaults,
            **{k: v for k, v in params.items() if k not in _DROP},
            "model": self.remote_model,
            "messages": messages,
        }

    def _completion(self, raw: bytes, t0: float) -> Completion:
        try:
            doc = json.loads(raw)
            text = doc["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            raise LLMCallError(
                f"{self._where()} returned a malformed response (not a chat completion)", status=502, retryable=True
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

    # --- async calls: one aiohttp session per event loop ---

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
        policy, _ = self._call_options(params)
        return await acall_with_retries(policy, lambda: self._once(messages, params))

    async def _once(self, messages: list[Message], params: dict[str, Any]) -> Completion:
        import aiohttp

        timeout = float(params.get("timeout") or self.timeout)
        body = self._body(messages, params)
        session = await self._get_session()
        t0 = time.perf_counter()
        where = self._where()
        try:
            async with session.post(
                self._async_url, data=json.dumps(body), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise LLMTimeoutError(f"{where} call failed: no answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorError as e:
            raise LLMUnreachableError(
                f"{where} is not reachable ({getattr(e, 'os_error', None) or e})",
                retryable=True,
                hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)",
            ) from None
        except aiohttp.ClientError as e:
            raise LLMCallError(f"{where} call failed: {type(e).__name__}: {e}", retryable=True) from None
        if status != 200:
            raise _status_error(where, self.model, status, raw, retry_after, self._api_key)
        return self._completion(raw, t0)

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


def _status_error(
    where: str, model: str, status: int, raw: bytes, retry_after: float | None, api_key: str | None = None
) -> LLMCallError:
    try:
        detail = json.loads(raw).get("error", {}).get("message", "")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        detail = raw[:200].decode("utf-8", "replace")
    detail = redact_secrets(str(detail).splitlines()[0] if detail else "", api_key)[:300]
    if status in (401, 403):
        return LLMAuthError(
            f"{where} rejected the credentials ({status})",
            status=status,
            hint="set the API key (llm.api_key, LLMOPS_LLM_API_KEY, or OPENAI_API_KEY)",
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
