"""Retrieval: vector search, lexical search, and their reciprocal rank fusion (the default, ``hybrid``).

Lexical search is our own BM25 index (lexical.py, a cache of the store under data_dir), unless the store searches
text itself: a store with ``hybrid_query`` (PostgreSQL: full-text rank and vector distance in one statement) gives
both lists in one call and no local index is built or read. Either way the lists are fused here by the same RRF.

Each list and the fusion is a span (``retrieval vector|lexical|hybrid {collection}``, ``fusion rrf``) under the
command's root, holding the collection, k, the number of hits and the ids and scores of the hits it returned (never
their texts); those lists are only built when the span records, so untraced retrieval pays nothing for them.

With a source prior (source -> accuracy in [0, 1], ``llmops insights sources``), each final score is scaled by
``1 + weight * (2 * accuracy - 1)``: bounded by ``weight``, and a source with no rating (or accuracy 0.5) unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from llmops_cli.core import tracing
from llmops_cli.core.documents import Hit
from llmops_cli.core.ports import Embedder, VectorStore
from llmops_cli.core.retrieval.fusion import convex_fusion, reciprocal_rank_fusion
from llmops_cli.core.retrieval.hybrid import searches_text_itself
from llmops_cli.core.retrieval.lexical import LexicalIndex
from llmops_cli.errors import UsageError

Mode = Literal["hybrid", "vector", "lexical"]
MODES = ("hybrid", "vector", "lexical")
FUSIONS = ("rrf", "minmax", "zscore")


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
        source_prior: Mapping[str, float] | None = None,
        prior_weight: float = 0.2,
        fusion: str = "rrf",
        vector_weight: float = 0.5,
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
        self.source_prior = dict(source_prior or {})
        if not 0.0 <= prior_weight <= 1.0:
            raise ValueError(f"prior_weight {prior_weight} must be within [0, 1]")
        self.prior_weight = prior_weight
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; allowed: {', '.join(FUSIONS)}")
        if not 0.0 <= vector_weight <= 1.0:
            raise ValueError(f"vector_weight {vector_weight} must be within [0, 1]")
        # rrf fuses ranks; minmax/zscore fuse each list's own scores, normalised, vector lists weighing
        # vector_weight and lexical ones 1 - vector_weight (docs/retrieval.md, "Score-level fusion")
        self.fusion = fusion
        self.vector_weight = vector_weight
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
                with self._span("hybrid" if mode == "hybrid" else "lexical", suffix, n) as s:
                    vector, lexical = self._store_lists(self.lexical_text(t), vec, n, where)
                    if s is not None and mode == "hybrid":
                        _annotate_hits(s, vector, "llmops.vector.")
                        _annotate_hits(s, lexical, "llmops.lexical.")
                        s.set_attribute("llmops.hits", len({h.id for h in vector + lexical}))
                    elif s is not None:
                        _annotate_hits(s, lexical)
                if mode == "hybrid":
                    lists.append((f"vector{suffix}", vector))
                lists.append((f"lexical{suffix}", lexical))
                continue
            if mode in ("hybrid", "vector"):
                windows = self.query_windows(t) if self.long_query == "lists" else [t]
                for w_i, w in enumerate(windows):
                    name = f"vector{suffix}" + (f"/{w_i}" if len(windows) > 1 else "")
                    with self._span("vector", name[len("vector") :], n) as s:
                        hits = self.vector_hits(w, n, where)
                        if s is not None:
                            _annotate_hits(s, hits)
                    lists.append((name, hits))
            if mode in ("hybrid", "lexical"):
                with self._span("lexical", suffix, n) as s:
                    hits = self.lexical_hits(t, n, where)
                    if s is not None:
                        _annotate_hits(s, hits)
                lists.append((f"lexical{suffix}", hits))
        if len(lists) == 1:
            name, hits = lists[0]
            for r, h in enumerate(hits, 1):
                h.ranks[name] = r
            return self._diversify(self._apply_prior(hits), k)
        with tracing.span(
            "fusion rrf", **{"llmops.retrieval.lists": len(lists), "llmops.retrieval.rrf_k": self.rrf_k}
        ) as fs:
            out = self._fuse(lists, k)
            if fs.is_recording():
                fs.set_attribute("llmops.retrieval.source_prior", bool(self.source_prior))
                fs.set_attribute("llmops.retrieval.fusion", self.fusion)
                _annotate_hits(fs, out)
        return out

    def _fuse(self, lists: list[tuple[str, list[Hit]]], k: int) -> list[Hit]:
        pool: dict[str, Hit] = {}
        for name, hits in lists:
            for r, h in enumerate(hits, 1):
                pool.setdefault(h.id, h).ranks[name] = r
        sides = [name.split("#")[0].split("/")[0] for name, _ in lists]
        weights = [self.weights.get(side, 1.0) for side in sides]
        if self.fusion != "rrf" and not self.in_store:
            # a store that searches text itself gives its fused score on both lists, not each list's own: RRF there
            share = [self.vector_weight if side == "vector" else 1.0 - self.vector_weight for side in sides]
            fused = convex_fusion(
                [[(h.id, h.score) for h in hits] for _, hits in lists],
                [w * s for w, s in zip(weights, share, strict=True)],
                norm=self.fusion,  # type: ignore[arg-type]
            )
        else:
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
        return self._diversify(self._apply_prior(out), k)

    # --- the source prior ---
    def prior_factor(self, source: str) -> float:
        """How much a source's rated accuracy scales its hits' scores: 1 for an unrated source, within
        [1 - weight, 1 + weight] otherwise."""
        acc = self.source_prior.get(source)
        if acc is None:
            return 1.0
        return 1.0 + self.prior_weight * (2.0 * min(max(acc, 0.0), 1.0) - 1.0)

    def _apply_prior(self, hits: list[Hit]) -> list[Hit]:
        """Scores scaled by their source's prior and re-sorted (stable: equal scores keep their order). A negative
        score (a list's own, e.g. a distance-like one) is divided, so a worse source still moves down."""
        if not self.source_prior or not self.prior_weight:
            return hits
        for h in hits:
            f = self.prior_factor(_source(h))
            if f != 1.0:
                h.score = h.score * f if h.score >= 0 else h.score / f
        return sorted(hits, key=lambda h: -h.score)

    # --- spans ---
    @contextmanager
    def _span(self, side: str, suffix: str, n: int) -> Iterator[Any]:
        """A retrieval span for one list; yields it when it records, else None (so no attribute is built)."""
        attrs = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": self.collection,
            "gen_ai.request.top_k": n,
            "llmops.retrieval.list": side + suffix,
        }
        with tracing.span(f"retrieval {side} {self.collection}", **attrs) as s:
            yield s if s.is_recording() else None

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


def _annotate_hits(span: Any, hits: Sequence[Hit], prefix: str = "llmops.") -> None:
    """The hits a list or the fusion returned, as ids and scores (best first); texts never go on a span."""
    span.set_attributes(
        {
            f"{prefix}hits": len(hits),
            f"{prefix}chunk_ids": [h.id for h in hits],
            f"{prefix}scores": [float(f"{h.score:.6g}") for h in hits],  # 6 significant digits
        }
    )
