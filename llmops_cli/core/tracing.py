"""Spans for the steps, through the OpenTelemetry API (the standard way a library is instrumented: it calls the API,
the application decides whether anything records). Nothing here configures or exports: ``adapters/tracing`` sets up
the SDK when ``tracing.enabled`` is true; otherwise the API's no-op tracer makes every call here nearly free.

Names and attributes follow the OpenTelemetry GenAI semantic conventions where one exists (``chat {model}``,
``embeddings {model}``; ``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...;
evaluation results as ``gen_ai.evaluation.result`` events) and ``llmops.*`` for the rest (retrieval lists, chunk ids
and scores, cost, cache hits, the answer id). Prompt and answer texts are never recorded: they may hold private data.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

INSTRUMENTATION = "llmops_cli"

_tracer: Any = None
_configurer: Callable[[], None] | None = None
_configure_lock = threading.RLock()
_configuring = False
_disabled = False


def set_configurer(fn: Callable[[], None] | None) -> None:
    """What sets up the SDK (``wiring``: from a workspace's settings), run at the first span only: a command that
    makes no span pays nothing. Each workspace sets its own, so spans follow the workspace made last."""
    global _configurer, _disabled
    _configurer, _disabled = fn, False


def disable() -> None:
    """No spans from now on (a workspace with tracing off, made after one with it on in the same process): the no-op
    tracer is handed out even where the SDK's provider is installed, so nothing reaches the earlier workspace's sink
    (spans it had buffered are still written there); a later ``set_configurer`` turns tracing back on."""
    global _configurer, _disabled, _tracer
    _configurer, _disabled, _tracer = None, True, None


def tracer() -> Any:
    """The project's tracer (the global provider's: the SDK's when configured, else a no-op one).

    The first span configures, under a lock that the other threads' first spans wait on: a thread that went on
    meanwhile would get the API's proxy tracer before the SDK's provider is installed, and its spans would record
    nothing while their children, made after, became traces of their own (the first concurrent requests to a
    fresh ``llmops serve`` worker did that)."""
    global _tracer, _configurer, _configuring
    if _configurer is not None or _configuring:
        with _configure_lock:  # reentrant: a span made while configuring goes on (with the proxy tracer)
            if _configurer is not None:
                _configuring = True  # before the pop: another thread always sees one of the two and waits
                fn, _configurer = _configurer, None  # once, even if it fails; a workspace made meanwhile keeps its own
                try:
                    fn()
                finally:
                    _configuring, _tracer = False, None
    if _tracer is None:
        from opentelemetry import trace

        if _disabled:
            _tracer = trace.NoOpTracer()
        else:
            _tracer = trace.get_tracer(INSTRUMENTATION)
    return _tracer


def reset() -> None:
    """Forget the cached tracer (after the provider changed, in tests)."""
    global _tracer
    _tracer = None


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: scalars and lists of scalars; None is left out."""
    out: dict[str, Any] = {}
    for k, v in attributes.items():
        if v is None:
            continue
        if isinstance(v, (str, bool, int, float)):
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = [x if isinstance(x, (str, bool, int, float)) else str(x) for x in v if x is not None]
        else:
            out[k] = str(v)
    return out


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around a step (a child of the current one); an exception marks it as an error and goes on up."""
    with tracer().start_as_current_span(name, attributes=_clean(attributes), record_exception=False) as s:
        try:
            yield s
        except BaseException as e:
            from opentelemetry.trace import Status, StatusCode

            s.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {str(e)[:200]}"))
            s.set_attribute("error.type", type(e).__name__)
            raise


def traced(name: str) -> Callable[[F], F]:
    """A span around every call of the decorated function (a step's entry point)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kw: Any) -> Any:
            with span(name):
                return fn(*args, **kw)

        return inner  # type: ignore[return-value]

    return wrap


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span (nothing when none records)."""
    from opentelemetry import trace

    s = trace.get_current_span()
    if s.is_recording():
        s.set_attributes(_clean(attributes))


def event(name: str, **attributes: Any) -> None:
    """An event on the current span (``gen_ai.evaluation.result`` for a metric of an evaluated answer)."""
    from opentelemetry import trace

    s = trace.get_current_span()
    if s.is_recording():
        s.add_event(name, _clean(attributes))


def current_trace_id() -> str | None:
    """The current trace's id (32 hex characters), or None when nothing records."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
