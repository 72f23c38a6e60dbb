"""The torch backend: sentence-transformers, loaded by path (offline)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llmops_cli.adapters.embedders.hf_tokens import HFTokenCounter
from llmops_cli.adapters.embedders.model_files import resolve_model_dir
from llmops_cli.core.ports import Embedder
from llmops_cli.errors import EmbedderError


def model_identity(model: str, model_dir: Path, precision: str = "fp32") -> str:
    """Backend-independent identity: torch and onnx fp32 give the same vectors, so they share it."""
    name = model if not Path(model).expanduser().exists() else model_dir.name
    return f"st:{name}" + ("" if precision == "fp32" else f":{precision}")


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model: str, *, batch_size: int | None = None, device: str = "cpu"):
        self.model_dir = resolve_model_dir(model)
        self.tokens = HFTokenCounter(self.model_dir)
        self.batch_size = batch_size or 32  # the best of 16-32 measured here; larger is slower
        self.identity = model_identity(model, self.model_dir)
        self._device = device
        self._model = None
        self.dimension = self._read_dimension()

    def _read_dimension(self) -> int:
        import json

        pool = self.model_dir / "1_Pooling" / "config.json"
        if pool.is_file():
            return int(json.loads(pool.read_text())["word_embedding_dimension"])
        return int(json.loads((self.model_dir / "config.json").read_text())["hidden_size"])

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.model_dir), device=self._device)
            except Exception as e:
                raise EmbedderError(f"cannot load embedding model {self.model_dir}: {e}") from e
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)
