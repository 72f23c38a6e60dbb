"""Collection names (one rule, hints that name the flag), the embedder a collection remembers, and read-only
commands that leave no state behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_cli.core.collection_meta import (
    EMBEDDER_CONFIG_KEY,
    EMBEDDER_KEY,
    check_collection_name,
    collection_name_problem,
    embedder_config,
    embedder_settings_for,
    suggest_collection_name,
)
from llmops_cli.errors import UsageError
from llmops_cli.settings import EmbedderSettings


@pytest.mark.parametrize(
    "name", ["so", "a", "abc..def", "192.168.1.1", "-docs", "docs-", "my docs", "x" * 513, "notes__sources"]
)
def test_names_chroma_refuses_are_refused_with_a_valid_suggestion(name):
    assert collection_name_problem(name)
    fixed = suggest_collection_name(name)
    assert collection_name_problem(fixed) is None, fixed
    with pytest.raises(UsageError) as e:
        check_collection_name(name)
    assert f"--collection {fixed}" in e.value.hint


@pytest.mark.parametrize("name", ["docs", "llmops-docs", "so_threads", "v1.2-docs", "ABC"])
def test_valid_names_pass(name):
    assert collection_name_problem(name) is None and check_collection_name(name) == name


def test_a_collection_is_searched_with_the_embedder_it_recorded():
    configured = EmbedderSettings(api_base="http://127.0.0.1:9/v1", batch_size=16)
    meta = {
        EMBEDDER_KEY: "st:all-MiniLM-L6-v2:int8",
        EMBEDDER_CONFIG_KEY: embedder_config(EmbedderSettings(precision="int8")),
    }
    es = embedder_settings_for(meta, configured)
    assert (es.precision, es.model, es.backend) == ("int8", "all-MiniLM-L6-v2", "auto")
    assert (
        es.api_base == configured.api_base and es.batch_size == 16
    )  # endpoint and batch size stay the configured ones


def test_collections_made_before_the_record_are_read_from_their_identity():
    configured = EmbedderSettings()
    assert embedder_settings_for({EMBEDDER_KEY: "st:all-MiniLM-L6-v2:int8"}, configured).precision == "int8"
    assert embedder_settings_for({EMBEDDER_KEY: "st:all-MiniLM-L6-v2"}, configured) == configured
    # an embedding API needs its endpoint and key: only the configured one (same model) is used, never guessed
    assert embedder_settings_for({EMBEDDER_KEY: "litellm:openai/text-embedding-3-small"}, configured) == configured
    api = EmbedderSettings(backend="litellm", model="openai/text-embedding-3-small", api_base="http://127.0.0.1:9/v1")
    assert embedder_settings_for({EMBEDDER_KEY: "litellm:openai/text-embedding-3-small"}, api) == api
    # another sentence-transformers model than the configured one: nothing to go on, the configured one is kept
    assert embedder_settings_for({EMBEDDER_KEY: "st:some-other-model"}, configured) == configured
    assert embedder_settings_for(None, configured) == configured


def _llmops(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_a_bad_collection_flag_names_the_flag_and_a_valid_name(tmp_path):
    r = _llmops("ingest", "x", "--collection", "so", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--collection so-docs" in r.stderr and "at least 3" in r.stderr


def test_read_only_commands_create_no_state(tmp_path):
    for args, code in (
        (["collections", "list", "--json"], 0),
        (["history"], 0),
        (["history", "--json"], 0),
        (["history", "show", "abcd1234"], 9),
        (["query", "anything"], 9),
        (["ask", "anything", "--retrieval-only"], 9),
    ):
        r = _llmops(*args, cwd=tmp_path)
        assert r.returncode == code, (args, r.stderr)
        assert list(tmp_path.iterdir()) == [], f"llmops {' '.join(args)} created {list(tmp_path.rglob('*'))}"
    assert json.loads(_llmops("collections", "list", "--json", cwd=tmp_path).stdout)["collections"] == []


def test_collections_delete_refuses_a_ledger_name_instead_of_damaging_its_collection(tmp_path, monkeypatch):
    # `collections delete docs__sources --yes` deleted the (hidden) source ledger of docs: verify then said DAMAGED,
    # every chunk an orphan
    from llmops_cli.entry.store import delete_collection
    from llmops_cli.settings import load_settings
    from tests.support.fakes import FakeWorkspace

    monkeypatch.chdir(tmp_path)
    ws = FakeWorkspace(load_settings(None, environ={}).settings)
    deleted: list[str] = []
    monkeypatch.setattr(ws.fake_store, "delete_collection", deleted.append)
    with pytest.raises(UsageError) as e:
        delete_collection(ws, "docs__sources")
    assert e.value.exit_code == 2 and "reserved" in e.value.message and deleted == []
    assert "collections delete docs" not in (e.value.hint or "")  # no suggestion to delete the collection itself


def test_a_collection_another_tool_made_with_other_vectors_is_refused_before_anything_is_written(tmp_path):
    # a Chroma collection made by another tool records no embedder: ingest wrote its ledger, then failed with
    # "internal error: InvalidArgumentError: Collection expecting embedding with dimension of 8, got 384" (exit 1),
    # and a search failed the same way
    import chromadb
    from chromadb.config import Settings

    from llmops_cli.adapters.vectorstores import open_store
    from llmops_cli.core.collection_meta import check_unrecorded_dimension
    from llmops_cli.settings import StoreSettings
    from tests.support.fakes import FakeEmbedder

    client = chromadb.PersistentClient(str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    col = client.get_or_create_collection("foreign", embedding_function=None)
    col.upsert(ids=["a"], embeddings=[[0.1] * 8], documents=["hello"], metadatas=[{"source": "x"}])
    store = open_store(StoreSettings(), tmp_path / "chroma")
    emb = FakeEmbedder()  # 64 dimensions
    with pytest.raises(UsageError, match="8 dimensions") as e:
        check_unrecorded_dimension(store, store.collection_metadata("foreign"), emb, "foreign")
    assert e.value.exit_code == 2 and "another --collection" in e.value.hint
    with pytest.raises(UsageError, match="dimension of 8") as e:
        store.query("foreign", emb.embed_query("hello"), 3)
    assert "--mode lexical" in e.value.hint
    col.upsert(ids=["b"], embeddings=[[0.1] * 8], documents=["x"], metadatas=[{"source": "y"}])
    emb.dimension = 8  # the same size: nothing to refuse
    check_unrecorded_dimension(store, store.collection_metadata("foreign"), emb, "foreign")
