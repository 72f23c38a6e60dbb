"""The one wiring place: builds adapters (embedder, vector store, LLM) from settings.

Core steps receive adapters as arguments; the CLI and the Airflow DAGs both come through here, so a local
run and an Airflow run of the same config use the same parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.errors import NotConfiguredError

if TYPE_CHECKING:
    from llmops_cli.adapters.airflow.client import AirflowClient
    from llmops_cli.core.ports import LLM, Embedder, VectorStore
    from llmops_cli.settings import EmbedderSettings, LLMSettings, Settings

_EMBEDDERS: dict[tuple, Embedder] = {}


def build_embedder(es: EmbedderSettings) -> Embedder:
    """The embedder for these settings (cached per process: models are expensive to load)."""
    key = (es.backend, es.model, es.precision, es.batch_size, es.api_base)
    if key in _EMBEDDERS:
        return _EMBEDDERS[key]
    backend = es.backend
    if backend == "litellm" or (backend == "auto" and _looks_like_litellm_model(es.model)):
        from llmops_cli.adapters.embedders.litellm_embedder import LiteLLMEmbedder

        emb: Embedder = LiteLLMEmbedder(
            es.model,
            api_base=es.api_base,
            api_key=es.api_key.get_secret_value() if es.api_key else None,
            batch_size=es.batch_size,
        )
    elif backend in ("onnx", "auto"):
        from llmops_cli.adapters.embedders.onnx_embedder import onnx_or_torch_embedder

        emb = onnx_or_torch_embedder(
            es.model, precision=es.precision, batch_size=es.batch_size, fallback=backend == "auto"
        )
    else:
        from llmops_cli.adapters.embedders.sentence_transformers import SentenceTransformerEmbedder

        if es.precision != "fp32":
            from llmops_cli.errors import ConfigError

            raise ConfigError(
                f"embedder.precision={es.precision} needs the onnx backend",
                hint="use embedder.backend=onnx (or auto), or precision fp32",
            )
        emb = SentenceTransformerEmbedder(es.model, batch_size=es.batch_size)
    _EMBEDDERS[key] = emb
    return emb


def _looks_like_litellm_model(model: str) -> bool:
    from pathlib import Path

    prefixes = (
        "openai/",
        "azure/",
        "cohere/",
        "bedrock/",
        "vertex_ai/",
        "ollama/",
        "mistral/",
        "voyage/",
        "gemini/",
        "huggingface/",
        "text-embedding-",
    )
    return model.startswith(prefixes) and not Path(model).expanduser().exists()


def build_store(settings: Settings, *, read_only: bool = False) -> VectorStore:
    """The store the settings point at (store.url); ``read_only`` makes a write to the embedded store an error."""
    from llmops_cli.adapters.vectorstores import open_store

    return open_store(settings.store, settings.store_path, read_only=read_only)


def build_airflow_client(settings: Settings) -> AirflowClient:
    """The Airflow API client for the effective connection (profile, env and flags already applied)."""
    from llmops_cli.adapters.airflow.client import AirflowClient

    return AirflowClient.from_settings(settings.airflow)


def no_llm_hint(setting: str = "llm.model", also: str | None = None) -> str:
    """How to configure the LLM a command needs, in its own terms: ``setting`` (and its env variable; llm.model is the
    fallback of any other) and ``also``, the command's own flags ("or pass --model MODEL"), never another command's."""
    keys = [setting] + (["llm.model"] if setting != "llm.model" else [])
    envs = " / ".join("LLMOPS_" + k.upper().replace(".", "_") for k in keys)
    return (
        f"set {' or '.join(keys)} in llmops.yaml or {envs} (e.g. openai/gpt-4o-mini with OPENAI_API_KEY, "
        "or openai/<name> with LLMOPS_LLM_API_BASE for a local OpenAI-compatible server)"
        + (f"; {also}" if also else "")
    )


def build_llm(ls: LLMSettings, model: str | None = None, *, setting: str = "llm.model", also: str | None = None) -> LLM:
    """The LLM for these settings; a clear message when no model is configured (``setting``, ``also``: see no_llm_hint)."""
    from llmops_cli.adapters.llm.litellm_llm import LiteLLM

    model = model or ls.model
    if not model:
        raise NotConfiguredError("no LLM is configured", hint=no_llm_hint(setting, also))
    return LiteLLM(
        model,
        api_base=ls.api_base,
        api_key=ls.api_key.get_secret_value() if ls.api_key else None,
        temperature=ls.temperature,
        max_tokens=ls.max_tokens,
        timeout=ls.timeout,
        max_retries=ls.max_retries,
        input_cost_per_token=ls.input_cost_per_token,
        output_cost_per_token=ls.output_cost_per_token,
    )


def build_batch_llm(ls: LLMSettings, model: str, client: str = "auto", concurrency: int = 32) -> LLM:
    """The LLM for batch runs: ``openai/<name>`` with an api_base goes through the lean OpenAIHTTP client
    (litellm's per-call CPU caps a process near 100 calls/s), unless ``client="litellm"``; litellm's blocking
    calls run in ``concurrency`` threads (its sync path is cheaper than its async one)."""
    use_http = client == "http" or (client == "auto" and model.startswith("openai/") and bool(ls.api_base))
    if not use_http:
        from llmops_cli.adapters.llm.threaded import ThreadedLLM

        return ThreadedLLM(build_llm(ls, model=model), workers=concurrency)
    if not ls.api_base:
        raise NotConfiguredError(
            "--client http needs llm.api_base (an OpenAI-compatible endpoint)",
            hint="set llm.api_base or LLMOPS_LLM_API_BASE, or use --client litellm",
        )
    from llmops_cli.adapters.llm.openai_http import OpenAIHTTP

    return OpenAIHTTP(
        model,
        api_base=ls.api_base,
        api_key=ls.api_key.get_secret_value() if ls.api_key else None,
        temperature=ls.temperature,
        max_tokens=ls.max_tokens,
        timeout=ls.timeout,
        max_retries=ls.max_retries,
        input_cost_per_token=ls.input_cost_per_token,
        output_cost_per_token=ls.output_cost_per_token,
    )
