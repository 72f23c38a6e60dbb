"""Recursive separators (paragraphs, lines, sentences, words), merged greedily up to the size in tokens."""

from __future__ import annotations

import re

from llmops_cli.core.chunking.base import Chunker, Piece, TokenIndex
from llmops_cli.core.documents import Document

DEFAULT_SEPARATORS = ["\n\n", "\n", r"(?<=[.!?])\s+", r"\s+"]


def _split_ranges(text: str, start: int, end: int, sep: str) -> list[tuple[int, int]]:
    """Split text[start:end] at a regex separator, each range keeping its trailing separator."""
    out: list[tuple[int, int]] = []
    pos = start
    for m in re.compile(re.escape(sep) if sep in ("\n\n", "\n") else sep).finditer(text, start, end):
        if m.end() <= pos:
            continue
        if m.end() > pos and m.start() > pos:
            out.append((pos, m.end()))
            pos = m.end()
    if pos < end:
        out.append((pos, end))
    return [r for r in out if text[r[0]:r[1]].strip()]


class RecursiveChunker(Chunker):
    name = "recursive"

    def __init__(self, tokens, size, overlap, separators: list[str] | None = None):
        super().__init__(tokens, size, overlap)
        self.separators = separators or DEFAULT_SEPARATORS

    def split(self, doc: Document) -> list[Piece]:
        return [Piece(t) for t in self.split_text(doc.text, self.size)]

    def split_text(self, text: str, size: int) -> list[str]:
        idx = TokenIndex(text, self.tokens)
        ranges = self._split(text, idx, 0, len(text), size, 0)
        merged = self._merge(text, idx, ranges, size)
        return [text[a:b].strip() for a, b in merged if text[a:b].strip()]

    def _split(self, text: str, idx: TokenIndex, start: int, end: int, size: int, level: int) -> list[tuple[int, int]]:
        if idx.count(start, end) <= size:
            return [(start, end)]
        if level >= len(self.separators):
            return self._windows(idx, start, end, size)
        out: list[tuple[int, int]] = []
        parts = _split_ranges(text, start, end, self.separators[level])
        if len(parts) <= 1:
            return self._split(text, idx, start, end, size, level + 1)
        for a, b in parts:
            if idx.count(a, b) <= size:
                out.append((a, b))
            else:
                out.extend(self._split(text, idx, a, b, size, level + 1))
        return out

    def _windows(self, idx: TokenIndex, start: int, end: int, size: int) -> list[tuple[int, int]]:
        """Last resort for a run without separators: cut at token boundaries."""
        import bisect

        first = bisect.bisect_left(idx.starts, start)
        last = bisect.bisect_right(idx.ends, end)
        out = []
        for i in range(first, last, size):
            j = min(i + size, last)
            out.append((idx.starts[i] if i > first else start, idx.ends[j - 1] if j < last else end))
        return out

    def _merge(self, text: str, idx: TokenIndex, ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
        """Greedy merge of adjacent ranges up to ``size`` tokens, carrying up to ``overlap`` tokens over."""
        chunks: list[tuple[int, int]] = []
        cur: list[tuple[int, int]] = []
        for r in ranges:
            if cur and idx.count(cur[0][0], r[1]) > size:
                chunks.append((cur[0][0], cur[-1][1]))
                # keep a tail of whole ranges worth at most `overlap` tokens, if the next range still fits
                while cur and (idx.count(cur[0][0], cur[-1][1]) > self.overlap or idx.count(cur[0][0], r[1]) > size):
                    cur.pop(0)
            cur.append(r)
        if cur:
            chunks.append((cur[0][0], cur[-1][1]))
        return chunks
