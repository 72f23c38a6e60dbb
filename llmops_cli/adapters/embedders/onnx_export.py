"""Exporting a sentence-transformers model to ONNX once, into the user's cache, keyed by the model's files.

The exported graph is the whole sentence embedder: BERT-style transformer + pooling + L2 normalisation, so the
inference side (onnx_embedder.py) needs only onnxruntime, tokenizers and numpy. Only ``export_model`` and
``quantize_int8`` import torch / transformers / onnx, and only when the cache misses.

Cache layout: ``$LLMOPS_CACHE_DIR/onnx/<key>/`` (default ``~/.cache/llmops``) holding ``model.onnx``, optionally
``model.int8.onnx``, and ``export.json`` (what was exported from where). ``<key>`` hashes the contents of the
files that define the vectors (weights, configs, tokenizer) plus the export format version. Content hashes are
remembered in ``onnx/file-hashes.json`` keyed by (path, size, mtime, ctime, inode), so a query does not re-read
90 MB of weights; the model folder itself may be read-only (site-packages), which is why that file lives here.
Every file is written to a temporary name and renamed, so a killed or concurrent export never leaves a
half-written model behind; an advisory lock keeps two processes from exporting the same model twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.adapters.embedders.model_files import max_seq_length
from llmops_cli.errors import EmbedderError

log = logging.getLogger(__name__)

#: bump when the exported graph changes (inputs, outputs, pooling, quantisation recipe): old caches are ignored
EXPORT_FORMAT = "st-onnx-3"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sentence_embedding"
PRECISIONS = ("fp32", "int8")
_FILE_NAMES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}

# the files whose contents decide the vectors (relative to the transformer / pooling module folders)
_TRANSFORMER_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
_TOP_FILES = ("modules.json", "sentence_bert_config.json")


def cache_root() -> Path:
    """``$LLMOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmops``, else ``~/.cache/llmops``."""
    env = os.environ.get("LLMOPS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmops"


@dataclass(frozen=True)
class ModelLayout:
    """Where a sentence-transformers model keeps its parts, and the pooling it uses."""

    model_dir: Path
    transformer_dir: Path
    pooling: str  # "mean" | "cls" | "max"
    dimension: int
    max_length: int  # special tokens included

    @classmethod
    def read(cls, model_dir: Path) -> ModelLayout:
        model_dir = Path(model_dir)
        transformer_dir, pooling_dir = model_dir, model_dir / "1_Pooling"
        modules_file = model_dir / "modules.json"
        if modules_file.is_file():
            for m in json.loads(modules_file.read_text()):
                kind = m.get("type", "").rsplit(".", 1)[-1]
                if kind == "Transformer":
                    transformer_dir = model_dir / m.get("path", "")
                elif kind == "Pooling":
                    pooling_dir = model_dir / m.get("path", "")
                elif kind != "Normalize":
                    # Dense layers and the like change the vectors; the export below does not reproduce them
                    raise EmbedderError(
                        f"embedding model {model_dir} has a {kind} module the onnx backend does not export",
                        hint="use embedder.backend=sentence-transformers for this model",
                    )
        pooling, dimension = "mean", None
        pool_cfg = pooling_dir / "config.json"
        if pool_cfg.is_file():
            cfg = json.loads(pool_cfg.read_text())
            if "pooling_mode" in cfg:
                # sentence-transformers 6 (and so every folder `llmops finetune embedder` saves): one key, a mode
                # name or a list of them, and the width as ``embedding_dimension``
                mode = cfg["pooling_mode"]
                modes = [mode] if isinstance(mode, str) else list(mode or [])
            else:
                modes = [
                    k.removeprefix("pooling_mode_")
                    for k in (
                        "pooling_mode_mean_tokens",
                        "pooling_mode_cls_token",
                        "pooling_mode_max_tokens",
                        "pooling_mode_mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens",
                        "pooling_mode_lasttoken",
                    )
                    if cfg.get(k)
                ]
            names = {"mean_tokens": "mean", "mean": "mean", "cls_token": "cls", "cls": "cls"}
            names.update({"max_tokens": "max", "max": "max"})
            if len(modes) != 1 or modes[0] not in names:
                raise EmbedderError(
                    f"embedding model {model_dir} uses pooling {modes} which the onnx backend does not export",
                    hint="use embedder.backend=sentence-transformers for this model",
                )
            pooling = names[modes[0]]
            dimension = cfg.get("word_embedding_dimension") or cfg.get("embedding_dimension")
        config = transformer_dir / "config.json"
        if not config.is_file():
            raise EmbedderError(f"embedding model {model_dir} has no config.json in {transformer_dir}")
        if dimension is None:
            dimension = json.loads(config.read_text())["hidden_size"]
        if not (transformer_dir / "tokenizer.json").is_file():
            raise EmbedderError(
                f"embedding model {model_dir} has no tokenizer.json", hint="use a model saved by a recent transformers"
            )
        return cls(model_dir, transformer_dir, pooling, int(dimension), max_seq_length(model_dir))

    def defining_files(self) -> list[Path]:
        files = [self.model_dir / n for n in _TOP_FILES]
        files += [self.transformer_dir / n for n in _TRANSFORMER_FILES]
        files.append(self.model_dir / "1_Pooling" / "config.json")
        return sorted({f for f in files if f.is_file()})


# ---------------------------------------------------------------------------------------------- cache key


def model_key(layout: ModelLayout) -> str:
    """A hash of the defining files' contents (names relative to the model folder) and the export format."""
    h = hashlib.sha256(EXPORT_FORMAT.encode())
    memo = _HashMemo(cache_root() / "onnx" / "file-hashes.json")
    for f in layout.defining_files():
        h.update(b"\0" + str(f.relative_to(layout.model_dir)).encode() + b"\0" + memo.sha256(f).encode())
    memo.save()
    return h.hexdigest()[:20]


