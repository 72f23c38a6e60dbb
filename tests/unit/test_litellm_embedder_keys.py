"""The litellm embedder without a key: a local OpenAI-compatible server is called with a placeholder key (the OpenAI
SDK refuses to call without one), a hosted API says which setting is missing (exit 2). No network: litellm is faked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llmops_cli.adapters.embedders import litellm_embedder
from llmops_cli.adapters.embedders.litellm_embedder import LiteLLMEmbedder
from llmops_cli.adapters.llm.litellm_llm import NO_KEY
from llmops_cli.errors import EmbedderError, ExitCode


class _FakeLiteLLM:
    def __init__(self):
        self.calls: list[dict] = []

    def embedding(self, model, input, **kw):
        self.calls.append(kw)
        if "api_key" not in kw:
            internal = type("InternalServerError", (Exception,), {})
            raise internal(
                "litellm.InternalServerError: OpenAIException - Missing credentials. Please pass an `api_key`"
            )
        return SimpleNamespace(data=[{"index": i, "embedding": [1.0, 0.0]} for i in range(len(input))])


@pytest.fixture
def fake(monkeypatch):
    f = _FakeLiteLLM()
    monkeypatch.setattr(litellm_embedder, "import_litellm", lambda: f)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return f


def test_a_local_server_is_called_with_a_placeholder_key(fake):
    # was "embedding model ... call failed: litellm.InternalServerError ... Missing credentials", exit 1
    emb = LiteLLMEmbedder("openai/nomic-embed", api_base="http://127.0.0.1:9/v1")
    assert emb.embed(["a", "b"]).shape == (2, 2) and fake.calls[-1]["api_key"] == NO_KEY
    LiteLLMEmbedder("openai/nomic-embed", api_base="http://127.0.0.1:9/v1", api_key="sk-mine").embed(["a"])
    assert fake.calls[-1]["api_key"] == "sk-mine"


def test_a_hosted_api_without_a_key_names_the_embedders_setting_exit_2(fake):
    with pytest.raises(EmbedderError) as ei:
        LiteLLMEmbedder("openai/text-embedding-3-small").embed(["a"])
    assert ei.value.exit_code == ExitCode.USAGE
    assert str(ei.value) == "embedding model openai/text-embedding-3-small has no API key"
    assert "LLMOPS_EMBEDDER_API_KEY" in ei.value.hint and "LLMOPS_LLM_API_KEY" not in ei.value.hint
