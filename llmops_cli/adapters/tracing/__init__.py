"""The OpenTelemetry SDK for llmops's spans (``core/tracing.py`` calls only the API): set up once per process when
``tracing.enabled`` is true.

- OpenTelemetry allows one global tracer provider per process, but a process may hold several workspaces one after
  another (``llmops serve`` renewing its workspace, tests, a DAG task per run in one worker): the provider is made
  once, and its one span processor (``SinkRouter``) sends spans to the sink of the workspace that configured last.
  Each ``configure`` builds that workspace's sink (its state database, its OTLP endpoint) and retires the previous
  one, whose buffered spans are still written to where they belong. A workspace with tracing.enabled false gets
  the no-op tracer from ``core.tracing.disable``, so its spans reach no sink at all.

- Every finished span is kept in the state database (``core/traces.py``: ``llmops trace show`` reads it back).
- With an OTLP endpoint (``tracing.otlp_endpoint``, else the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
  ``OTEL_EXPORTER_OTLP_ENDPOINT``; headers from ``OTEL_EXPORTER_OTLP_HEADERS``), spans are also exported over
  OTLP/HTTP to any collector (Jaeger, Tempo, Phoenix, Langfuse, an OpenTelemetry Collector...).
- Both go through batch processors: spans leave the hot path and are written when the batch fills or the command
  ends (``flush``).
- Inside an Airflow task the resource carries the DAG, run and task ids (``AIRFLOW_CTX_*``), so a trace made on a
  worker names the run it belongs to.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.adapters.state import State
    from llmops_cli.settings import TracingSettings

_lock = threading.Lock()
_provider: Any = None
_router: SinkRouter | None = None

AIRFLOW_CONTEXT = {
    "AIRFLOW_CTX_DAG_ID": "airflow.dag_id",
    "AIRFLOW_CTX_DAG_RUN_ID": "airflow.dag_run_id",
    "AIRFLOW_CTX_TASK_ID": "airflow.task_id",
    "AIRFLOW_CTX_TRY_NUMBER": "airflow.try_number",
}


def otlp_endpoint(ts: TracingSettings, environ: dict[str, str] | None = None) -> str | None:
    """Where spans are exported: tracing.otlp_endpoint, else the standard OTel variables (traces' own first)."""
    env = os.environ if environ is None else environ
    if ts.otlp_endpoint:
        return ts.otlp_endpoint.rstrip("/") + "/v1/traces"
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return None


class StoreExporter:
    """A SpanExporter that writes finished spans to the trace store of ``state()`` (opened per batch and closed
    after, so a process that never finishes a span opens nothing, and a shared database is not held open)."""

    def __init__(self, state: Callable[[], State]):
        self._state = state

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        from llmops_cli.core.traces import SpanRecord

        records = []
        for s in spans:
            ctx = s.get_span_context()
            parent = s.parent.span_id if s.parent is not None else None
            records.append(
                SpanRecord(
                    trace_id=format(ctx.trace_id, "032x"),
                    span_id=format(ctx.span_id, "016x"),
                    parent_id=format(parent, "016x") if parent else None,
                    name=s.name,
                    start_ns=int(s.start_time or 0),
                    end_ns=int(s.end_time or s.start_time or 0),
                    status=s.status.status_code.name.lower(),
                    attributes=dict(s.attributes or {}),
                    events=[
                        {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                        for e in s.events
                    ],
                )
            )
        state = None
        try:
            state = self._state()
            with state.traces(create=False) as store:
                store.add(records)
        except Exception:  # noqa: BLE001 - a trace that cannot be kept must never fail the command it describes
            return SpanExportResult.FAILURE
        finally:
            if state is not None:
                state.close()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SinkRouter:
    """The provider's one span processor: passes each span to the current sink's processors (one batch processor
    per destination). ``retarget`` swaps the sink; the old one is shut down (its buffered spans written) on a thread,
    so an unreachable old destination cannot hold up the new workspace; ``shutdown`` waits for those (bounded)."""

    def __init__(self) -> None:
        self._processors: list[Any] = []
        self._retiring: list[threading.Thread] = []

    def retarget(self, processors: list[Any]) -> None:
        old, self._processors = self._processors, processors
        if old:
            t = threading.Thread(target=_shutdown_all, args=(old,), name="llmops-tracing-retire", daemon=True)
            t.start()
            self._retiring = [r for r in self._retiring if r.is_alive()] + [t]

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for p in self._processors:
            p.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        for p in self._processors:
            if hasattr(p, "_on_ending"):
                p._on_ending(span)

    def on_end(self, span: Any) -> None:
        for p in self._processors:
            p.on_end(span)

    def shutdown(self) -> None:
        _shutdown_all(self._processors)
        deadline = time.monotonic() + 5.0  # all retired sinks together: an unreachable one cannot hold up the exit
        for t in self._retiring:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([p.force_flush(timeout_millis) for p in self._processors])


def _shutdown_all(processors: list[Any]) -> None:
    for p in processors:
        try:
            p.shutdown()
        except Exception:  # noqa: BLE001 - a sink that cannot close must not stop the others
            pass


def _sink(ts: TracingSettings, state: Callable[[], State]) -> list[Any]:
    """The batch processors of one workspace's destinations: its state database, its OTLP endpoint."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    processors: list[Any] = []
    if ts.store:
        processors.append(BatchSpanProcessor(StoreExporter(state)))  # type: ignore[arg-type]
    endpoint = otlp_endpoint(ts)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    return processors


def configure(ts: TracingSettings, state: Callable[[], State], *, service: str = "llmops") -> Any:
    """Send this process's spans to the destinations of ``ts`` and ``state`` (a workspace's): the SDK's provider is
    installed at the first call; each later call retargets its sink. Returns the provider."""
    global _provider, _router
    with _lock:
        from llmops_cli.core import tracing

        if _provider is None:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            from llmops_cli import __version__

            attrs = {"service.name": service, "service.version": __version__}
            attrs.update({key: os.environ[var] for var, key in AIRFLOW_CONTEXT.items() if os.environ.get(var)})
            provider = TracerProvider(resource=Resource.create(attrs))
            router = SinkRouter()
            provider.add_span_processor(router)  # type: ignore[arg-type]
            trace.set_tracer_provider(provider)
            _provider, _router = provider, router
        assert _router is not None
        _router.retarget(_sink(ts, state))
        tracing.reset()
        return _provider


def flush(timeout_s: float = 5.0) -> None:
    """Write and export what is buffered (at the end of a command or a task)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))
