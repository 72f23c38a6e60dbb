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
    ):
        self.store = store
        self.embedder = embedder
        self.collection = collection
        self.lexical = lexical
        self.candidates = candidates
        self.rrf_k = rrf_k
        # the store's own text search, when it has one, over our BM25 cache
        self.in_store = searches_text_itself(store)

    # --- single lists ---
    def vector_hits(self, text: str, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        vec = self.embedder.embed_query(text)
        return self.store.query(self.collection, vec, k, where)

    def lexical_hits(self, text: str, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        if self.in_store:
            return self._store_lists(text, None, k, where)[1]
        if self.lexical is None:
            return []
        # with a filter, over-fetch: the BM25 index knows no metadata
        found = self.lexical.search(text, k * 5 if where else k)
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
            if self.in_store and mode != "vector":
                # both lists from one statement in the store; fused below as any other lists
                vec = self.embedder.embed_query(t) if mode == "hybrid" else None
                vector, lexical = self._store_lists(t, vec, n, where)
                suffix = f"#{i}" if len(texts) > 1 else ""
                if mode == "hybrid":
                    lists.append((f"vector{suffix}", vector))
                lists.append((f"lexical{suffix}", lexical))
                continue
            if mode in ("hybrid", "vector"):
                lists.append((f"vector#{i}" if len(texts) > 1 else "vector", self.vector_hits(t, n, where)))
            if mode in ("hybrid", "lexical"):
                lists.append((f"lexical#{i}" if len(texts) > 1 else "lexical", self.lexical_hits(t, n, where)))
        if len(lists) == 1:
            name, hits = lists[0]
            for r, h in enumerate(hits, 1):
                h.ranks[name] = r
            return hits[:k]
        pool: dict[str, Hit] = {}
        for name, hits in lists:
            for r, h in enumerate(hits, 1):
                pool.setdefault(h.id, h).ranks[name] = r
        fused = reciprocal_rank_fusion([[h.id for h in hits] for _, hits in lists], k=self.rrf_k)
        out = []
        for cid, score in fused[:k]:
            h = pool[cid]
            out.append(Hit(id=cid, text=h.text, score=score, metadata=h.metadata, ranks=h.ranks))
        return out
