"""Threads streaming through one client stack (as `llmops serve` does) each read back their own answer's Completion."""

from __future__ import annotations

import threading

from llmops_cli.adapters.llm.configured import ConfiguredLLM
from llmops_cli.core.llm_tracing import TracedLLM
from llmops_cli.core.ports import Completion


class _Interleaved(ConfiguredLLM):
    """Streams its thread's name as the answer; every thread has streamed before any reads ``last``."""

    def __init__(self, threads: int):
        super().__init__("openai/test")
        self.streamed = threading.Barrier(threads)

    def complete(self, messages, **params):  # pragma: no cover - only stream is used
        raise AssertionError

    def stream(self, messages, **params):
        name = threading.current_thread().name
        yield name
        self.last = Completion(text=name, model=self.model, input_tokens=len(name), output_tokens=1)
        self.streamed.wait(timeout=10)


def test_each_thread_reads_its_own_completion_through_the_traced_wrapper():
    n = 6
    llm = TracedLLM(_Interleaved(n))
    seen: dict[str, tuple[str, str]] = {}
    finished = threading.Barrier(n)

    def ask() -> None:
        text = "".join(llm.stream([{"role": "user", "content": "q"}]))
        finished.wait(timeout=10)  # every stream is over before any thread reads its result
        seen[threading.current_thread().name] = (text, llm.last.text)

    threads = [threading.Thread(target=ask, name=f"ask-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(seen) == n
    assert all(text == last == name for name, (text, last) in seen.items()), seen
