"""The shared corpora load completely: the Stack Overflow table and every airflow-docs page."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_cli.core.loaders import TableOptions, discover, load_source
from llmops_cli.settings import IngestSettings

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPORA = SHARED / "corpora"
MAX = int(IngestSettings().max_file_mb * (1 << 20))

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} is not there"),
]


def test_stackoverflow_parquet_loads_one_document_per_thread():
    files, missing = discover(
        [CORPORA / "stackoverflow-airflow" / "base.parquet"], None, [], root=CORPORA / "stackoverflow-airflow"
    )
    assert missing == [] and [f.source_id for f in files] == ["base.parquet"]
    docs = load_source(files[0], max_bytes=MAX, table=TableOptions(text_column="content", id_column="docLink"))
    assert len(docs) == 921
    assert len({d.source_id for d in docs}) == 921
    first = docs[0]
    assert first.source_id == f"base.parquet#{first.metadata['docLink']}"
    assert first.metadata["docLink"].startswith("https://stackoverflow.com/questions/")
    assert set(first.metadata) == {"docSource", "sha", "docLink", "source", "path", "format"}
    assert all(d.text.startswith("TITLE: ") and d.format == "table" for d in docs)


def test_all_airflow_docs_pages_load_with_titles():
    files, missing = discover([CORPORA / "airflow-docs"], ["**/*.rst"], IngestSettings().exclude, root=CORPORA)
    assert missing == []
    assert len(files) == 53
    assert all(f.source_id.startswith("airflow-docs/") for f in files)
    docs = [doc for f in files for doc in load_source(f, max_bytes=MAX)]
    assert len(docs) == 53
    assert all(d.format == "rst" and d.metadata.get("title") and "\r" not in d.text for d in docs)
    faq = next(d for d in docs if d.source_id == "airflow-docs/faq.rst")
    assert faq.metadata["title"] == "FAQ"
