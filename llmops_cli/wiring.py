"""The one wiring place: builds adapters (embedder, vector store, LLM stack) and state stores from settings.

Core steps receive adapters as arguments; the CLI and the Airflow DAGs both come through here, so a local
run and an Airflow run of the same config use the same parts. ``Workspace`` is what one invocation (a command, a DAG
task) holds: each part built on first use and only once, everything it opened closed with it. Tests hand the entry
points a workspace of fakes (``tests/support/fakes.py``) instead of patching the builders below.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.collection_meta import embedder_settings_for
from llmops_cli.errors import NotConfiguredError

if TYPE_CHECKING:
    from llmops_cli.adapters.airflow.client import AirflowClient
    from llmops_cli.adapters.state import State
    from llmops_cli.core.batch.checkpoint import Checkpoints
    from llmops_cli.core.eval.history import RunHistory
    from llmops_cli.core.feedback.log import AnswerLog
    from llmops_cli.core.llm_cache import LLMCache
    from llmops_cli.core.ports import LLM, Embedder, VectorStore
    from llmops_cli.core.retrieval import LexicalIndex
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


def _client_options(ls: LLMSettings) -> dict[str, Any]:
    """The keyword arguments every LLM client takes from llm settings (each client retries by itself,
    ``max_retries``, with the one policy of core/retry.py)."""
    return {
        "api_base": ls.api_base,
        "api_key": ls.api_key.get_secret_value() if ls.api_key else None,
        "temperature": ls.temperature,
        "max_tokens": ls.max_tokens,
        "timeout": ls.timeout,
        "max_retries": ls.max_retries,
        "input_cost_per_token": ls.input_cost_per_token,
        "output_cost_per_token": ls.output_cost_per_token,
    }


def build_llm(ls: LLMSettings, model: str | None = None, *, setting: str = "llm.model", also: str | None = None) -> LLM:
    """The base LLM client for these settings (litellm; retries included); a clear message when no model is
    configured (``setting``, ``also``: see no_llm_hint). Commands get their LLM from ``Workspace.llm``."""
    from llmops_cli.adapters.llm.litellm_llm import LiteLLM

    model = model or ls.model
    if not model:
        raise NotConfiguredError("no LLM is configured", hint=no_llm_hint(setting, also))
    return LiteLLM(model, **_client_options(ls))


# How an LLM's calls are made: "sync" (one blocking call at a time through litellm: review, eval), "answer" (blocking
# calls from any number of threads at once, streamed: ask's answers in a terminal and in `llmops serve`; the lean HTTP
# client for an OpenAI-compatible endpoint, litellm otherwise), or for many small async calls (batch rows, judge
# verdicts) "auto" (the lean HTTP client for an OpenAI-compatible endpoint, litellm in threads otherwise), "http" or
# "litellm".
CLIENTS = ("sync", "answer", "auto", "http", "litellm")


def lean_http_fits(ls: LLMSettings, model: str) -> bool:
    """Whether ``model`` is served by an OpenAI-compatible endpoint the lean HTTP client can call: ``openai/<name>``
    with an api_base, unless the settings force litellm (``llm.client: litellm``)."""
    return model.startswith("openai/") and bool(ls.api_base) and ls.client != "litellm"


def build_answer_llm(
    ls: LLMSettings, model: str | None = None, *, setting: str = "llm.model", also: str | None = None
) -> LLM:
    """The client ask answers with: blocking, safe to call from many threads at once, streamed. litellm costs ~15 ms
    of CPU per call, more than the rest of an answer in `llmops serve`; the lean HTTP client well under 1 ms, with the
    same errors, retries, cost and redaction. Every other model goes through litellm."""
    model = model or ls.model
    if not model:
        raise NotConfiguredError("no LLM is configured", hint=no_llm_hint(setting, also))
    if not lean_http_fits(ls, model):
        return build_llm(ls, model)
    from llmops_cli.adapters.llm.openai_http import OpenAIHTTP

    return OpenAIHTTP(model, **_client_options(ls))


def build_batch_llm(ls: LLMSettings, model: str, client: str = "auto", concurrency: int = 32) -> LLM:
    """The LLM for many concurrent calls: ``openai/<name>`` with an api_base goes through the lean OpenAIHTTP client
    (litellm's per-call CPU caps a process near 100 calls/s), unless ``client="litellm"``; litellm's blocking
    calls run in ``concurrency`` threads (its sync path is cheaper than its async one)."""
    use_http = client == "http" or (client == "auto" and lean_http_fits(ls, model))
    if not use_http:
        from llmops_cli.adapters.llm.threaded import ThreadedLLM

        return ThreadedLLM(build_llm(ls, model=model), workers=concurrency)
    if not ls.api_base:
        raise NotConfiguredError(
            "--client http needs llm.api_base (an OpenAI-compatible endpoint)",
            hint="set llm.api_base or LLMOPS_LLM_API_BASE, or use --client litellm",
        )
    from llmops_cli.adapters.llm.openai_http import OpenAIHTTP

    return OpenAIHTTP(model, **_client_options(ls))


def llm_stack(
    base: LLM,
    *,
    log: AnswerLog | None = None,
    kind: str = "eval",
    collection: str | None = None,
    config_hash: str | None = None,
    cache: LLMCache | None = None,
    usage: Any = None,
    wrap_cache: bool = False,
) -> LLM:
    """The one order of LLM wrappers: base client (its own retries) -> tracing -> recording -> cache.

    Recording (``log``): every call that reached the LLM becomes a row of the answer log of ``kind``. The cache sits
    on top, so a call answered from it is neither sent nor recorded. ``wrap_cache`` (or a ``cache`` or ``usage``):
    eval's CachedLLM, which also totals tokens and cost in ``usage`` and caches only replies that parse."""
    from llmops_cli.core.llm_tracing import TracedLLM

    llm: LLM = TracedLLM(base)  # a span per call that reaches the client (core/tracing.py)
    if log is not None:
        from llmops_cli.core.feedback.recording import RecordingLLM

        llm = RecordingLLM(llm, log, kind=kind, collection=collection, config_hash=config_hash)
    if wrap_cache or cache is not None or usage is not None:
        from llmops_cli.core.eval.llm_calls import CachedLLM

        llm = CachedLLM(llm, cache, usage)
    return llm


class Workspace:
    """What one invocation works with, built from its settings on first use and only once: the store (read-only or
    not), the embedder of a collection, LLM stacks by kind, the answer log, the LLM cache, the eval history and the
    lexical indexes. ``close()`` (or ``with``) closes what was opened.

    The ``_build_*`` methods are the only places adapters are made; a test subclass returns fakes from them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stores: dict[bool, VectorStore] = {}
        self._embedders: dict[tuple, Embedder] = {}
        self._llms: dict[tuple, LLM] = {}
        self._state: State | None = None
        self._answer_log: AnswerLog | None = None
        self._llm_cache: LLMCache | None = None
        self._history: RunHistory | None = None
        self._lexical: dict[str, LexicalIndex] = {}
        self.serving = False  # see for_serving
        from llmops_cli.core import tracing

        if settings.tracing.enabled:
            tracing.set_configurer(self._configure_tracing)  # the SDK is set up at the first span, once a process
        else:
            tracing.disable()  # a workspace with tracing off records nothing, even after one with it on

    def for_serving(self) -> Workspace:
        """This workspace's adapters built for many requests at once (``llmops serve``); called before any is built:

        - the embedder coalesces the questions of concurrent requests into one model call
          (adapters/embedders/batching.py);
        - an embedded Chroma's read-only store answers searches from an in-process replica of each small collection
          (adapters/vectorstores/replica.py). Only an embedded store: its reader is a snapshot too, and serve replaces
          the workspace when the store changes (a server store is read fresh by every query). A writable store, once
          opened (a promotion), serves reads itself, as it does in the CLI."""
        self.serving = True
        return self

    # --- what a test workspace replaces ---
    def _build_store(self, read_only: bool) -> VectorStore:
        return build_store(self.settings, read_only=read_only)

    def _build_embedder(self, es: EmbedderSettings) -> Embedder:
        return build_embedder(es)

    def _build_llm(self, ls: LLMSettings, model: str | None, client: str, concurrency: int, hint: dict) -> LLM:
        if client == "sync":
            return build_llm(ls, model, **hint)
        if client == "answer":
            return build_answer_llm(ls, model, **hint)
        model = model or ls.model
        if not model:
            raise NotConfiguredError("no LLM is configured", hint=no_llm_hint(**hint))
        return build_batch_llm(ls, model, client, concurrency)

    def _open_state(self) -> State:
        from llmops_cli.adapters.state import open_state

        return open_state(self.settings.state.url, self.settings.data_path)

    def _open_answer_log(self) -> AnswerLog:
        return self.state().answer_log()

    def _configure_tracing(self) -> None:
        from llmops_cli.adapters import tracing as tracing_sdk
        from llmops_cli.adapters.state import open_state

        settings = self.settings
        tracing_sdk.configure(settings.tracing, lambda: open_state(settings.state.url, settings.data_path))

    # --- the parts ---
    def store(self, *, read_only: bool = False) -> VectorStore:
        """The store; a writable one also serves read-only use, so one invocation opens it once."""
        if False in self._stores:
            return self._stores[False]
        if read_only not in self._stores:
            store = self._build_store(read_only)
            if self.serving and read_only and self.settings.store.backend == "chroma":
                from llmops_cli.adapters.vectorstores.replica import ReplicaStore

                store = ReplicaStore(store)
            self._stores[read_only] = store
        return self._stores[read_only]

    def embedder(self, es: EmbedderSettings | None = None) -> Embedder:
        """The embedder of ``es`` (default: the configured one)."""
        es = es or self.settings.embedder
        key = (es.backend, es.model, es.precision, es.batch_size, es.api_base)
        if key not in self._embedders:
            from llmops_cli.core.llm_tracing import TracedEmbedder

            embedder = self._build_embedder(es)
            if self.serving:
                from llmops_cli.adapters.embedders.batching import BatchingEmbedder

                embedder = BatchingEmbedder(embedder)
            self._embedders[key] = TracedEmbedder(embedder)
        return self._embedders[key]

    def collection_embedder(self, meta: dict[str, Any] | None) -> Embedder:
        """The embedder a collection was ingested with (its metadata records it), so that a collection made with
        ``--embed-precision int8`` is searched with int8 vectors without the user repeating the flag."""
        return self.embedder(embedder_settings_for(meta, self.settings.embedder))

    def llm(
        self,
        kind: str,
        *,
        model: str | None = None,
        llm_settings: LLMSettings | None = None,
        client: str = "sync",
        concurrency: int = 32,
        record: bool = True,
        collection: str | None = None,
        cache: bool = False,
        usage: Any = None,
        setting: str = "llm.model",
        also: str | None = None,
    ) -> LLM:
        """The LLM stack for ``kind`` (ask, eval, judge, generate, batch, review), see ``llm_stack``: ``model`` and
        ``llm_settings`` (default: llm.*) pick the client, ``client`` how it calls (CLIENTS), ``record`` whether its
        calls become answer-log rows of ``kind``, ``cache`` whether the LLM cache answers repeated calls (with
        ``usage`` totalled). Built once per arguments: asking again (a CLI's fail-fast check, then the step) returns
        the same stack. ``setting``/``also`` phrase the "no LLM configured" hint for the asking command."""
        ls = llm_settings or self.settings.llm
        # the key (never shown) is the secret itself: two endpoints that differ only in their key are two stacks
        secret = ls.api_key.get_secret_value() if ls.api_key else None
        key = (kind, model, ls.model_dump_json(), secret, client, concurrency, record, collection, cache, id(usage))
        if key not in self._llms:
            base = self._build_llm(ls, model, client, concurrency, {"setting": setting, "also": also})
            self._llms[key] = llm_stack(
                base,
                log=self.answer_log() if record else None,
                kind=kind,
                collection=collection,
                config_hash=self.answer_config_hash() if record else None,
                cache=self.llm_cache() if cache else None,
                usage=usage,
                wrap_cache=cache,
            )
        return self._llms[key]

    def answer_config_hash(self) -> str:
        """The answer log's fingerprint of the settings that shape an answer (llm, embedder, retrieval, chunking);
        not eval's ``eval_config_hash``, which fingerprints one evaluation's configuration."""
        from llmops_cli.core.feedback.log import answer_config_hash

        return answer_config_hash(self.settings)

    def state(self) -> State:
        """Where the answer log, LLM cache, eval history and batch checkpoints live (``state.url``: SQLite files under
        data_dir, or one shared database). Opens nothing itself; a shared database is connected at first use, once."""
        if self._state is None:
            self._state = self._open_state()
        return self._state

    def answer_log_exists(self) -> bool:
        """Whether there is an answer log to read (a shared database always has one)."""
        from llmops_cli.core.feedback.log import LOG_FILE

        if self._answer_log is not None or self.settings.state.url:
            return True
        return (Path(self.settings.data_path) / LOG_FILE).is_file()

    def answer_log(self, *, read_only: bool = False) -> AnswerLog:
        """The answer log (``<data_dir>/llmops.sqlite`` or the shared database), opened once. ``read_only``: where
        there is no log file yet, an empty one in memory (not kept), so a command that only reads creates no file."""
        if self._answer_log is None:
            if read_only and not self.answer_log_exists():
                from llmops_cli.core.feedback.log import MEMORY, AnswerLog

                return AnswerLog(MEMORY)
            self._answer_log = self._open_answer_log()
        return self._answer_log

    def llm_cache(self) -> LLMCache:
        if self._llm_cache is None:
            self._llm_cache = self.state().llm_cache()
        return self._llm_cache

    def eval_history(self) -> RunHistory:
        if self._history is None:
            self._history = self.state().run_history()
        return self._history

    def checkpoints(self, run_dir: str | Path) -> Checkpoints:
        """A batch run's checkpoints: the run folder's files, or the shared database keyed by the run folder."""
        return self.state().checkpoints(run_dir)

    def lexical_index(self, collection: str) -> LexicalIndex:
        """The BM25 index of ``collection`` in this store (a derived file under data_dir, one folder per store)."""
        if collection not in self._lexical:
            from llmops_cli.core.retrieval import LexicalIndex

            self._lexical[collection] = LexicalIndex(
                lexical_folder(self.settings, self.store(read_only=True), collection),
                self.store(read_only=True),
                collection,
            )
        return self._lexical[collection]

    def after_store_write(self, collection: str) -> None:
        """Bring this machine's BM25 index up to a write just made (only what changed). With a server store the index
        is a per-machine cache that the next query refreshes from the store, so a writer (e.g. one Airflow shard on
        one worker) does not build its own; PostgreSQL searches text itself."""
        if self.settings.store.backend == "chroma":
            self.lexical_index(collection).update()

    def write_lock(self, wait_s: float | None = None, flag: str | None = None):
        """The embedded store's write lock (core/store_lock.py), held around every command that writes the store,
        from before it reads what it plans on to its last write (lexical index included). A Chroma server orders its
        own writes (and PostgreSQL its transactions): no file lock there."""
        if self.settings.store.backend != "chroma":  # a server (store.url / store.host)
            return contextlib.nullcontext()
        from llmops_cli.core.store_lock import write_lock

        return write_lock(self.settings.store_path, wait_s, flag=flag)

    def close(self) -> None:
        """Close the state stores this workspace opened, then the shared database they used (the LLM clients'
        sessions belong to their event loops). Spans are not flushed here: the SDK's batch processor writes them
        from its own thread, and at the process's exit, so a slow or unreachable state database never holds up a
        command's end (or a test's teardown)."""
        try:
            for opened in (self._answer_log, self._llm_cache, self._history):
                if opened is not None:
                    opened.close()
        finally:
            self._answer_log = self._llm_cache = self._history = None
            self._llms.clear()
            if self._state is not None:
                self._state.close()
                self._state = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lexical_folder(settings: Settings, store: Any, collection: str) -> Path:
    """Where a collection's BM25 index lives: ``<data_dir>/lexical/<hash of the store's location>/<collection>``."""
    import hashlib  # its OpenSSL bindings cost --help a few ms; a command that reads an index pays them

    key = hashlib.sha256(str(getattr(store, "where", "store")).encode()).hexdigest()[:12]
    return Path(settings.data_path) / "lexical" / key / collection
