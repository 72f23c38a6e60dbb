"""Source ids on the real parts (issue 12 item 4): `llmops` subprocesses, real Chroma, the bundled embedding model.

Two READMEs in two folders stay two sources; a collection whose ids follow the old rule is migrated by the next
ingest into what a fresh ingest holds (sources, texts, metadata), with the file "unchanged", nothing embedded, and
every chunk still reachable by vector search (the vector index is not touched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import llmops_env, run_llmops

pytestmark = pytest.mark.integration

TEXT = {
    "projA": "# Project A\n\nProject A ships the falcon scheduler. It retries failed tasks three times.\n",
    "projB": "# Project B\n\nProject B ships the heron executor. It runs every task in a container.\n",
}


def _project(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in TEXT.items():
        (tmp_path / name).mkdir()
        paths[name] = tmp_path / name / "README.md"
        paths[name].write_text(text)
    return paths


def _ingest(path: Path, collection: str, env: dict[str, str]) -> dict:
    r = run_llmops("ingest", str(path), "--collection", collection, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _chunks(tmp_path: Path, collection: str) -> dict[str, tuple[str, dict]]:
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore

    store = ChromaStore.embedded(tmp_path / "chroma", read_only=True)
    return {
        h.id: (h.text, sorted((k, v) for k, v in h.metadata.items() if k != "id_source")) for h in store.get(collection)
    }


def test_two_readmes_stay_two_sources_and_a_legacy_collection_is_migrated(tmp_path):
    paths = _project(tmp_path)
    env = llmops_env(tmp_path)
    a = _ingest(paths["projA"], "docs", env)
    b = _ingest(paths["projB"], "docs", env)
    assert a["new"] == ["projA/README.md"] and b["new"] == ["projB/README.md"]
    assert b["changed"] == [] and b["removed"] == [] and b["chunks_total"] == a["chunks_total"] + b["chunks_added"]
    r = run_llmops("query", "falcon scheduler retries", "--collection", "docs", "--json", env=env)
    assert json.loads(r.stdout)["hits"][0]["source"] == "projA/README.md"

    # the old rule named a lone file by its name: the same as a source root at its folder; then mark it legacy
    legacy_env = {**env, "LLMOPS_INGEST_SOURCE_ROOT": str(tmp_path / "projA")}
    assert _ingest(paths["projA"], "old", legacy_env)["new"] == ["README.md"]
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore
    from llmops_cli.core.source_ids import SOURCE_IDS_KEY

    ChromaStore.embedded(tmp_path / "chroma").set_collection_metadata("old", {SOURCE_IDS_KEY: "folder-prefixed"})

    migrated = _ingest(paths["projA"], "old", env)
    assert migrated["renamed"] == ["README.md"] and migrated["sources"]["unchanged"] == 1
    assert migrated["new"] == [] and migrated["changed"] == [] and migrated["chunks_added"] == 0
    fresh = sorted(
        chunk for chunk in _chunks(tmp_path, "docs").values() if dict(chunk[1])["source_file"] == "projA/README.md"
    )
    assert (
        sorted(_chunks(tmp_path, "old").values()) == fresh
    )  # texts and metadata: as if ingested under the current rule
    store = ChromaStore.embedded(tmp_path / "chroma", read_only=True)
    ids = [h.id for h in store.get("old", include_documents=False)]
    probe = [1.0 / 384**0.5] * 384
    reached = store._col("old").query(query_embeddings=[probe], n_results=len(ids), include=[])["ids"][0]
    assert sorted(reached) == sorted(ids)  # the vector index was left alone: every chunk reachable
    r = run_llmops("query", "falcon scheduler retries", "--collection", "old", "--json", env=env)
    hits = json.loads(r.stdout)["hits"]
    assert hits and {h["source"] for h in hits} == {"projA/README.md"}  # lexical and vector indexes both renamed
    again = _ingest(paths["projA"], "old", env)
    assert again["renamed"] == [] and again["sources"]["unchanged"] == 1
