"""A local OpenAI-compatible HTTP server for tests and benchmarks (aiohttp, 127.0.0.1, ephemeral port).

Endpoints: ``POST /v1/chat/completions`` (plain JSON, or SSE with ``stream: true`` and a final usage chunk
when ``stream_options.include_usage``), ``POST /v1/embeddings`` (deterministic unit vectors from a hash of
the text), ``GET /v1/models``; plus ``GET /_stats`` (counters, for a server in another process).

The Batch API too: ``POST /v1/files`` (multipart upload), ``GET /v1/files/{id}`` and ``/content``,
``POST /v1/batches``, ``GET /v1/batches`` (listing, newest first), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. A job stays ``in_progress`` for ``batch_seconds`` after its creation, then its
lines are answered by the same responder and rules as the chat route (a faulted line lands in the error file
with its status), except that lines past ``batch_expire_after`` expire (``batch_expired``, the job ends
``expired``). ``counters["batches_created"]`` counts jobs; ``fail_next_batch_api(kind)`` faults the next
files/batches request (e.g. a 500 for a client's retry).

Scripting, per test::

    with OpenAIServer(latency=0.05) as srv:               # or the ``openai_server`` pytest fixture
        srv.responder = lambda body: '{"label": "spam"}'   # str -> the reply text; dict -> the full response
        srv.fail_next("429", retry_after=1)               # a queue of faults, consumed one per chat request
        srv.add_rule(lambda b: "row-7" in last_user_text(b), Fault("500"), times=2)  # faults for matching requests
        llm = litellm_for(srv)                             # a LiteLLM pointing at it (model openai/test-model)
        ...
        assert srv.success_count() == 10

Fault kinds: ``429`` (with ``Retry-After``), ``500``, ``503``, ``400``, ``401``, ``hang`` (sleeps ``seconds``,
longer than the client's timeout, then 504; cut short by ``stop()``) and ``malformed`` (200 with a body that is
not JSON).
A responder may also return a ``Fault`` for the request it sees. Latency is a number of seconds or a callable
``body -> seconds``. Usage is counted roughly from text length (``approx_tokens``).

Standalone (benchmarks, demos): ``python -m tests.support.openai_server --port 0 --latency 0.1`` prints
``listening on http://127.0.0.1:PORT/v1`` on stdout; ``ServerProcess`` starts it that way from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_MODEL = "openai/test-model"
TEST_API_KEY = "sk-test-not-a-real-key-000000"

Body = dict[str, Any]
Responder = Callable[[Body], "str | dict[str, Any] | Fault"]


@dataclass
class Fault:
    """One scripted failure. ``kind``: 429, 500, 503, 400, 401, hang, malformed."""

    kind: str
    retry_after: float | None = 1.0  # for 429 (and 503 when set)
    seconds: float = 30.0  # for hang
    message: str | None = None

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in {"429", "500", "503", "400", "401", "hang", "malformed"}:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass
class RequestRecord:
    method: str
    path: str
    body: Body | None
    authorized: bool  # an Authorization header was present
    status: int = 0
    fault: str | None = None
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.fault is None


@dataclass
class _Rule:
    predicate: Callable[[Body], bool]
    fault: Fault
    times: int | None  # None = always


def approx_tokens(text: str) -> int:
    """Roughly 4 characters per token, at least 1 for non-empty text."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def last_user_text(body: Body) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def default_reply(body: Body) -> str:
    """The default answer: deterministic, derived from the last user message."""
    digest = hashlib.sha256(last_user_text(body).encode("utf-8")).hexdigest()[:16]
    return f"reply-{digest}"


