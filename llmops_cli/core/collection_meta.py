"""What a collection's metadata records about itself, and the check that keeps one embedder per collection.

Kept apart from ingest so that retrieval-only commands can check a collection without importing the loaders
and chunkers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.adapters.embedders.base import Embedder

EMBEDDER_KEY = "llmops_embedder"  # identity of the embedder that made the vectors
DIMENSION_KEY = "llmops_dimension"
GENERATION_KEY = "llmops_generation"  # bumped by every change; the lexical index rebuilds when it moves


def check_embedder(meta: dict[str, Any] | None, embedder: "Embedder", collection: str, *, searching: bool = False) -> None:
    """Refuse to mix vectors of two embedders in one collection (``meta``: the collection's metadata), or to search
    it with another embedder's query vectors (``searching``)."""
    if meta is None or EMBEDDER_KEY not in meta:
        return
    if meta[EMBEDDER_KEY] != embedder.identity:
        if searching:
            raise UsageError(
                f"collection {collection!r} holds vectors of embedder {meta[EMBEDDER_KEY]}, not {embedder.identity}; "
                "its vectors cannot be searched with another embedder's",
                hint="configure the embedder it was ingested with (embedder.backend, embedder.model, embedder.precision)",
            )
        raise UsageError(
            f"collection {collection!r} holds vectors of embedder {meta[EMBEDDER_KEY]}, not {embedder.identity}; mixing them breaks search",
            hint="ingest into another --collection, or delete this one first (llmops collections delete NAME)",
        )
