"""The litellm embedding backend end to end: real HTTP to the local OpenAI-compatible server, real Chroma."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import REPO, llmops_env, run_llmops

pytestmark = pytest.mark.integration

SECRET = "sk-test-embedding-key-1234567890"


def test_ingest_and_query_through_an_openai_compatible_embedding_api(openai_server, tmp_path):
    env = llmops_env(
        tmp_path,
        LLMOPS_EMBEDDER_BACKEND="litellm",
        LLMOPS_EMBEDDER_MODEL="openai/test-embedding",
        LLMOPS_EMBEDDER_API_BASE=openai_server.base_url,
        LLMOPS_EMBEDDER_API_KEY=SECRET,
    )
    ing = run_llmops("ingest", str(REPO / "docs"), "--collection", "api-docs", "--json", env=env)
    assert ing.returncode == 0, ing.stderr
    chunks = json.loads(ing.stdout)["chunks_added"]
    calls = openai_server.records("/v1/embeddings")
    sizes = [len(r.body["input"]) for r in calls]
    assert max(sizes) <= 64 and sum(sizes) >= chunks  # the backend's default batch, every chunk embedded by the API
    assert all(r.authorized for r in calls)

    q = run_llmops(
        "query", "exit code of a failed DAG run", "--collection", "api-docs", "--mode", "vector", "--json", env=env
    )
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout)["hits"]

    other = run_llmops("query", "anything", "--collection", "api-docs", "--json", env=llmops_env(tmp_path))
    assert other.returncode == 2 and "holds vectors of embedder litellm:openai/test-embedding" in other.stderr
    for r in (ing, q, other):
        assert SECRET not in r.stdout + r.stderr


def test_an_unreachable_embedding_api_is_one_line_and_exit_7(tmp_path):
    env = llmops_env(
        tmp_path,
        LLMOPS_EMBEDDER_BACKEND="litellm",
        LLMOPS_EMBEDDER_MODEL="openai/test-embedding",
        LLMOPS_EMBEDDER_API_BASE="http://127.0.0.1:9/v1",
        LLMOPS_EMBEDDER_API_KEY=SECRET,
    )
    r = run_llmops("ingest", str(REPO / "docs"), "--collection", "api-docs", env=env, timeout=300)
    assert r.returncode == 7, r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr
    assert r.stderr.startswith("error: embedding model openai/test-embedding at http://127.0.0.1:9/v1 is not reachable")
    assert len(r.stderr.strip().splitlines()) == 2  # the error and its hint


def test_a_rejected_embedding_key_is_exit_8(openai_server, tmp_path):
    openai_server.fail_next("401", n=5)
    env = llmops_env(
        tmp_path,
        LLMOPS_EMBEDDER_BACKEND="litellm",
        LLMOPS_EMBEDDER_MODEL="openai/test-embedding",
        LLMOPS_EMBEDDER_API_BASE=openai_server.base_url,
        LLMOPS_EMBEDDER_API_KEY=SECRET,
    )
    r = run_llmops("ingest", str(REPO / "docs"), "--collection", "api-docs", env=env, timeout=300)
    assert r.returncode == 8, r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr and "LLMOPS_EMBEDDER_API_KEY" in r.stderr
