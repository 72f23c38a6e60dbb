"""The HTTP API: FastAPI routes over ``Service`` (the CLI's entry points), the error mapping, API keys, limits.

Errors are JSON, ``{"error": {"code", "exit_code", "message", "hint"}}``: the CLI's exit code (README table) and its
name, with an HTTP status that says the same thing (``STATUS``). Messages pass the same secret filter as the CLI's.
Blocking work (retrieval, the LLM, the answer log) runs in the service's own thread pool, so the event loop keeps
serving health checks and streams while answers are written.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops_cli import __version__
from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import ConfigError, ExitCode, LlmopsError, NotConfiguredError, UsageError
from llmops_cli.serve.options import ServeOptions, is_loopback
from llmops_cli.serve.ratelimit import RateLimiter
from llmops_cli.serve.service import Service

if TYPE_CHECKING:
    from llmops_cli.settings import Settings
    from llmops_cli.wiring import Workspace

log = logging.getLogger("llmops_cli.serve")

# the CLI's exit codes as HTTP statuses; the API's own refusals (no key, too many requests) have theirs below
STATUS = {
    ExitCode.USAGE: 400,
    ExitCode.NOT_FOUND: 404,
    ExitCode.CONFLICT: 409,
    ExitCode.UNREACHABLE: 502,  # the LLM endpoint or a store server could not be reached
    ExitCode.AUTH: 502,  # a server rejected *our* credentials (the caller's key is 401, below)
    ExitCode.TIMEOUT: 504,
}
PAGE = Path(__file__).parent / "static" / "index.html"
THREADS = 64  # blocking requests in flight per process (each ask mostly waits on the LLM)


class ApiError(LlmopsError):
    """A refusal of the API itself, with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        exit_code: ExitCode = ExitCode.USAGE,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, hint=hint, exit_code=exit_code)
        self.status = status
        self.code = code
        self.headers = headers


def error_status(e: LlmopsError) -> int:
    if isinstance(e, ApiError):
        return e.status
    if isinstance(e, NotConfiguredError | ConfigError):
        return 503  # the server lacks the configuration: nothing the caller can change
    return STATUS.get(ExitCode(int(e.exit_code)), 500)


def error_body(e: LlmopsError) -> dict[str, Any]:
    code = e.code if isinstance(e, ApiError) else ExitCode(int(e.exit_code)).name
    return {
        "error": {
            "code": code,
            "exit_code": int(e.exit_code),
            "message": redact_secrets(e.message),
            "hint": redact_secrets(e.hint) if e.hint else None,
        }
    }


def error_response(e: LlmopsError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(e), status_code=error_status(e), headers=headers)


# --- request and response documents (the OpenAPI document is made from these) ---


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Scalar = str | int | float | bool


class QueryRequest(_Body):
    text: str = Field(description="What to search for.")
    collection: str | None = Field(None, max_length=200, description="Collection (default: the server's).")
    k: int | None = Field(None, ge=1, le=50)
    mode: Literal["hybrid", "vector", "lexical"] | None = None
    where: dict[str, Scalar] | None = Field(None, description="Metadata key=value pairs that must all match.")


class AskRequest(QueryRequest):
    text: str | None = Field(None, description="Unused for ask: the question goes in ``question``.")
    question: str = Field(description="The question.")
    stream: bool = Field(False, description="Server-sent events (also chosen by Accept: text/event-stream).")
    use_cache: bool = Field(True, description="Serve a promoted answer to a near-identical question.")


class FeedbackRequest(_Body):
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)
    rater: str | None = Field(
        None, max_length=100, description="Who rates (one vote per rater); prefixed with the API key's id."
    )


class ErrorDetail(BaseModel):
    code: str
    exit_code: int
    message: str
    hint: str | None = None


class ErrorDocument(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorDocument} for s in (400, 401, 404, 413, 429, 500, 502, 503, 504)
}


