"""Ingest the real Airflow docs (../shared/corpora/airflow-docs) and check that questions written about those
pages retrieve the right page in the top 5 (real model, real Chroma)."""

from __future__ import annotations

import pytest

from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import ingest as ingest_entry
from tests.integration.airflow_docs_questions import QUESTIONS
from tests.integration.conftest import corpus
from tests.support.fakes import run_step

pytestmark = [pytest.mark.integration, pytest.mark.corpus]


@pytest.fixture(scope="module")
def airflow_docs_settings(tmp_path_factory):
    from llmops_cli.settings import load_settings

    docs = corpus("airflow-docs")
    tmp = tmp_path_factory.mktemp("afdocs")
    s = load_settings(
        environ={
            "LLMOPS_STORE_PATH": str(tmp / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp / "state"),
            "LLMOPS_INGEST_SOURCE_ROOT": str(docs.parent),
        }
    ).settings  # ids airflow-docs/...
    report = run_step(ingest_entry.ingest, s, [str(docs)], collection="airflow-docs")
    assert len(report.new) >= 53 and not report.skipped
    return s


@pytest.mark.parametrize("mode, min_hits", [("hybrid", 14), ("vector", 9), ("lexical", 9)])
def test_questions_retrieve_their_page_in_top5(airflow_docs_settings, mode, min_hits):

    found, misses = 0, []
    for question, page in QUESTIONS:
        hits = run_step(ask_entry.query, airflow_docs_settings, question, collection="airflow-docs", k=5, mode=mode)
        sources = [h.source for h in hits]
        if f"airflow-docs/{page}" in sources:
            found += 1
        else:
            misses.append((question, page, sources[:3]))
    assert found >= min_hits, f"{mode}: {found}/{len(QUESTIONS)} in top 5; misses: {misses}"


def test_heading_paths_are_kept_and_no_chunk_exceeds_the_model(airflow_docs_settings):
    from llmops_cli import wiring

    hits = run_step(ask_entry.query, airflow_docs_settings, "pool slots", collection="airflow-docs", k=5)
    assert any(h.heading for h in hits)
    store = wiring.build_store(airflow_docs_settings)
    emb = wiring.build_embedder(airflow_docs_settings.embedder)
    chunks = store.get("airflow-docs")
    counts = emb.tokens.count([(f"{c.heading}\n{c.text}" if c.heading else c.text) for c in chunks])
    assert max(counts) <= emb.tokens.max_tokens
