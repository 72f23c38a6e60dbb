"""LoRA fine-tuning of a local causal LM in Hugging Face format (``peft`` + ``transformers``), on the chat rows that
``llmops feedback export`` writes (``{"messages": [...]}``) or ``{"prompt", "completion"}`` rows.

The loss is on the answer's tokens only (the prompt is context, not something to learn to write). The adapters are
saved on their own (``adapter/``, a few MB) with the tokenizer; ``evaluate_causal_lm`` scores the base model and the
base + adapters on the same held-out rows (mean answer-token loss and perplexity), so the two are compared on one
question set. CUDA when present, else CPU."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmops_cli.errors import ExitCode, InputError, LlmopsError


def split_row(row: dict[str, Any]) -> tuple[str, str]:
    """(prompt, answer) of one dataset row; a row of another shape is an InputError saying what is wrong."""
    if not isinstance(row, dict):
        raise InputError(
            f"a fine-tuning row is a JSON object, not {type(row).__name__}",
            hint="llmops feedback export writes the chat format",
        )
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in msgs
        ):
            raise InputError(
                "'messages' is a list of {role, content} objects with text in each",
                hint="llmops feedback export writes the chat format",
            )
        answer_at = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if answer_at is None:
            raise InputError("a messages row has no assistant message", hint="each row needs the answer to learn")
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in msgs[:answer_at]) + "assistant: "
        return prompt, str(msgs[answer_at]["content"])
    if "prompt" in row and "completion" in row:
        return str(row["prompt"]), str(row["completion"])
    raise InputError(
        "a fine-tuning row needs 'messages' (chat) or 'prompt' and 'completion'",
        hint="llmops feedback export writes the chat format",
    )


def _require() -> None:
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise LlmopsError(
            f"LLM fine-tuning needs peft and transformers ({e.name} is missing)",
            hint="pip install 'llmops-cli[finetune]'",
            exit_code=ExitCode.USAGE,
        ) from None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _encode(tok: Any, rows: Sequence[tuple[str, str]], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per row: labels -100 on the prompt's tokens."""
    out = []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    for prompt, answer in rows:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(answer, add_special_tokens=False)["input_ids"] + eos
        ids = (p + a)[:max_len]
        labels = ([-100] * len(p) + a)[:max_len]
        if any(x != -100 for x in labels):
            out.append((ids, labels))
    return out


def _batch(encoded: Sequence[tuple[list[int], list[int]]], pad: int, device: str) -> dict[str, Any]:
    import torch

    n = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), n), pad, dtype=torch.long)
    labels = torch.full((len(encoded), n), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), n), dtype=torch.long)
    for i, (x, y) in enumerate(encoded):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def _tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def train_lora(
    base: Path,
    rows: Sequence[tuple[str, str]],
    out_dir: Path,
    *,
    lora_r: int = 8,
    epochs: int = 1,
    batch_size: int = 4,
    learning_rate: float = 2e-4,
    max_len: int = 512,
    target_modules: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train LoRA adapters of ``base`` on (prompt, answer) rows; save them to ``out_dir/adapter``. Returns the cost."""
    _require()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    wall0, cpu0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    device = _device()
    tok = _tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(str(base)).to(device)
    cfg = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=list(target_modules) if target_modules else "all-linear",
    )
    model = get_peft_model(model, cfg)
    encoded = _encode(tok, rows, max_len)
    if not encoded:
        raise InputError("no fine-tuning rows with an answer to learn", hint="check the dataset")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate)
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    losses, steps, tokens = [], 0, 0
    model.train()
    for _ in range(epochs):
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            chunk = [encoded[j] for j in order[i : i + batch_size]]
            b = _batch(chunk, tok.pad_token_id, device)
            loss = model(**b).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            steps += 1
            tokens += int(b["attention_mask"].sum())
    model.eval()
    adapter = out_dir / "adapter"
    model.save_pretrained(str(adapter))
    tok.save_pretrained(str(adapter))
    trainable = sum(p.numel() for p in params)
    return {
        "wall_s": round(time.perf_counter() - wall0, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "device": device,
        "rows": len(encoded),
        "epochs": epochs,
        "steps": steps,
        "trained_tokens": tokens,
        "lora_r": lora_r,
        "trainable_parameters": trainable,
        "loss_first": round(sum(losses[:3]) / len(losses[:3]), 4),
        "loss_last": round(sum(losses[-3:]) / len(losses[-3:]), 4),
    }


def evaluate_causal_lm(
    base: Path, rows: Sequence[tuple[str, str]], *, adapter: Path | None = None, max_len: int = 512
) -> dict[str, Any]:
    """Mean answer-token loss and perplexity of the base model (or base + ``adapter``) on ``rows``."""
    _require()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    device = _device()
    tok = _tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(str(base)).to(device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in _encode(tok, rows, max_len):
            b = _batch([(ids, labels)], tok.pad_token_id, device)
            n = sum(1 for x in labels[1:] if x != -100)  # the loss is over shifted labels
            if n:
                total += float(model(**b).loss) * n
                count += n
    mean = total / count if count else float("nan")
    return {"loss": round(mean, 4), "perplexity": round(math.exp(mean), 3) if count else None, "tokens": count}