class _HashMemo:
    """sha256 of files, remembered by (path, size, mtime_ns, ctime_ns, inode): any write changes ctime."""

    def __init__(self, path: Path):
        self.path = path
        self.changed = False
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def sha256(self, f: Path) -> str:
        st = f.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        key = str(f.resolve())
        hit = self.entries.get(key)
        if hit and hit.get("stamp") == stamp:
            return hit["sha256"]
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        self.entries[key] = {"stamp": stamp, "sha256": h.hexdigest()}
        self.changed = True
        return h.hexdigest()

    def save(self) -> None:
        if not self.changed:
            return
        try:
            _write_atomic_bytes(self.path, json.dumps(self.entries, indent=0, sort_keys=True).encode())
        except OSError as e:  # a read-only cache only costs re-hashing next time
            log.debug("cannot save file hashes to %s: %s", self.path, e)


# ---------------------------------------------------------------------------------------------- export


def export_dir(layout: ModelLayout) -> Path:
    return cache_root() / "onnx" / model_key(layout)


def cached_model(layout: ModelLayout, precision: str = "fp32") -> Path | None:
    """The exported model file if it is already in the cache (no torch, no export)."""
    f = export_dir(layout) / _FILE_NAMES[precision]
    return f if f.is_file() else None


def can_export() -> bool:
    """Whether the export libraries are importable (checked without importing them)."""
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ("torch", "transformers", "onnx"))


