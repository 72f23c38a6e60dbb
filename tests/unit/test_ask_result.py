"""An ask result declares what the entry point fills in (its answer-log id, the semantic-cache hit, why recording
failed) instead of having attributes patched on afterwards; its own JSON keeps its shape."""

from __future__ import annotations

from dataclasses import fields

from llmops_cli.core.ask import AskResult


def test_the_recording_fields_are_declared_and_empty_by_default():
    declared = {f.name for f in fields(AskResult)}
    assert {"answer_id", "cache_hit", "record_error"} <= declared
    res = AskResult(question="q", answer="a [1]", rewordings=[], hits=[], model="m")
    assert (res.answer_id, res.cache_hit, res.record_error) == (None, None, None)
    # the CLI adds answer_id and cache to its JSON itself; the result's own document is unchanged
    assert set(res.to_dict()) == {"question", "answer", "rewordings", "model", "sources", "cited", "usage", "latency_s"}
