"""Settings-taking forms of a few entry points, kept only for the last caller not yet moved to ``llmops_cli.entry``
(tests/integration/test_store_contract.py). Every other caller uses ``llmops_cli.entry.<step>`` with a
``wiring.Workspace``; delete this module when ``grep -rn pipelines llmops_cli tests benchmarks`` finds no user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import ingest as ingest_entry
from llmops_cli.entry import store as store_entry
from llmops_cli.wiring import Workspace

if TYPE_CHECKING:
    from llmops_cli.core.documents import Hit
    from llmops_cli.core.ingest import IngestReport
    from llmops_cli.core.retrieval import Retriever
    from llmops_cli.settings import Settings


def retriever(settings: Settings, collection: str | None = None) -> Retriever:
    return ask_entry.retriever(Workspace(settings), collection)  # opens no state store: nothing to close


def query(settings: Settings, text: str, **kwargs: Any) -> list[Hit]:
    with Workspace(settings) as ws:
        return ask_entry.query(ws, text, **kwargs)


def ingest(settings: Settings, paths: Sequence[str], **kwargs: Any) -> IngestReport:
    with Workspace(settings) as ws:
        return ingest_entry.ingest(ws, paths, **kwargs)


def delete_collection(settings: Settings, name: str) -> None:
    with Workspace(settings) as ws:
        store_entry.delete_collection(ws, name)
