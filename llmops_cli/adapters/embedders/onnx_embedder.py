"""The onnxruntime backend: the model exported once (onnx_export.py), run with onnxruntime + tokenizers + numpy.

No torch on this path once the export is cached, so a query starts in a fraction of a second. fp32 gives the
torch backend's vectors (cosine >= 0.9999) and shares its identity; int8 vectors differ slightly and get their
own identity so a collection never mixes the two.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llmops_cli.adapters.embedders.hf_tokens import HFTokenCounter
from llmops_cli.adapters.embedders.model_files import resolve_model_dir
from llmops_cli.adapters.embedders.onnx_export import (
    INPUT_NAMES,
    OUTPUT_NAME,
    ModelLayout,
    cached_model,
    ensure_exported,
)
from llmops_cli.adapters.embedders.sentence_transformers import SentenceTransformerEmbedder, model_identity
from llmops_cli.core.ports import Embedder
from llmops_cli.errors import EmbedderError

#: calls with at least this many batches per thread run their batches side by side (see ``OnnxEmbedder``)
PARALLEL_MIN_BATCHES = 2


def available_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class OnnxEmbedder(Embedder):
    """Sentence-transformers model through onnxruntime. ``export=False`` uses only an already cached export."""

    def __init__(
        self,
        model: str,
        *,
        precision: str = "fp32",
        batch_size: int | None = None,
        threads: int | None = None,
        export: bool = True,
        preload: bool = True,
    ):
        self.model_dir = resolve_model_dir(model)
        self.layout = ModelLayout.read(self.model_dir)
        self.precision = precision
        if export:
            self.onnx_path = ensure_exported(self.layout, precision)
        else:
            found = cached_model(self.layout, precision)
            if found is None:
                raise EmbedderError(f"no cached ONNX export of {self.model_dir} ({precision})")
            self.onnx_path = found
        self.identity = model_identity(model, self.model_dir, precision)
        self.dimension = self.layout.dimension
        # small batches of length-sorted texts: measured 1.09x (fp32) and 1.1x (int8) the speed of batches of 32 on
        # the Airflow docs (less padding, activations that stay in cache)
        self.batch_size = batch_size or 8
        self.threads = threads or available_threads()
        # Batches run side by side, each on one thread, rather than one batch at a time on all threads: a batch
        # of 8 chunks is too small for onnxruntime to split its ops across threads without them waiting on each
        # other (measured on 2 cores: 59.5 CPU s for the Airflow docs side by side against 68.4 op-parallel).
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._session = None
        self._tokenizer = None
        self._load_error: BaseException | None = None
        self._loader: threading.Thread | None = None
        if preload:
            # onnxruntime builds the session without holding the GIL: a query opens its vector store meanwhile
            self._loader = threading.Thread(target=self._preload, name="onnx-session-load")
            self._loader.start()

    def _preload(self) -> None:
        try:
            self._session = self._open_session()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread by ``session``
            self._load_error = e

    @property
    def session(self):
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        if self._session is None:
            if self._load_error is not None:
                err, self._load_error = self._load_error, None
                raise err
            self._session = self._open_session()
        return self._session

    def _open_session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # parallel across batches instead (``embed``)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: on a shared or small machine (and beside ingest's Chroma writer
        # thread) spinning threads take the cores the work needs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initialisers are noise to a CLI user
        try:
            return ort.InferenceSession(str(self.onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise EmbedderError(
                f"cannot load the ONNX model {self.onnx_path}: {e}",
                hint=f"delete {self.onnx_path.parent} to export it again",
            ) from e

    @functools.cached_property
    def tokens(self) -> HFTokenCounter:
        """For sizing chunks (ingest only): a query never loads it."""
        return HFTokenCounter(self.model_dir)

    @property
    def tokenizer(self):
        """The model's tokenizer truncating at the model's max length (tokenizer.json's own settings vary)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.layout.transformer_dir / "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(max_length=self.layout.max_length)
            self._tokenizer = tok
        return self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out
        session = self.session
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        # sorted by length, each batch pads only to its own longest: little work is spent on padding
        order = np.argsort(lengths, kind="stable")
        batches = [order[start : start + self.batch_size] for start in range(0, n, self.batch_size)]

        def run(idx: np.ndarray) -> None:
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i].ids
                ids[row, : len(e)] = e
                mask[row, : len(e)] = 1
            try:
                (vecs,) = session.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: mask})
            except Exception as e:
                raise EmbedderError(f"onnxruntime failed embedding a batch: {e}") from e
            out[idx] = vecs

        if len(batches) < PARALLEL_MIN_BATCHES * self.threads:  # a query or a handful: no hand-off to the pool
            for idx in batches:
                run(idx)
        else:
            # onnxruntime releases the GIL inside run(); results land in disjoint rows of ``out``
            for f in [self._workers().submit(run, idx) for idx in batches]:
                f.result()
        return out

    def _workers(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="onnx-embed")
            return self._pool


def onnx_or_torch_embedder(
    model: str, *, precision: str = "fp32", batch_size: int | None = None, fallback: bool = True
) -> Embedder:
    """The onnx backend; with ``fallback`` (backend "auto") the torch backend when onnx cannot be used.

    int8 never falls back: torch would silently give different (fp32) vectors than the user asked for.
    """
    try:
        return OnnxEmbedder(model, precision=precision, batch_size=batch_size)
    except EmbedderError as e:
        if not fallback or precision != "fp32":
            raise
        import logging

        logging.getLogger(__name__).info("onnx embedder unavailable (%s); using sentence-transformers", e)
    return SentenceTransformerEmbedder(model, batch_size=batch_size)
