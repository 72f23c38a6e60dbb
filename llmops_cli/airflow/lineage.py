"""OpenLineage datasets of llmops tasks (pure: names only; operators.py turns them into OpenLineage objects).

Naming follows OpenLineage's dataset naming: a local file is namespace ``file``, name its absolute path; a URL
``s3://bucket/key`` is namespace ``s3://bucket``, name ``key`` (the same for gs://, abfs://...). A collection is
namespace the store (``collection_dataset``: its location with any password masked), name the collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llmops_cli.core.locations import is_url, local_path


@dataclass(frozen=True)
class DatasetName:
    namespace: str
    name: str


@dataclass
class Lineage:
    inputs: list[DatasetName] = field(default_factory=list)
    outputs: list[DatasetName] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {
            "inputs": [{"namespace": d.namespace, "name": d.name} for d in self.inputs],
            "outputs": [{"namespace": d.namespace, "name": d.name} for d in self.outputs],
        }


def location_dataset(location: str) -> DatasetName:
    local = local_path(location) if is_url(location) or location.startswith("/") else None
    if local is not None:
        return DatasetName("file", local.rstrip("/") or "/")
    u = urlsplit(location)
    return DatasetName(f"{u.scheme}://{u.netloc}", u.path.lstrip("/") or "/")


def collection_dataset(store_location: str, collection: str) -> DatasetName:
    """``store_location`` as ``entry.store.store_location`` gives it (password masked): a URL for a server store
    (namespace ``llmops+http://host:port``, ``llmops+postgresql://host:port/db``), else the embedded store's folder
    (namespace ``llmops:///path/to/store``)."""
    if "://" in store_location:
        return DatasetName(f"llmops+{store_location}", collection)
    return DatasetName(f"llmops://{store_location}", collection)
