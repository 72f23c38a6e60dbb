"""litellm embedding backend (e.g. openai/text-embedding-3-small, or a local OpenAI-compatible server)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from llmops_cli.adapters.llm.litellm_llm import NO_KEY, import_litellm, translate_error
from llmops_cli.core.ports import Embedder, LLMConfigError, LLMUnreachableError
from llmops_cli.errors import AuthError, EmbedderError, ExitCode, UnreachableError


class _ApproxTokens:
    """Token counts for API embedders, via litellm's tokenizer for the model (tiktoken's bundled encodings)."""

    def __init__(self, model: str, max_tokens: int = 8191):
        self.model = model
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        litellm = import_litellm()
        return [int(litellm.token_counter(model=self.model, text=t)) for t in texts]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        # word-level spans scaled by the model's count; API models accept far longer inputs than chunks
        import re

        return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


class LiteLLMEmbedder(Embedder):
    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        batch_size: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ):
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.batch_size = batch_size or 64
        self.timeout = timeout
        self.max_retries = max_retries
        self.identity = f"litellm:{model}"
        self.tokens = _ApproxTokens(model)
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:  # type: ignore[override]
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        litellm = import_litellm()
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            kw = {"timeout": self.timeout, "num_retries": 0, "max_retries": self.max_retries}
            if self.api_base:
                kw["api_base"] = self.api_base
            if self._api_key:
                kw["api_key"] = self._api_key
            elif self.api_base and self.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
                kw["api_key"] = NO_KEY  # a local OpenAI-compatible server needs none; the OpenAI SDK insists
            try:
                resp = litellm.embedding(model=self.model, input=list(texts[i : i + self.batch_size]), **kw)
            except Exception as e:  # noqa: BLE001
                err = translate_error(e, self.model, self.api_base, self._api_key)
                message = err.message.replace("LLM", "embedding model", 1)
                if isinstance(err, LLMUnreachableError):
                    raise UnreachableError(
                        message,
                        hint="is the server running? check embedder.api_base (LLMOPS_EMBEDDER_API_BASE)"
                        if self.api_base
                        else err.hint,
                    ) from None
                if isinstance(err, AuthError):  # a rejected key is exit 8 whoever calls the endpoint
                    raise AuthError(message, hint="check embedder.api_key (LLMOPS_EMBEDDER_API_KEY)") from None
                if isinstance(err, LLMConfigError):  # e.g. no key at all: the embedder's settings, exit 2
                    hint = "set the provider's key (e.g. OPENAI_API_KEY) or embedder.api_key (LLMOPS_EMBEDDER_API_KEY)"
                    if "API key" not in message:
                        hint = err.hint
                    raise EmbedderError(message, hint=hint, exit_code=ExitCode.USAGE) from None
                raise EmbedderError(message, hint=err.hint) from None
            data = sorted(resp.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
            out.extend([(d["embedding"] if isinstance(d, dict) else d.embedding) for d in data])
        arr = np.asarray(out, dtype=np.float32)
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        arr = arr / np.where(norms == 0, 1.0, norms)
        self._dimension = arr.shape[1]
        return arr
