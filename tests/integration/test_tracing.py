"""Traces of `llmops ask` as a user runs it (real embedded Chroma, bundled model, real HTTP to the local
OpenAI-compatible server), received by a real OTLP/HTTP receiver and kept locally: one trace per command whose spans
follow the OpenTelemetry GenAI conventions (chat, embeddings and retrieval spans with gen_ai.* attributes, tokens,
cost, the retrieved chunk ids and scores), the answer id on the root span, no prompt or answer text anywhere;
`llmops trace show ANSWER_ID` draws the tree; with tracing off nothing is sent."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import llmops_env, run_llmops
from tests.support.openai_server import TEST_MODEL, llm_env_for
from tests.support.otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.integration

QUESTION = "How often does quokka rotation happen?"
SECRET_WORD = "zanzibar-7319"  # in the answer: must not reach a span


def test_ask_is_traced_with_the_genai_conventions_exported_and_kept(tmp_path, openai_server):
    openai_server.responder = lambda body: f"Every 17 minutes on the night shift [1]. ({SECRET_WORD})"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "quokka.md").write_text(
        "# Quokka rotation\n\nQuokka rotation happens every 17 minutes on the night shift.\n"
    )
    with OTLPReceiver() as receiver:
        env = llmops_env(
            tmp_path, **llm_env_for(openai_server), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, HF_HUB_OFFLINE="1"
        )
        env["LLMOPS_LLM_REWORDINGS"] = "1"
        assert run_llmops("ingest", str(docs), env=env).returncode in (0, 3)
        r = run_llmops("ask", QUESTION, "--json", env=env)
        assert r.returncode == 0, r.stderr
        answer_id = json.loads(r.stdout)["answer_id"]
        deadline = time.monotonic() + 10
        while not any(s["name"] == "llmops ask" for s in receiver.spans) and time.monotonic() < deadline:
            time.sleep(0.2)

        spans = [s for s in receiver.spans if s["trace_id"] == _trace_of(receiver.spans, "llmops ask")]
        root = next(s for s in spans if s["name"] == "llmops ask")
        assert root["parent_id"] is None and root["attributes"]["llmops.answer_id"] == answer_id
        assert root["resource"]["service.name"] == "llmops"
        chats = [s for s in spans if s["name"] == f"chat {TEST_MODEL}"]
        assert len(chats) == 2, [s["name"] for s in spans]  # one rewording, one answer
        for c in chats:
            a = c["attributes"]
            assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == TEST_MODEL
            assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.usage.input_tokens"] > 0
            assert a["gen_ai.usage.output_tokens"] > 0
        embeds = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "embeddings"]
        assert embeds and all(s["name"].startswith("embeddings ") for s in embeds)
        assert all(s["trace_id"] == root["trace_id"] for s in chats + embeds)
        # retrieval: a span per list (the question and its one rewording, each vector and lexical) and the fusion,
        # under the root, with the ids and scores of their hits; the fusion's hits are the answer's chunks
        lists = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "retrieval"]
        assert sorted(s["attributes"]["llmops.retrieval.list"] for s in lists) == [
            "lexical#0",
            "lexical#1",
            "vector#0",
            "vector#1",
        ]
        for s in lists:
            a = s["attributes"]
            assert (
                s["parent_id"] == root["span_id"]
                and a["gen_ai.data_source.id"] == root["attributes"]["llmops.collection"]
            )
            assert a["llmops.hits"] == len(a["llmops.chunk_ids"]) == len(a["llmops.scores"]) > 0
        fusion = next(s for s in spans if s["name"] == "fusion rrf")
        assert fusion["parent_id"] == root["span_id"]
        assert fusion["attributes"]["llmops.chunk_ids"] == root["attributes"]["llmops.chunk_ids"]
        dump = json.dumps(receiver.spans)
        assert SECRET_WORD not in dump and "quokka rotation happen" not in dump.lower()  # no texts in spans

        # kept locally: the tree from the answer id
        shown = run_llmops("trace", "show", answer_id, env=env)
        assert shown.returncode == 0, shown.stderr
        assert "llmops ask" in shown.stdout and f"chat {TEST_MODEL}" in shown.stdout and " ms" in shown.stdout
        doc = json.loads(run_llmops("trace", "show", answer_id[:6], "--json", env=env).stdout)
        assert doc["trace_id"] == root["trace_id"] and len(doc["spans"]) >= len(spans)

        # tracing off: nothing sent, nothing kept
        before = len(receiver.spans)
        off = {**env, "LLMOPS_TRACING_ENABLED": "false"}
        r = run_llmops("ask", "What happens on the night shift?", "--json", env=off)
        assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        assert len(receiver.spans) == before
        missing = run_llmops("trace", "show", json.loads(r.stdout)["answer_id"], env=off)
        assert missing.returncode == 9 and "no trace" in missing.stderr


def _trace_of(spans, name):
    return next(s["trace_id"] for s in spans if s["name"] == name)