def ensure_exported(layout: ModelLayout, precision: str = "fp32") -> Path:
    """The exported model file for ``precision``, exporting (and quantising) it once if the cache misses."""
    if precision not in PRECISIONS:
        raise EmbedderError(f"unknown embedding precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    d = export_dir(layout)
    target = d / _FILE_NAMES[precision]
    if target.is_file():
        return target
    if not can_export():
        raise EmbedderError(
            f"the onnx export of {layout.model_dir} is not cached "
            "and torch/transformers/onnx are not installed to export it",
            hint="pip install onnx (the export runs once), or use embedder.backend=sentence-transformers",
        )
    try:
        d.mkdir(parents=True, exist_ok=True)
        _export_locked(layout, precision, d, target)
    except OSError as e:  # an unwritable or full cache: one message (and "auto" falls back to torch)
        raise EmbedderError(
            f"cannot write the ONNX export of {layout.model_dir} to {d}: {e.strerror or e}",
            hint="set LLMOPS_CACHE_DIR to a writable folder, or use embedder.backend=sentence-transformers",
        ) from e
    return target


def _export_locked(layout: ModelLayout, precision: str, d: Path, target: Path) -> None:
    with _export_lock(d):
        if target.is_file():  # another process finished it while we waited
            return
        for stale in d.glob(".*.onnx.*.tmp"):  # left by a killed export: exporters hold this lock while writing
            stale.unlink(missing_ok=True)
        fp32 = d / _FILE_NAMES["fp32"]
        if not fp32.is_file():
            log.info("exporting the embedding model to ONNX into %s (once; takes a few seconds)", d)
            export_model(layout, fp32)
        if precision == "int8" and not target.is_file():
            log.info("quantising the ONNX model to int8 (once; takes a few seconds)")
            quantize_int8(fp32, target)
        _write_atomic_bytes(
            d / "export.json",
            json.dumps(
                {
                    "format": EXPORT_FORMAT,
                    "model_dir": str(layout.model_dir),
                    "pooling": layout.pooling,
                    "dimension": layout.dimension,
                    "max_length": layout.max_length,
                    "opset": OPSET,
                    "files": sorted(p.name for p in d.glob("*.onnx")),
                },
                indent=2,
            ).encode(),
        )


def export_model(layout: ModelLayout, dest: Path) -> None:
    """torch.onnx.export of transformer + pooling + L2 normalisation, dynamic batch and sequence axes."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:
        raise EmbedderError(
            f"cannot export {layout.model_dir} to ONNX: {e}", hint="pip install torch==2.13.0 transformers onnx"
        ) from e

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-off export; the CLI shows its own progress
    try:
        with _quiet():
            bert = AutoModel.from_pretrained(str(layout.transformer_dir), attn_implementation="eager")
    except Exception as e:
        raise EmbedderError(f"cannot load {layout.transformer_dir} for the ONNX export: {e}") from e
    bert.eval()
    pooling = layout.pooling

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            # single-segment input: token types are all zero, as sentence-transformers passes them
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            if pooling == "cls":
                v = out[:, 0]
            elif pooling == "max":
                v = out.masked_fill(mask == 0, -1e9).max(dim=1).values
            else:
                v = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, p=2.0, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 2088, 999, 102]], dtype=torch.long)
    mask = (ids != 0).long()
    tmp = _temp_name(dest)
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                SentenceEmbedding(),
                (ids, mask),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    OUTPUT_NAME: {0: "batch"},
                },
                do_constant_folding=True,
            )
        os.replace(tmp, dest)
    except Exception as e:
        raise EmbedderError(
            f"ONNX export of {layout.model_dir} failed: {e}", hint="use embedder.backend=sentence-transformers"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)


def quantize_int8(src: Path, dest: Path) -> None:
    """Per-channel int8 weights for MatMul only: the default dynamic quantisation loses too much (cosine ~0.89)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise EmbedderError(f"cannot quantise {src}: {e}", hint="pip install onnx") from e
    tmp = _temp_name(dest)
    try:
        with _quiet():
            quantize_dynamic(
                str(src), str(tmp), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
            )
        os.replace(tmp, dest)
    except Exception as e:
        raise EmbedderError(f"int8 quantisation of {src} failed: {e}", hint="use embedder.precision=fp32") from e
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- files


def _temp_name(dest: Path) -> Path:
    """A fresh file beside ``dest`` (same filesystem, so os.replace is atomic), readable like a normal file."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o644 & ~umask)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the export libraries' warnings, progress bars and root-logger chatter (onnxruntime.quantization
    logs on the root logger, which would otherwise install a stderr handler for the whole process)."""
    import warnings

    root = logging.getLogger()
    guard = logging.NullHandler()
    old_level = root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    old_bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeHandler(guard)
        root.setLevel(old_level)
        if old_bars is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = old_bars


def _write_atomic_bytes(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _export_lock(d: Path) -> Iterator[None]:
    """An advisory lock on the export folder (POSIX); elsewhere concurrent exports just race, atomically."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(d / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
