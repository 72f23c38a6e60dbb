"""Spans recorded in memory for unit tests: ``recorded_spans(monkeypatch)`` makes the project's tracer one of a
private provider's (the global provider stays as it is) and yields the exporter holding the finished spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def recorded_spans(monkeypatch: Any) -> Iterator[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmops_cli.core import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    private = provider.get_tracer(tracing.INSTRUMENTATION)
    # tracer() itself: a workspace (tracing on or off) resets the module's cached tracer and configurer
    monkeypatch.setattr(tracing, "tracer", lambda: private)
    yield exporter
    provider.shutdown()
