"""Recursive separators (paragraphs, lines, sentences, words), merged greedily up to the size in tokens."""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator

from llmops_cli.core.chunking.base import Chunker, Piece, TokenIndex
from llmops_cli.core.documents import Document

DEFAULT_SEPARATORS = ["\n\n", "\n", r"(?<=[.!?])\s+", r"\s+"]


_NONSPACE = re.compile(r"\S")


def _split_ranges(text: str, start: int, end: int, sep: str) -> Iterator[tuple[int, int]]:
    """Split text[start:end] at a regex separator, each range keeping its trailing separator; blank ranges are
    dropped. A generator: a long run can have millions of ranges, and the merge needs only a few at a time."""
    pos = start
    for m in re.compile(re.escape(sep) if sep in ("\n\n", "\n") else sep).finditer(text, start, end):
        if m.end() <= pos:
            continue
        if m.end() > pos and m.start() > pos:
            if _NONSPACE.search(text, pos, m.end()):
                yield (pos, m.end())
            pos = m.end()
    if pos < end and _NONSPACE.search(text, pos, end):
        yield (pos, end)


class RecursiveChunker(Chunker):
    name = "recursive"

    def __init__(self, tokens, size, overlap, separators: list[str] | None = None):
        super().__init__(tokens, size, overlap)
        self.separators = separators or DEFAULT_SEPARATORS

    def split(self, doc: Document) -> list[Piece]:
        return [Piece(t) for t in self.split_text(doc.text, self.size)]

    def split_text(self, text: str, size: int) -> list[str]:
        idx = TokenIndex(text, self.tokens)
        out = []
        for a, b in self._merge(idx, self._split(text, idx, 0, len(text), size, 0), size):
            piece = text[a:b].strip()
            if piece:
                out.append(piece)
        return out

    def _split(
        self, text: str, idx: TokenIndex, start: int, end: int, size: int, level: int
    ) -> Iterator[tuple[int, int]]:
        """The ranges of text[start:end], each at most ``size`` tokens, in order (lazily: see _split_ranges)."""
        if idx.count(start, end) <= size:
            yield (start, end)
            return
        if level >= len(self.separators):
            yield from self._windows(idx, start, end, size)
            return
        parts = _split_ranges(text, start, end, self.separators[level])
        first = list(itertools.islice(parts, 2))
        if len(first) <= 1:
            yield from self._split(text, idx, start, end, size, level + 1)
            return
        for a, b in itertools.chain(first, parts):
            if idx.count(a, b) <= size:
                yield (a, b)
            else:
                yield from self._split(text, idx, a, b, size, level + 1)

    def _windows(self, idx: TokenIndex, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
        """Last resort for a run without separators: cut at token boundaries."""
        import bisect

        first = bisect.bisect_left(idx.starts, start)
        last = bisect.bisect_right(idx.ends, end)
        for i in range(first, last, size):
            j = min(i + size, last)
            yield (idx.starts[i] if i > first else start, idx.ends[j - 1] if j < last else end)

    def _merge(self, idx: TokenIndex, ranges: Iterable[tuple[int, int]], size: int) -> Iterator[tuple[int, int]]:
        """Greedy merge of adjacent ranges up to ``size`` tokens, carrying up to ``overlap`` tokens over."""
        cur: deque[tuple[int, int]] = deque()
        for r in ranges:
            if cur and idx.count(cur[0][0], r[1]) > size:
                yield (cur[0][0], cur[-1][1])
                # keep a tail of whole ranges worth at most `overlap` tokens, if the next range still fits
                while cur and (idx.count(cur[0][0], cur[-1][1]) > self.overlap or idx.count(cur[0][0], r[1]) > size):
                    cur.popleft()
            cur.append(r)
        if cur:
            yield (cur[0][0], cur[-1][1])
