"""The tracer is configured by the first span, once: spans made by other threads meanwhile wait for it (else they get
the API's proxy tracer before the SDK's provider is in place, record nothing, and their children become traces of
their own)."""

from __future__ import annotations

import threading
import time

import pytest

from llmops_cli.core import tracing


@pytest.fixture(autouse=True)
def _fresh_tracer_state():
    yield
    tracing.set_configurer(None)
    tracing.reset()


def test_a_span_made_while_another_thread_configures_waits_for_the_configuration():
    events: list[str] = []
    started = threading.Event()

    def configure() -> None:
        started.set()
        time.sleep(0.3)  # the SDK's set-up: imports, the state database's sink
        events.append("configured")

    tracing.set_configurer(configure)
    first = threading.Thread(target=tracing.tracer)
    first.start()
    assert started.wait(5)

    def second() -> None:
        tracing.tracer()
        events.append("second span")

    other = threading.Thread(target=second)
    other.start()
    first.join(5)
    other.join(5)
    assert events == ["configured", "second span"]


def test_configuration_runs_once_even_when_it_fails_and_a_span_made_inside_it_goes_on():
    calls: list[int] = []

    def configure() -> None:
        calls.append(1)
        tracing.tracer()  # a span made while configuring: no deadlock, no second configuration
        raise RuntimeError("sink unreachable")

    tracing.set_configurer(configure)
    with pytest.raises(RuntimeError):
        tracing.tracer()
    tracing.tracer()
    assert calls == [1]