# --- auth and rate limit ---


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (by Content-Length, or while reading a chunked one): 413."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = ApiError(
            413, "PAYLOAD_TOO_LARGE", f"the request body is over {self.limit} bytes", hint="send a shorter question"
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await error_response(too_large)(scope, receive, send)
        seen = 0
        started = over = False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if over:  # FastAPI turns a failed body read into its own 400: the answer is the 413 below
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            pass
        if over and not started:
            await error_response(too_large)(scope, receive, send)


class InternalErrors:
    """An unexpected exception: the 500 document, logged redacted, its traceback only with LLMOPS_DEBUG=1. Not a
    FastAPI handler for ``Exception``: Starlette re-raises after that one answers, and uvicorn then printed the whole
    traceback with the exception's unredacted message ("Exception in ASGI application") on every internal error."""

    def __init__(self, app: Any, debug: bool):
        self.app = app
        self.debug = debug

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as e:  # noqa: BLE001 - the last stop before uvicorn's unredacted traceback
            log.error("%s %s: internal error: %s", scope["method"], scope["path"], redact_secrets(repr(e))[:500])
            if self.debug:
                log.error(redact_secrets(traceback.format_exc()))
            if not started:
                err = LlmopsError(
                    f"internal error: {type(e).__name__}",
                    hint="the server log has the details (LLMOPS_DEBUG=1: traceback)",
                )
                await error_response(err)(scope, receive, send)


# --- the app ---


class AccessLogRedaction(logging.Filter):
    """uvicorn's access log with secrets in a request's target masked (a key passed in a query string by mistake).
    Only targets with a query string, or long enough to hold a secret, are scanned: a plain ``POST /v1/query``
    costs nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            target = args[2]
            if "?" in target or len(target) > 64:
                record.args = (*args[:2], redact_secrets(target), *args[3:])
        return True


def _redact_access_log() -> None:
    """Our redaction on uvicorn's access log, in place of the filters litellm adds to it when it is imported (its
    proxy server's, about 0.3 ms of CPU per request through its native bridge): the same log is redacted whichever
    LLM client the answers use."""
    access = logging.getLogger("uvicorn.access")
    access.filters = [f for f in access.filters if not type(f).__module__.startswith("litellm")]
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())


def _no_native_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry spans, metrics and logs, off (where this FastAPI has them). llmops traces its
    steps itself (``llmops query`` / ``llmops ask`` and their children, one trace per answer); FastAPI's spans
    would be four more per request (HTTP, dependencies, endpoint, serialisation) in a second trace linked to
    nothing, each one a row in the trace store: a quarter to a third of a query's CPU at load. Its logs may carry
    request bodies, which llmops never records."""
    import inspect

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}