def embedding_for(text: str, dims: int = 16) -> list[float]:
    """A deterministic unit vector from the hash of the text."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        h = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in h)
        counter += 1
    v = raw[:dims]
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


class OpenAIServer:
    """The server, run by aiohttp on its own event loop in a background thread."""

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        latency: float | Callable[[Body], float] = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        embedding_dims: int = 16,
    ):
        self.responder: Responder = responder or default_reply
        self.latency = latency
        self.embedding_dims = embedding_dims
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rules: list[_Rule] = []
        self.log: list[RequestRecord] = []
        self.counters: Counter[str] = Counter()
        self._in_flight = 0
        self.max_in_flight = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._runner = None
        # the Batch API's state: files by id (bytes), jobs by id (the batch object plus its request lines)
        self.batch_seconds = 0.2
        self.batch_expire_after: int | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._batch_api_faults: list[Fault] = []
        self._batch_get_faults: list[Fault] = []  # for status queries only (GET /v1/batches/{id})

    # --- addresses ---
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # --- scripting ---
    def fail_next(self, kind: str, n: int = 1, **kw: Any) -> None:
        """Queue ``n`` faults for the next chat/embedding requests (in arrival order)."""
        with self._lock:
            self._faults.extend(Fault(kind, **kw) for _ in range(n))

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def add_rule(self, predicate: Callable[[Body], bool], fault: Fault, times: int | None = 1) -> None:
        """Fail requests whose body matches ``predicate``, ``times`` times (None = every time)."""
        with self._lock:
            self._rules.append(_Rule(predicate, fault, times))

    def fail_next_batch_api(self, kind: str, n: int = 1, **kw: Any) -> None:
        """Queue ``n`` faults for the next files/batches requests (in arrival order)."""
        with self._lock:
            self._batch_api_faults.extend(Fault(kind, **kw) for _ in range(n))

    def reset(self) -> None:
        """Forget faults, rules, log and counters; restore the default responder and no latency."""
        with self._lock:
            self._batch_api_faults.clear()
            self._batch_get_faults.clear()
            self.files.clear()
            self.batches.clear()
            self.batch_seconds, self.batch_expire_after = 0.2, None
            self._faults.clear()
            self._rules.clear()
            self.log.clear()
            self.counters.clear()
            self.max_in_flight = 0
        self.responder = default_reply
        self.latency = 0.0

    # --- inspection ---
    def records(self, path: str = "/v1/chat/completions") -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def successes(self, path: str = "/v1/chat/completions") -> list[RequestRecord]:
        return [r for r in self.records(path) if r.ok]

    def success_count(self, path: str = "/v1/chat/completions") -> int:
        return len(self.successes(path))

    def success_counts_by(
        self, key: Callable[[Body], Any] = last_user_text, path: str = "/v1/chat/completions"
    ) -> Counter:
        """How many successful requests each key (default: the last user message) got."""
        return Counter(key(r.body or {}) for r in self.successes(path))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "requests": len(self.log),
                "max_in_flight": self.max_in_flight,
                "successes": sum(1 for r in self.log if r.ok and r.path == "/v1/chat/completions"),
            }

    # --- lifecycle ---
    def start(self) -> OpenAIServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:  # noqa: BLE001 - reported to start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"openai-server-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"the test OpenAI server did not start: {errors[0] if errors else 'timeout'}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._closing is not None:
            loop.call_soon_threadsafe(self._closing.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        self._loop = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _serve(self) -> None:
        from aiohttp import web

        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_faults/batch-status", self._queue_batch_status_faults)
        app.router.add_post("/v1/files", self._file_upload)
        app.router.add_get("/v1/files/{file_id}", self._file_get)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._batch_create)
        app.router.add_get("/v1/batches", self._batch_list)
        app.router.add_get("/v1/batches/{batch_id}", self._batch_get)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self._batch_cancel)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.SockSite(self._runner, self._sock, backlog=1024)
        await site.start()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- handlers ---
    def _take_fault(self, body: Body) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                try:
                    hit = rule.predicate(body)
                except Exception:  # noqa: BLE001 - a bad predicate is a non-match
                    hit = False
                if hit:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.fault
            if self._faults:
                return self._faults.pop(0)
        return None

    async def _read_body(self, request: Any) -> Body | None:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _record(self, request: Any, body: Body | None) -> RequestRecord:
        rec = RequestRecord(
            request.method, request.path, body, bool(request.headers.get("Authorization")), started=time.time()
        )
        with self._lock:
            self.log.append(rec)
            self.counters["requests"] += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return rec

    def _finish(self, rec: RequestRecord, status: int, fault: str | None = None) -> None:
        with self._lock:
            rec.status, rec.fault, rec.finished = status, fault, time.time()
            self._in_flight -= 1
            self.counters[f"status_{status}"] += 1
            if fault:
                self.counters[f"fault_{fault}"] += 1
            elif status == 200:
                self.counters["ok"] += 1

    async def _sleep_latency(self, body: Body) -> None:
        lat = self.latency(body) if callable(self.latency) else self.latency
        if lat and lat > 0:
            await asyncio.sleep(lat)

    async def _fault_response(self, fault: Fault, rec: RequestRecord) -> Any:
        from aiohttp import web

        def err(status: int, etype: str, msg: str, headers: dict[str, str] | None = None) -> Any:
            self._finish(rec, status, fault.kind)
            return web.json_response(
                {"error": {"message": fault.message or msg, "type": etype, "code": status}},
                status=status,
                headers=headers,
            )

        if fault.kind == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return err(429, "rate_limit_exceeded", "Rate limit reached (test server)", headers)
        if fault.kind == "500":
            return err(500, "server_error", "Internal server error (test server)")
        if fault.kind == "503":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return err(503, "service_unavailable", "Service unavailable (test server)", headers)
        if fault.kind == "400":
            return err(400, "invalid_request_error", "Bad request (test server)")
        if fault.kind == "401":
            return err(401, "invalid_api_key", "Incorrect API key provided (test server)")
        if fault.kind == "hang":
            try:
                assert self._closing is not None
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            except TimeoutError:
                pass
            return err(504, "timeout", "Hung (test server)")
        # malformed: a 200 whose body is not JSON
        self._finish(rec, 200, fault.kind)
        return web.Response(status=200, text='{"id": "chatcmpl-broken", "choices": [', content_type="application/json")

    async def _chat(self, request: Any) -> Any:
        body = await self._read_body(request)
        rec = self._record(request, body)
        try:
            return await self._chat_reply(request, body, rec)
        except asyncio.CancelledError:
            # the client went away (timeout, kill): not a success, whatever happened before
            if not rec.finished:
                self._finish(rec, 499, "client_gone")
            raise

    async def _chat_reply(self, request: Any, body: Body | None, rec: RequestRecord) -> Any:
        from aiohttp import web

        if body is None or not isinstance(body.get("messages"), list):
            self._finish(rec, 400)
            return web.json_response(
                {"error": {"message": "body must be JSON with a messages list", "type": "invalid_request_error"}},
                status=400,
            )
        fault = self._take_fault(body)
        await self._sleep_latency(body)
        if fault is None:
            try:
                reply = self.responder(body)
            except Exception as e:  # noqa: BLE001 - a broken responder is a 500, visible in the log
                fault = Fault("500", message=f"responder raised {type(e).__name__}: {e}")
                reply = ""
            if isinstance(reply, Fault):
                fault = reply
        if fault is not None:
            return await self._fault_response(fault, rec)
        model = body.get("model") or "test-model"
        prompt_tokens = sum(approx_tokens(message_text(m.get("content"))) for m in body["messages"])
        if isinstance(reply, dict):
            payload = dict(reply)
            payload.setdefault("id", f"chatcmpl-{uuid.uuid4().hex[:24]}")
            payload.setdefault("object", "chat.completion")
            payload.setdefault("created", int(time.time()))
            payload.setdefault("model", model)
            if "usage" not in payload:
                text = "".join(
                    message_text((c.get("message") or {}).get("content")) for c in payload.get("choices") or []
                )
                ct = approx_tokens(text)
                payload["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": ct,
                    "total_tokens": prompt_tokens + ct,
                }
            self._finish(rec, 200)
            return web.json_response(payload)
        text = str(reply)
        completion_tokens = approx_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream"):
            return await self._stream(
                request,
                rec,
                cid,
                created,
                model,
                text,
                usage,
                bool((body.get("stream_options") or {}).get("include_usage")),
            )
        self._finish(rec, 200)
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    async def _stream(
        self,
        request: Any,
        rec: RequestRecord,
        cid: str,
        created: int,
        model: str,
        text: str,
        usage: dict[str, int],
        include_usage: bool,
    ) -> Any:
        from aiohttp import web

        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            doc = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(doc)}\n\n".encode()

        await resp.write(chunk({"role": "assistant", "content": ""}, None))
        words = text.split(" ")
        for i, w in enumerate(words):
            await resp.write(chunk({"content": w if i == 0 else " " + w}, None))
        await resp.write(chunk({}, "stop"))
        if include_usage:
            doc = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(doc)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self._finish(rec, 200)
        return resp

    async def _embeddings(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._read_body(request)
        rec = self._record(request, body)
        inputs = body.get("input") if body else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            self._finish(rec, 400)
            return web.json_response(
                {"error": {"message": "input must be a string or a list of strings", "type": "invalid_request_error"}},
                status=400,
            )
        fault = self._take_fault(body)
        await self._sleep_latency(body)
        if fault is not None:
            return await self._fault_response(fault, rec)
        dims = int(body.get("dimensions") or self.embedding_dims)
        data = [{"object": "embedding", "index": i, "embedding": embedding_for(t, dims)} for i, t in enumerate(inputs)]
        tokens = sum(approx_tokens(t) for t in inputs)
        self._finish(rec, 200)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "test-embedding",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "test-model", "object": "model", "created": 0, "owned_by": "llmops-tests"},
                    {"id": "test-embedding", "object": "model", "created": 0, "owned_by": "llmops-tests"},
                ],
            }
        )

    # --- the Batch API ---
    def _batch_api_fault(self) -> Fault | None:
        with self._lock:
            return self._batch_api_faults.pop(0) if self._batch_api_faults else None

    def _api_error(self, rec: RequestRecord, status: int, message: str) -> Any:
        from aiohttp import web

        self._finish(rec, status)
        return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = f"file-{uuid.uuid4().hex[:24]}"
        meta = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[fid] = {"meta": meta, "data": data}
        return meta

    async def _file_upload(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        fault = self._batch_api_fault()
        if fault is not None:
            return await self._fault_response(fault, rec)
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or not hasattr(upload, "file") or purpose != "batch":
            return self._api_error(rec, 400, "multipart form with file and purpose=batch expected")
        meta = self._add_file(upload.file.read(), upload.filename or "input.jsonl", "batch")
        self._finish(rec, 200)
        return web.json_response(meta)

    async def _file_get(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return self._api_error(rec, 404, "no such file")
        self._finish(rec, 200)
        return web.json_response(f["meta"])

    async def _file_content(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        fault = self._batch_api_fault()
        if fault is not None:
            return await self._fault_response(fault, rec)
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return self._api_error(rec, 404, "no such file")
        self._finish(rec, 200)
        return web.Response(body=f["data"], content_type="application/octet-stream")

    async def _batch_create(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._read_body(request)
        rec = self._record(request, body)
        fault = self._batch_api_fault()
        if fault is not None:
            return await self._fault_response(fault, rec)
        f = self.files.get((body or {}).get("input_file_id") or "")
        if body is None or f is None:
            return self._api_error(rec, 400, "input_file_id names no uploaded file")
        if body.get("endpoint") != "/v1/chat/completions":
            return self._api_error(rec, 400, "endpoint must be /v1/chat/completions")
        lines = [json.loads(x) for x in f["data"].decode("utf-8").splitlines() if x.strip()]
        now = int(time.time())
        bid = f"batch_{uuid.uuid4().hex[:24]}"
        job = {
            "id": bid,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window") or "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "completed_at": None,
            "cancelled_at": None,
            "expired_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata") or None,
        }
        with self._lock:
            self.batches[bid] = {"job": job, "lines": lines, "created": time.monotonic()}
            self.counters["batches_created"] += 1
        self._finish(rec, 200)
        return web.json_response(job)

    def _settle(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A job whose time has come: answer its lines (once) and publish the output and error files."""
        job = entry["job"]
        if job["status"] != "in_progress" or time.monotonic() - entry["created"] < self.batch_seconds:
            return job
        out, err = [], []
        expired = False
        for i, line in enumerate(entry["lines"]):
            cid, body = line.get("custom_id"), line.get("body") or {}
            rid = f"batch_req_{uuid.uuid4().hex[:24]}"
            if self.batch_expire_after is not None and i >= self.batch_expire_after:
                expired = True
                err.append(
                    {
                        "id": rid,
                        "custom_id": cid,
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": "This request could not be executed before the completion window expired.",
                        },
                    }
                )
                continue
            reply = self._batch_reply(body)
            if reply["status_code"] == 200:
                out.append({"id": rid, "custom_id": cid, "response": {**reply, "request_id": rid}, "error": None})
            else:
                err.append({"id": rid, "custom_id": cid, "response": {**reply, "request_id": rid}, "error": None})
        now = int(time.time())
        if out:
            job["output_file_id"] = self._add_file(_jsonl(out), "batch_output.jsonl", "batch_output")["id"]
        if err:
            job["error_file_id"] = self._add_file(_jsonl(err), "batch_errors.jsonl", "batch_output")["id"]
        job["request_counts"] = {"total": len(entry["lines"]), "completed": len(out), "failed": len(err)}
        job["status"] = "expired" if expired else "completed"
        job["expired_at" if expired else "completed_at"] = now
        return job

    def _batch_reply(self, body: Body) -> dict[str, Any]:
        """One line of a job: the chat route's answer (responder, rules, faults) as a status and a body."""
        fault = self._take_fault(body) if isinstance(body.get("messages"), list) else Fault("400")
        reply: Any = ""
        if fault is None:
            try:
                reply = self.responder(body)
            except Exception as e:  # noqa: BLE001 - a broken responder is a 500 line
                fault = Fault("500", message=f"responder raised {type(e).__name__}: {e}")
            if isinstance(reply, Fault):
                fault = reply
        if fault is not None:
            status = {"429": 429, "500": 500, "503": 503, "400": 400, "401": 401}.get(fault.kind, 500)
            with self._lock:
                self.counters[f"batch_line_{status}"] += 1
            return {"status_code": status, "body": {"error": {"message": fault.message or f"{status} (test server)"}}}
        prompt_tokens = sum(approx_tokens(message_text(m.get("content"))) for m in body["messages"])
        text = str(reply)
        ct = approx_tokens(text)
        with self._lock:
            self.counters["batch_lines_ok"] += 1
        return {
            "status_code": 200,
            "body": {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or "test-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": ct, "total_tokens": prompt_tokens + ct},
            },
        }

    async def _batch_get(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        with self._lock:
            fault = self._batch_get_faults.pop(0) if self._batch_get_faults else None
        fault = fault or self._batch_api_fault()
        if fault is not None:
            return await self._fault_response(fault, rec)
        entry = self.batches.get(request.match_info["batch_id"])
        if entry is None:
            return self._api_error(rec, 404, "no such batch")
        job = self._settle(entry)
        self._finish(rec, 200)
        return web.json_response(job)

    async def _batch_list(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        fault = self._batch_api_fault()
        if fault is not None:
            return await self._fault_response(fault, rec)
        jobs = [self._settle(e) for e in self.batches.values()]
        jobs.sort(key=lambda j: j["created_at"], reverse=True)
        after = request.query.get("after")
        if after:
            ids = [j["id"] for j in jobs]
            jobs = jobs[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit") or 20)
        page = jobs[:limit]
        self._finish(rec, 200)
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(jobs) > limit,
            }
        )

    async def _batch_cancel(self, request: Any) -> Any:
        from aiohttp import web

        rec = self._record(request, None)
        entry = self.batches.get(request.match_info["batch_id"])
        if entry is None:
            return self._api_error(rec, 404, "no such batch")
        job = self._settle(entry)
        if job["status"] in ("validating", "in_progress"):
            job["status"] = "cancelled"
            job["cancelled_at"] = int(time.time())
            with self._lock:
                self.counters["batches_cancelled"] += 1
        self._finish(rec, 200)
        return web.json_response(job)

    async def _queue_batch_status_faults(self, request: Any) -> Any:
        """POST {"kind": "400", "n": 1, "message": ...}: the next ``n`` status queries of a batch fail so (for a server
        in another process, such as the Airflow tasks')."""
        from aiohttp import web

        body = await request.json()
        fault = Fault(str(body.get("kind", "400")), message=body.get("message"))
        with self._lock:
            self._batch_get_faults.extend(
                Fault(fault.kind, message=fault.message) for _ in range(int(body.get("n", 1)))
            )
        return web.json_response({"queued": int(body.get("n", 1))})

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.stats())


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


