"""The chunker interface and the token index that makes counting any span of a text cheap."""

from __future__ import annotations

import bisect
import re
from abc import ABC, abstractmethod
from array import array
from dataclasses import dataclass

from llmops_cli.core.documents import Document
from llmops_cli.core.ports import TokenCounter
from llmops_cli.errors import ConfigError


@dataclass
class Piece:
    """A chunk before it gets an id: its text and the heading path it sits under ("A > B")."""

    text: str
    heading: str = ""


# Texts longer than this are tokenized a block at a time, cut at whitespace: a tokenizer holds ~200 bytes per
# character of its input while it runs (offset alignments, token strings), so a 20 MB section in one call took
# GBs. Shorter texts (every ordinary section) go in one call, exactly as before.
TOKENIZE_BLOCK = 1 << 17
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


class TokenIndex:
    """Token spans of one text; counts the tokens inside any character range in O(log n).

    Starts and ends are kept in compact int arrays (4 bytes each a token, not a list of int objects)."""

    def __init__(self, text: str, tokens: TokenCounter, block: int | None = None):
        block = block or TOKENIZE_BLOCK
        code = "i" if len(text) < 2**31 else "q"  # 4-byte offsets: any file under the size limit
        self.starts = array(code)
        self.ends = array(code)
        pos = 0
        while pos < len(text):
            end = _block_end(text, pos, block)
            # a cut at whitespace splits no token of a whitespace-splitting tokenizer (WordPiece, BPE with a
            # whitespace pre-tokenizer), so the spans equal those of one call on the whole text
            for s, e in tokens.token_spans(text[pos:end]) if (pos or end < len(text)) else tokens.token_spans(text):
                self.starts.append(s + pos)
                self.ends.append(e + pos)
            pos = end

    def count(self, start: int, end: int) -> int:
        """Tokens that start at or after ``start`` and end at or before ``end``."""
        lo = bisect.bisect_left(self.starts, start)
        hi = bisect.bisect_right(self.ends, end)
        return max(0, hi - lo)

    def char_at_token(self, i: int) -> int:
        return self.starts[i]

    def __len__(self) -> int:
        return len(self.starts)


def _block_end(text: str, pos: int, block: int) -> int:
    """End of the block starting at ``pos``: at most ``block`` characters, cut after the last whitespace of its
    second half (a run without any is cut where it is: only such a pathological run may be tokenized differently)."""
    end = pos + block
    if end >= len(text):
        return len(text)
    m = _LAST_SPACE.search(text, pos + block // 2, end)
    return m.end() if m else end


class Chunker(ABC):
    """Splits a document into pieces of at most ``size`` tokens with ``overlap`` tokens carried over."""

    name: str = "base"

    def __init__(self, tokens: TokenCounter, size: int, overlap: int):
        if size > tokens.max_tokens:
            raise ConfigError(
                f"chunking.size {size} is over the embedding model's maximum of {tokens.max_tokens} tokens; "
                "longer chunks would be truncated",
                hint=f"use --chunk-size {tokens.max_tokens} or less",
            )
        if overlap >= size:
            raise ConfigError(
                f"chunking.overlap {overlap} must be smaller than chunking.size {size}", hint="lower --chunk-overlap"
            )
        self.tokens = tokens
        self.size = size
        self.overlap = overlap

    @abstractmethod
    def split(self, doc: Document) -> list[Piece]:
        """The document's pieces, in order; every piece fits ``size`` tokens (heading included)."""