def create_app(
    settings: Settings,
    options: ServeOptions,
    workspace_factory: Callable[[Settings], Workspace] | None = None,
    *,
    slack_post: Callable[..., dict[str, Any]] | None = None,
) -> FastAPI:
    """The API for these settings. Test seams: ``workspace_factory`` (a ``FakeWorkspace``) and ``slack_post`` (how
    Slack's Web API is called: ``(url, payload, headers[, form]) -> Slack's JSON reply``; default: HTTPS with httpx)."""
    if not is_loopback(options.host) and not options.api_key_hashes:
        raise UsageError(
            f"serving on {options.host} (not loopback) needs API keys",
            hint="set LLMOPS_SERVE_API_KEYS (or pass --api-keys-file), or bind 127.0.0.1",
        )
    if workspace_factory is None:
        from llmops_cli.wiring import Workspace

        workspace_factory = Workspace
    debug = os.environ.get("LLMOPS_DEBUG", "") not in ("", "0", "false")
    limiter = RateLimiter(settings, options.rate_limit_per_minute)  # one limit for every process on the state

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="llmops-serve")
        service = Service(settings, workspace_factory)
        app.state.pool = pool
        app.state.service = service
        await asyncio.get_running_loop().run_in_executor(pool, service.warm_up)
        if service.ready_error is not None:
            log.warning("not ready yet: %s", redact_secrets(service.ready_error.message))
        # What warm-up loaded (the model, the store's replica, the libraries: millions of objects) lives as long as
        # the process: moved out of the collector's sight, a full collection no longer walks it. Measured: full
        # collections paused every thread of a busy worker for 200-250 ms each (several a minute at load), and
        # 5-17 ms after.
        gc.collect()
        gc.freeze()
        _redact_access_log()  # after warm-up: importing litellm (for its prices) has added its filters by then
        try:
            yield
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            service.close()
            limiter.close()
            # a uvicorn worker is a multiprocessing child, which exits without running atexit handlers: the SDK's
            # flush at exit never happens there, and the last seconds of requests' spans would be lost
            from llmops_cli.adapters import tracing as tracing_sdk

            tracing_sdk.flush()
            gc.unfreeze()  # a process that goes on after the app (tests, an embedding program) collects them again

    app = FastAPI(
        title="llmops",
        version=__version__,
        description="Questions answered from a collection, with sources; feedback on answers; the promoted ones.",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN; the OpenAPI document is at /openapi.json
        redoc_url=None,
        **_no_native_telemetry(),
    )

    async def run(request: Request, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(request.app.state.pool, lambda: fn(*args, **kw))

    async def caller(request: Request) -> str:
        """Who is asking (an API key's id, else ``anonymous``); refuses a missing or wrong key and a caller over
        the rate limit. Async: a hash and the limit's one statement on a local SQLite file take microseconds, less
        than the hop to a worker thread that FastAPI makes for a sync dependency (PostgreSQL's round trip takes it)."""
        if options.api_key_hashes:
            h = options.key_matches(_presented_key(request))
            if h is None:
                raise ApiError(
                    401,
                    "UNAUTHORIZED",
                    "a valid API key is required",
                    # worded so that the secret filter every hint passes leaves it whole ("X-API-Key: KEY" reads
                    # as a key and was masked)
                    hint="send it in an Authorization: Bearer KEY header, or in an X-API-Key header",
                    exit_code=ExitCode.AUTH,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            who = "key-" + h.split(":", 1)[1][:8]
            bucket = h  # the key's whole hash (the limiter keeps only a hash of it)
        else:
            who = "anonymous"
            bucket = "address:" + (request.client.host if request.client else "local")
        if not limiter.per_minute:
            wait = 0.0
        elif limiter.inline:  # a local SQLite file: microseconds, less than a hop to a thread
            wait = limiter.take(bucket)
        else:  # a round trip to PostgreSQL: not on the event loop
            wait = await asyncio.get_running_loop().run_in_executor(request.app.state.pool, limiter.take, bucket)
        if wait:
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"more than {options.rate_limit_per_minute} requests a minute",
                hint=f"retry after {wait:.1f} s",
                exit_code=ExitCode.FAILURE,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        return who

    @app.exception_handler(LlmopsError)
    async def _llmops_error(request: Request, e: LlmopsError) -> JSONResponse:
        status = error_status(e)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, redact_secrets(e.message))
        return error_response(e, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        hint = "see /openapi.json for the request's fields"
        if first.get("type") == "json_invalid":  # its loc is the character offset: no field to name
            return error_response(UsageError(f"the request body is not JSON ({first.get('msg')})", hint=hint))
        ctype = request.headers.get("content-type", "")
        if tuple(first.get("loc", ())) == ("body",) and "json" not in ctype:  # curl -d sends a form: never parsed
            return error_response(
                UsageError(
                    f"the request body must be JSON, not {ctype.split(';')[0] or 'untyped'}",
                    hint="send it with Content-Type: application/json",
                )
            )
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the request"
        msg = first.get("msg", "invalid request")
        return error_response(UsageError(f"{where}: {msg}", hint=hint))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: ("NOT_FOUND", ExitCode.NOT_FOUND), 405: ("METHOD_NOT_ALLOWED", ExitCode.USAGE)}
        name, exit_code = code.get(e.status_code, ("HTTP_ERROR", ExitCode.USAGE))
        err = ApiError(e.status_code, name, f"{request.method} {request.url.path}: {e.detail}", exit_code=exit_code)
        return error_response(err)

    # --- pages and probes ---

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, Any]:
        """The process is up (answers without touching the store or the LLM)."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["probes"], responses=ERRORS)
    async def readyz(request: Request) -> Any:
        """The default collection, its embedder and the answer log are open: requests can be answered. Retries
        what failed (a collection ingested after the server started makes it ready)."""
        service: Service = request.app.state.service
        if service.ready_error is not None:
            await run(request, service.warm_up)
        if service.ready_error is not None:  # 503 whatever the error (a missing collection is not a 404 here)
            return JSONResponse(error_body(service.ready_error), status_code=503)
        return {"status": "ready", "collection": service.collection}

    # --- the API ---

    @app.get("/v1/collections", tags=["search"], responses=ERRORS)
    async def collections(request: Request, who: str = Depends(caller)) -> dict[str, Any]:
        service: Service = request.app.state.service
        rows = await run(request, service.collections)
        return {"default": service.collection, "collections": rows}

    @app.post("/v1/query", tags=["search"], responses=ERRORS)
    async def query(body: QueryRequest, request: Request, who: str = Depends(caller)) -> dict[str, Any]:
        """Ranked chunks (no LLM): ``llmops query --json``'s document."""
        service: Service = request.app.state.service
        _check_length(body.text, options)
        name, hits = await run(
            request, service.query, body.text, collection=body.collection, k=body.k, mode=body.mode, where=body.where
        )
        return {
            "query": body.text,
            "collection": name,
            "mode": body.mode or settings.retrieval.mode,
            "hits": [hit_dict(i, h) for i, h in enumerate(hits, 1)],
        }

    @app.post(
        "/v1/ask",
        tags=["answers"],
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}, "application/json": {}}}},
    )
    async def ask(body: AskRequest, request: Request, who: str = Depends(caller)) -> Any:
        """An answer with its sources and its id in the answer log (``llmops ask --json``'s document). Streamed as
        server-sent events when asked: a ``rewordings`` and a ``sources`` event as soon as retrieval is done, then
        ``token`` events (answer text as it comes), then one ``answer`` event (the whole document), or one ``error``
        event."""
        service: Service = request.app.state.service
        _check_length(body.question, options)
        kw = {"collection": body.collection, "k": body.k, "mode": body.mode, "where": body.where}
        stream = body.stream or "text/event-stream" in request.headers.get("accept", "")
        if not stream:
            name, res = await run(request, service.ask, body.question, use_cache=body.use_cache, **kw)
            return answer_dict(res, name)
        # the first checks run before the stream starts, so a bad request is still an HTTP error status
        await run(request, service.prepare_ask, body.question, body.collection, body.where)
        return StreamingResponse(
            _ask_events(request, service, body.question, body.use_cache, kw),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _ask_events(request: Request, service: Service, question: str, use_cache: bool, kw: dict):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def on_token(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("token", {"text": piece}))

        def on_retrieved(words: list[str], hits: list) -> None:
            # before the first token: a page shows what was searched and the sources while the answer streams
            loop.call_soon_threadsafe(queue.put_nowait, ("rewordings", {"rewordings": words}))
            sources = [hit_dict(i, h) for i, h in enumerate(hits, 1)]
            loop.call_soon_threadsafe(queue.put_nowait, ("sources", {"sources": sources}))

        def work() -> None:
            try:
                name, res = service.ask(
                    question, use_cache=use_cache, on_token=on_token, on_retrieved=on_retrieved, **kw
                )
                event = ("answer", answer_dict(res, name))
            except LlmopsError as e:
                event = ("error", error_body(e))
            except Exception as e:  # noqa: BLE001 - a stream has no status left to set: one error event
                log.error("/v1/ask stream: internal error: %s", redact_secrets(repr(e))[:500])
                event = ("error", error_body(LlmopsError(f"internal error: {type(e).__name__}")))
            loop.call_soon_threadsafe(queue.put_nowait, event)

        loop.run_in_executor(request.app.state.pool, work)
        while True:
            # the events that arrived meanwhile leave in one write (the same bytes, fewer sends)
            events = [await queue.get()]
            while not queue.empty() and events[-1][0] not in ("answer", "error"):
                events.append(queue.get_nowait())
            yield "".join(f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n" for kind, data in events)
            if events[-1][0] in ("answer", "error"):
                return

    @app.get("/v1/answers/recent-good", tags=["answers"], responses=ERRORS)
    async def recent_good(
        request: Request, limit: int = 10, collection: str | None = None, who: str = Depends(caller)
    ) -> dict[str, Any]:
        """The latest promoted answers (reviewed good and promoted by the feedback loop): a homepage's list."""
        if not 1 <= limit <= 100:
            raise UsageError("limit must be between 1 and 100")
        service: Service = request.app.state.service
        return {"answers": await run(request, service.recent_good, limit=limit, collection=collection)}

    @app.get("/v1/answers/{answer_id}", tags=["answers"], responses=ERRORS)
    async def get_answer(answer_id: str, request: Request, who: str = Depends(caller)) -> dict[str, Any]:
        """One answer of the log (an id or a unique prefix), with its votes, review and promotion."""
        _check_id(answer_id)
        service: Service = request.app.state.service
        return await run(request, service.answer, answer_id)

    @app.post("/v1/answers/{answer_id}/feedback", tags=["answers"], responses=ERRORS)
    async def feedback(
        answer_id: str, body: FeedbackRequest, request: Request, who: str = Depends(caller)
    ) -> dict[str, Any]:
        """Rate an answer up or down (``llmops feedback ID up|down``): stored in the answer log; a down vote removes
        its promoted answer at once. One vote per rater: a later one replaces it."""
        _check_id(answer_id)
        service: Service = request.app.state.service
        rater = f"{who}:{body.rater}" if body.rater else who
        return await run(request, service.rate, answer_id, body.rating, body.comment, rater)

    from llmops_cli.serve.slack import add_slack_routes

    add_slack_routes(app, options, slack_post)
    app.add_middleware(BodyLimit, limit=options.max_body_bytes)
    app.add_middleware(InternalErrors, debug=debug)  # inside CORS: a page can read the 500 document too
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=options.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            expose_headers=["Retry-After"],  # a page told 429 can read how long to wait
        )
    return app


def _check_length(text: str | None, options: ServeOptions) -> None:
    if text is not None and len(text) > options.max_question_chars:
        raise UsageError(
            f"the question is {len(text)} characters long; this server takes up to {options.max_question_chars}",
            hint="ask a shorter question",
        )


def _check_id(answer_id: str) -> None:
    if not 4 <= len(answer_id) <= 64 or any(c not in "0123456789abcdef" for c in answer_id.lower()):
        raise ApiError(
            404,
            "NOT_FOUND",
            f"no answer with id {answer_id[:64]!r}",
            hint="send the answer_id of /v1/ask, or a unique prefix of at least 4 of its hex digits",
            exit_code=ExitCode.NOT_FOUND,
        )


def hit_dict(i: int, h: Any) -> dict[str, Any]:
    return {
        "rank": i,
        "id": h.id,
        "score": h.score,
        "source": h.source,
        "heading": h.heading,
        "text": h.text,
        "metadata": h.metadata,
        "ranks": h.ranks,
    }


def answer_dict(res: Any, collection: str) -> dict[str, Any]:
    """``llmops ask --json``'s document: the answer, its sources (with their text), its id in the answer log."""
    d = res.to_dict()
    d["answer_id"] = res.answer_id
    d["cache"] = res.cache_hit
    d["prompt"] = res.prompt
    d["collection"] = collection
    d["record_error"] = res.record_error
    d["hits"] = [hit_dict(i, h) for i, h in enumerate(res.hits, 1)]
    return d


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker process (``llmops serve`` hands its options over in the environment)."""
    from llmops_cli.settings import load_settings

    options = ServeOptions.from_env()
    lg = logging.getLogger("llmops_cli")
    if not lg.handlers:  # a worker process: the CLI's stderr handler was set up in the parent only
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    settings = load_settings(
        options.config, flags={"store.collection": options.collection}, profile=options.profile
    ).settings
    return create_app(settings, options)
