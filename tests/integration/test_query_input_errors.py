"""Searches that cannot mean anything are usage errors (exit 2) before any work, saying what would work."""

from __future__ import annotations

import pytest

from tests.integration.conftest import llmops_env, run_llmops

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("where")
    (tmp / "d").mkdir()
    (tmp / "d" / "a.md").write_text("# Chunks\n\nThe chunk size is counted in the embedding model's tokens.\n")
    (tmp / "d" / "b.rst").write_text("Exit codes\n==========\n\nA failed DAG run exits 5.\n")
    env = llmops_env(tmp)
    r = run_llmops("ingest", str(tmp / "d"), "--collection", "where-test", env=env, cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp, env


@pytest.mark.parametrize(
    "args, expected",
    [
        (["query", "   "], "the question is empty"),
        (["ask", "", "--retrieval-only"], "the question is empty"),
        (["query", "chunk", "--where", "$or=x"], "not Chroma operators"),
        (["query", "chunk", "--where", "formt=markdown"], "did you mean --where format=...?"),
        (["query", "chunk", "--where", "format=markdwn"], "values seen: markdown, rst"),
        (["ask", "chunk", "--retrieval-only", "--where", "formt=markdown"], "has the metadata key 'formt'"),
    ],
)
def test_searches_that_cannot_match_are_usage_errors(store, args, expected):
    tmp, env = store
    r = run_llmops(*args, "--collection", "where-test", env=env, cwd=tmp)
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr and "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_a_matching_where_still_searches(store):
    tmp, env = store
    r = run_llmops(
        "query", "exit code", "--where", "format=rst", "--collection", "where-test", "--json", env=env, cwd=tmp
    )
    assert r.returncode == 0, r.stderr
    assert '"format": "rst"' in r.stdout and "a.md" not in r.stdout
