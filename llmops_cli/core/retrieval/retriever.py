"""Retrieval: vector search, lexical search, and their reciprocal rank fusion (the default, ``hybrid``).

Lexical search is our own BM25 index (lexical.py, a cache of the store under data_dir), unless the store searches
text itself: a store with ``hybrid_query`` (PostgreSQL: full-text rank and vector distance in one statement) gives
both lists in one call and no local index is built or read. Either way the lists are fused here by the same RRF.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llmops_cli.core.documents import Hit
from llmops_cli.core.ports import Embedder, VectorStore
from llmops_cli.core.retrieval.fusion import reciprocal_rank_fusion
from llmops_cli.core.retrieval.hybrid import searches_text_itself
from llmops_cli.core.retrieval.lexical import LexicalIndex
from llmops_cli.errors import UsageError

Mode = Literal["hybrid", "vector", "lexical"]
MODES = ("hybrid", "vector", "lexical")


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        collection: str,
        *,
        lexical: LexicalIndex | None,
        candidates: int = 20,
        rrf_k: int = 60,
        per_source: int | None = 1,
        long_query: str = "truncate",
        lexical_terms: str = "all",
        weights: dict[str, float] | None = None,
        fuse_sources: bool = False,
    ):
        self.store = store
        self.embedder = embedder
        self.collection = collection
        self.lexical = lexical
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.per_source = per_source
        self.long_query = long_query
        self.lexical_terms = lexical_terms
        self.weights = weights or {}
        self.fuse_sources = fuse_sources
        # the store's own text search, when it has one, over our BM25 cache
        self.in_store = searches_text_itself(store)

    # --- single lists ---
    def vector_hits(self, text: str, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        return self.store.query(self.collection, self.query_vector(text), k, where)

    def query_vector(self, text: str) -> Any:
        if self.long_query == "mean":
            windows = self.query_windows(text)
            if len(windows) > 1:
                import numpy as np

                v = self.embedder.embed(windows).mean(axis=0)
                return v / (np.linalg.norm(v) or 1.0)
        return self.embedder.embed_query(text)

    def query_windows(self, text: str) -> list[str]:
        tokens = self.embedder.tokens
        size = tokens.max_tokens
        if tokens.count([text])[0] <= size:
            return [text]
        from llmops_cli.core.chunking.token_window import TokenWindowChunker

        return TokenWindowChunker(tokens, size, size // 4).split_text(text, size)

    def lexical_text(self, text: str) -> str:
        if self.lexical_terms == "unique":
            import re

            return " ".join(dict.fromkeys(re.findall(r"(?u)\b\w\w+\b", text.lower())))
        return text

    def lexical_hits(self, text: str, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        if self.in_store:
            return self._store_lists(text, None, k, where)[1]
        if self.lexical is None:
            return []
        # with a filter, over-fetch: the BM25 index knows no metadata
        found = self.lexical.search(self.lexical_text(text), k * 5 if where else k)
        if not found:
            return []
        by_id = {h.id: h for h in self.store.get(self.collection, ids=[i for i, _ in found], where=where)}
        hits = []
        for cid, score in found:
            if cid in by_id:
                h = by_id[cid]
                hits.append(Hit(id=cid, text=h.text, score=score, metadata=h.metadata))
        return hits[:k]

    def _store_lists(
        self, text: str, embedding: Any | None, n: int, where: dict[str, Any] | None
    ) -> tuple[list[Hit], list[Hit]]:
        """The store's vector and text lists (best first) from one hybrid_query, as fresh hits without ranks."""
        found = self.store.hybrid_query(self.collection, text, embedding, n, where, rrf_k=self.rrf_k)  # type: ignore[attr-defined]

        def ranked(side: str) -> list[Hit]:
            hits = sorted((h for h in found if side in h.ranks), key=lambda h: h.ranks[side])
            return [Hit(id=h.id, text=h.text, score=h.score, metadata=h.metadata) for h in hits]

        return ranked("vector"), ranked("lexical")

    # --- the public search ---
    def search(self, text: str, k: int, mode: Mode = "hybrid", where: dict[str, Any] | None = None) -> list[Hit]:
        return self.search_many([text], k, mode=mode, where=where)

    def search_many(
        self, texts: Sequence[str], k: int, mode: Mode = "hybrid", where: dict[str, Any] | None = None
    ) -> list[Hit]:
        """Each wording retrieves (vector and/or lexical); all lists are fused by RRF; top k returned.
        With one list (one wording, one side) the list's own scores are kept."""
        if mode not in MODES:
            raise UsageError(
                f"unknown retrieval mode {mode!r}; allowed: {', '.join(MODES)}", hint="use --mode hybrid|vector|lexical"
            )
        n = max(self.candidates, k)
        lists: list[tuple[str, list[Hit]]] = []
        for i, t in enumerate(texts):
            suffix = f"#{i}" if len(texts) > 1 else ""
            if self.in_store and mode != "vector":
                # both lists from one statement in the store; fused below as any other lists
                vec = self.query_vector(t) if mode == "hybrid" else None
                vector, lexical = self._store_lists(self.lexical_text(t), vec, n, where)
                if mode == "hybrid":
                    lists.append((f"vector{suffix}", vector))
                lists.append((f"lexical{suffix}", lexical))
                continue
            if mode in ("hybrid", "vector"):
                windows = self.query_windows(t) if self.long_query == "lists" else [t]
                for w_i, w in enumerate(windows):
                    name = f"vector{suffix}" + (f"/{w_i}" if len(windows) > 1 else "")
                    lists.append((name, self.vector_hits(w, n, where)))
            if mode in ("hybrid", "lexical"):
                lists.append((f"lexical{suffix}", self.lexical_hits(t, n, where)))
        if len(lists) == 1:
            name, hits = lists[0]
            for r, h in enumerate(hits, 1):
                h.ranks[name] = r
            return self._diversify(hits, k)
        pool: dict[str, Hit] = {}
        for name, hits in lists:
            for r, h in enumerate(hits, 1):
                pool.setdefault(h.id, h).ranks[name] = r
        weights = [self.weights.get(name.split("#")[0].split("/")[0], 1.0) for name, _ in lists]
        fused = reciprocal_rank_fusion([[h.id for h in hits] for _, hits in lists], k=self.rrf_k, weights=weights)
        out = []
        for cid, score in fused:
            h = pool[cid]
            out.append(Hit(id=cid, text=h.text, score=score, metadata=h.metadata, ranks=h.ranks))
        if self.fuse_sources:
            src_fused = reciprocal_rank_fusion(
                [list(dict.fromkeys(_source(h) for h in hits)) for _, hits in lists], k=self.rrf_k, weights=weights
            )
            groups: dict[str, list[Hit]] = {s: [] for s, _ in src_fused}
            for h in out:
                groups[_source(h)].append(h)
            score_of = dict(src_fused)
            out = []
            for src, hits in groups.items():
                for h in hits:
                    h.score = score_of[src]
                    out.append(h)
        return self._diversify(out, k)

    def _diversify(self, hits: list[Hit], k: int) -> list[Hit]:
        if not self.per_source:
            return hits[:k]
        seen: dict[str, int] = {}
        first, rest = [], []
        for h in hits:
            src = _source(h)
            seen[src] = seen.get(src, 0) + 1
            (first if seen[src] <= self.per_source else rest).append(h)
        return (first + rest)[:k]


def _source(h: Hit) -> str:
    return str(h.metadata.get("source") or h.id)
