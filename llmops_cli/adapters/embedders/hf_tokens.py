"""Token counting with the model's own tokenizer (the ``tokenizers`` library: fast, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmops_cli.adapters.embedders.model_files import max_seq_length
from llmops_cli.errors import EmbedderError


class HFTokenCounter:
    """Counts in word-pieces of the model's tokenizer.json; ``max_tokens`` excludes [CLS]/[SEP]."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        f = Path(model_dir) / "tokenizer.json"
        if not f.is_file():
            raise EmbedderError(
                f"embedding model {model_dir} has no tokenizer.json", hint="use a model saved by a recent transformers"
            )
        tok = Tokenizer.from_file(str(f))
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        specials = len(tok.encode("", add_special_tokens=True).ids)
        self.max_tokens = max_seq_length(Path(model_dir)) - specials

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return list(self._tok.encode(text, add_special_tokens=False).offsets)
