"""Training a sentence-transformers embedding model on (anchor, positive, hard negative) pairs with the library's own
contrastive loss (MultipleNegativesRankingLoss: every other positive and negative in the batch is a negative too).

A plain loop over the loss module rather than ``SentenceTransformerTrainer``: the trainer needs ``datasets`` and
``accelerate`` and brings nothing a few hundred CPU steps need. LoRA (``peft``) trains low-rank adapters on the
transformer's attention projections and merges them back before saving, so the saved folder is an ordinary
sentence-transformers model that every backend (torch, onnx export) loads by path."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmops_cli.errors import EmbedderError, ExitCode


def peft_available() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def train_embedder(
    base_dir: Path,
    pairs: Sequence[Any],
    out_dir: Path,
    *,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    max_seq_length: int | None = 256,
    lora: bool = False,
    lora_r: int = 8,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the model in ``base_dir`` on ``pairs`` (``.anchor``, ``.positive``, ``.negative``) and save it to
    ``out_dir``. Returns the cost and the training curve (first and last batches' loss)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if lora and not peft_available():
        raise EmbedderError(
            "--lora needs the peft package, which is not installed",
            hint="pip install 'llmops-cli[finetune]' (peft), or train without --lora",
            exit_code=ExitCode.USAGE,
        )
    if not pairs:
        raise EmbedderError("no training pairs", hint="give a dataset whose questions name chunks or sources")
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    wall0, cpu0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    model = SentenceTransformer(str(base_dir), device="cpu")
    served_length = model.max_seq_length
    if max_seq_length:
        model.max_seq_length = min(model.max_seq_length or max_seq_length, max_seq_length)
    trainable = None
    if lora:
        from peft import LoraConfig, get_peft_model

        transformer = model[0]
        _set_backbone(
            transformer,
            get_peft_model(
                transformer.auto_model,
                LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=["query", "value"]),
            ),
        )
        trainable = sum(p.numel() for p in transformer.auto_model.parameters() if p.requires_grad)
        learning_rate = max(learning_rate, 1e-4)  # adapters start at zero: a full fine-tune's rate barely moves them
    loss_fn = MultipleNegativesRankingLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate)
    # in-batch negatives only work when a batch has no two pairs of one anchor; shuffle, then spread duplicates
    order = list(range(len(pairs)))
    has_negatives = all(p.negative for p in pairs)
    steps_per_epoch = (len(pairs) + batch_size - 1) // batch_size
    total = steps_per_epoch * epochs
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
    )
    rng = random.Random(seed)
    losses: list[float] = []
    model.train()
    step = 0
    for _epoch in range(epochs):
        rng.shuffle(order)
        for batch in _batches_unique_anchor(order, pairs, batch_size):
            columns = [[pairs[i].anchor for i in batch], [pairs[i].positive for i in batch]]
            if has_negatives:
                columns.append([pairs[i].negative for i in batch])
            features = [_to_device(model.tokenize(col), model.device) for col in columns]
            loss = loss_fn(features, torch.zeros(len(batch), dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(step, total, losses[-1])
    model.eval()
    if lora:
        _set_backbone(model[0], model[0].auto_model.merge_and_unload())
    trained_length = model.max_seq_length
    model.max_seq_length = served_length  # shorter texts only to train faster: the saved model embeds like the base
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    _old_pooling_key(out_dir)
    return {
        "wall_s": round(time.perf_counter() - wall0, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "pairs": len(pairs),
        "hard_negatives": sum(1 for p in pairs if p.negative),
        "epochs": epochs,
        "steps": step,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "max_seq_length": trained_length,
        "lora": {"r": lora_r, "trainable_parameters": trainable} if lora else None,
        "loss_first": round(sum(losses[:3]) / len(losses[:3]), 4),
        "loss_last": round(sum(losses[-3:]) / len(losses[-3:]), 4),
        "threads": torch.get_num_threads(),
    }


def _batches_unique_anchor(order: list[int], pairs: Sequence[Any], size: int):
    """Batches of ``size`` in ``order`` where no anchor appears twice (a second positive of the same question would
    be scored as its negative); a pair that would repeat an anchor waits for the next batch."""
    pending = list(order)
    while pending:
        batch, anchors, rest = [], set(), []
        for i in pending:
            if len(batch) < size and pairs[i].anchor not in anchors:
                batch.append(i)
                anchors.add(pairs[i].anchor)
            else:
                rest.append(i)
        yield batch
        pending = rest


def _set_backbone(transformer: Any, backbone: Any) -> None:
    """Put ``backbone`` (the PEFT-wrapped model, then the merged one) in the Transformer module. In
    sentence-transformers 6 ``auto_model`` is a read-only property over ``model``: assigning it registered a second
    submodule and left ``auto_model`` the plain model (``--lora`` died with "'BertModel' object has no attribute
    'merge_and_unload'"); older versions keep the model in ``auto_model`` itself."""
    if isinstance(getattr(type(transformer), "auto_model", None), property):
        transformer.model = backbone
    else:
        transformer.auto_model = backbone


def _old_pooling_key(folder: Path) -> None:
    """sentence-transformers 6 saves the pooling width as ``embedding_dimension``; the project's embedders (and
    older sentence-transformers) read ``word_embedding_dimension``: write both, so every reader loads the folder."""
    import json

    cfg_path = folder / "1_Pooling" / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        if "word_embedding_dimension" not in cfg and "embedding_dimension" in cfg:
            cfg["word_embedding_dimension"] = cfg["embedding_dimension"]
            cfg_path.write_text(json.dumps(cfg, indent=2))


def _to_device(features: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in features.items()}