# --- helpers pointing clients at a server ---


def llm_settings_for(server: OpenAIServer | ServerProcess, **overrides: Any) -> dict[str, Any]:
    """The ``llm`` settings section (a dict for Settings / load_settings flags) pointing at the server."""
    return {"model": TEST_MODEL, "api_base": server.base_url, "api_key": TEST_API_KEY, **overrides}


def llm_env_for(server: OpenAIServer | ServerProcess) -> dict[str, str]:
    """LLMOPS_LLM_* environment variables pointing a subprocess ``llmops`` at the server."""
    return {"LLMOPS_LLM_MODEL": TEST_MODEL, "LLMOPS_LLM_API_BASE": server.base_url, "LLMOPS_LLM_API_KEY": TEST_API_KEY}


def litellm_for(server: OpenAIServer | ServerProcess, **kw: Any) -> Any:
    """A LiteLLM adapter pointing at the server (model openai/test-model, a fake key)."""
    from llmops_cli.adapters.llm.litellm_llm import LiteLLM

    kw.setdefault("api_base", server.base_url)
    kw.setdefault("api_key", TEST_API_KEY)
    return LiteLLM(kw.pop("model", TEST_MODEL), **kw)


class ServerProcess:
    """The server in a child process (no GIL shared with the client: for benchmarks)."""

    def __init__(self, latency: float = 0.0, port: int = 0):
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.openai_server", "--port", str(port), "--latency", str(latency)],
            cwd=str(root),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"the test OpenAI server process did not start: {line!r}")
        self.base_url = line.removeprefix("listening on ")
        self.url = self.base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/_stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.support.openai_server", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = p.parse_args(argv)
    srv = OpenAIServer(latency=args.latency, port=args.port).start()
    print(f"listening on {srv.base_url}", flush=True)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
