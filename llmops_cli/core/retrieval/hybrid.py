"""The optional capability of a store that ranks text itself (PostgreSQL full-text search): such a store needs no
local lexical index; the retriever asks it for both lists in one call and fuses them as any others."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from llmops_cli.core.documents import Hit


@runtime_checkable
class HybridSearch(Protocol):
    def hybrid_query(
        self,
        name: str,
        text: str,
        embedding: Any | None,
        n: int,
        where: dict[str, Any] | None = None,
        *,
        rrf_k: int = 60,
    ) -> list[Hit]:
        """The ``n`` nearest chunks by vector (none when ``embedding`` is None) and the ``n`` best by the store's
        text ranking, each hit's ``ranks`` holding its place in each list ("vector", "lexical"); the score is the
        fused RRF score, or the text rank's own score when there is no vector list."""
        ...


def searches_text_itself(store: Any) -> bool:
    """True when ``store`` ranks text itself (HybridSearch): it needs no local lexical index."""
    return isinstance(store, HybridSearch)
