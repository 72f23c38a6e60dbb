"""Fixed windows of ``size`` tokens, stepping ``size - overlap`` tokens."""

from __future__ import annotations

from llmops_cli.core.chunking.base import Chunker, Piece, TokenIndex
from llmops_cli.core.documents import Document


class TokenWindowChunker(Chunker):
    name = "tokens"

    def split(self, doc: Document) -> list[Piece]:
        return [Piece(t) for t in self.split_text(doc.text, self.size)]

    def split_text(self, text: str, size: int) -> list[str]:
        idx = TokenIndex(text, self.tokens)
        n = len(idx)
        if n == 0:
            return [text.strip()] if text.strip() else []
        step = max(1, size - min(self.overlap, size - 1))
        out = []
        for i in range(0, n, step):
            j = min(i + size, n)
            piece = text[idx.starts[i] : idx.ends[j - 1]].strip()
            if piece:
                out.append(piece)
            if j == n:
                break
        return out
