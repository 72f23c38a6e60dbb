"""A span per LLM call and per embedding call, named and attributed by the OpenTelemetry GenAI conventions
(``chat {model}`` / ``embeddings {model}``; ``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``...), plus the call's cost and latency as llmops measured them. Texts are not recorded.
The wrappers sit right on the clients (``wiring``), so a reply served from a cache makes no span: no call was made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from llmops_cli.core import tracing
from llmops_cli.core.ports import LLM, Completion, Embedder, Message


def _provider(model: str) -> str | None:
    """litellm's provider prefix (``openai/gpt-4o-mini`` -> ``openai``), the convention's gen_ai.provider.name."""
    return model.split("/", 1)[0] if "/" in model else None


def _request(model: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.provider.name": _provider(model),
        "gen_ai.request.temperature": params.get("temperature"),
        "gen_ai.request.max_tokens": params.get("max_tokens"),
    }


def _response(s: Any, c: Completion) -> None:
    s.set_attributes(
        tracing._clean(
            {
                "gen_ai.response.model": c.model,
                "gen_ai.usage.input_tokens": c.input_tokens,
                "gen_ai.usage.output_tokens": c.output_tokens,
                "llmops.cost_usd": c.cost,
                "llmops.latency_s": round(c.latency_s, 4),
            }
        )
    )


class TracedLLM(LLM):
    def __init__(self, inner: LLM):
        self.inner = inner
        self.model = inner.model

    def __getattr__(self, name: str) -> Any:  # everything else the client offers (close, usage counters...)
        return getattr(self.inner, name)

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        with tracing.span(f"chat {self.model}", **_request(self.model, params)) as s:
            c = self.inner.complete(messages, **params)
            _response(s, c)
            return c

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        with tracing.span(f"chat {self.model}", **_request(self.model, params)) as s:
            c = await self.inner.acomplete(messages, **params)
            _response(s, c)
            return c

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        with tracing.span(f"chat {self.model}", **_request(self.model, params), **{"llmops.stream": True}) as s:
            yield from self.inner.stream(messages, **params)
            # ``last`` is read through to the client (per thread there): a copy kept here, on a wrapper shared by
            # the threads of `llmops serve`, could hand one ask another's tokens and cost
            last = getattr(self.inner, "last", None)
            if isinstance(last, Completion):
                _response(s, last)


class TracedEmbedder(Embedder):
    def __init__(self, inner: Embedder):
        self.inner = inner
        self.identity = inner.identity

    def __getattr__(self, name: str) -> Any:  # dimension, tokens, the backend's own attributes
        return getattr(self.inner, name)

    def _attrs(self, n: int) -> dict[str, Any]:
        return {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": self.identity, "llmops.texts": n}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with tracing.span(f"embeddings {self.identity}", **self._attrs(len(texts))):
            return self.inner.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with tracing.span(f"embeddings {self.identity}", **self._attrs(1)):
            return self.inner.embed_query(text)
