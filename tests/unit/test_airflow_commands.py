"""Airflow commands without a server: conf building, run-param mapping, DAG files' plumbing, `dags path`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops_cli.adapters.airflow.dag_support import (
    collection_from_events,
    collection_from_uri,
    collection_uri,
    settings_from_params,
    write_report,
)
from llmops_cli.cli.airflow_trigger_cmd import build_conf, parse_iso_datetime
from llmops_cli.errors import InputError, UsageError


def test_conf_from_json_file_and_params(tmp_path):
    f = tmp_path / "conf.json"
    f.write_text('{"sources": ["a"], "shards": 2}')
    assert build_conf(None, f, ["shards=3", 'glob=["*.md"]', "collection=docs", "cleanup=full", "flag=true"]) == {
        "sources": ["a"], "shards": 3, "glob": ["*.md"], "collection": "docs", "cleanup": "full", "flag": True}
    y = tmp_path / "conf.yaml"
    y.write_text("sources: [b]\n")
    assert build_conf(None, y, None) == {"sources": ["b"]}


def test_conf_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="exclusive"):
        build_conf("{}", tmp_path / "x.json", None)
    with pytest.raises(UsageError, match="not valid JSON"):
        build_conf("{nope", None, None)
    with pytest.raises(UsageError, match="JSON object"):
        build_conf("[1, 2]", None, None)
    with pytest.raises(UsageError, match="key=value"):
        build_conf(None, None, ["novalue"])
    with pytest.raises(InputError, match="missing.json"):
        build_conf(None, tmp_path / "missing.json", None)


def test_logical_date_parsing():
    assert parse_iso_datetime("2026-01-31T12:00:00Z", "--logical-date").isoformat() == "2026-01-31T12:00:00+00:00"
    assert parse_iso_datetime("2026-01-31", "--logical-date").tzinfo is not None
    with pytest.raises(UsageError, match="ISO 8601"):
        parse_iso_datetime("yesterday", "--logical-date")


def test_run_params_map_to_settings_keys(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in ("LLMOPS_CONFIG", "LLMOPS_STORE_COLLECTION", "LLMOPS_CHUNKING_SIZE"):
        monkeypatch.delenv(k, raising=False)
    s = settings_from_params({"collection": "kb1", "chunk_size": 128, "chunk_overlap": 16, "chunker": "tokens",
                              "sources": ["x"], "cleanup": "full", "k": None})
    assert (s.store.collection, s.chunking.size, s.chunking.overlap, s.chunking.strategy) == ("kb1", 128, 16, "tokens")
    monkeypatch.setenv("LLMOPS_STORE_COLLECTION", "from-env")
    assert settings_from_params({"collection": None}).store.collection == "from-env"  # a null param is "not given"


def test_asset_uris_round_trip():
    uri = collection_uri("airflow-docs")
    assert uri == "llmops://collections/airflow-docs"
    assert collection_from_uri(uri) == "airflow-docs"
    assert collection_from_uri("s3://bucket/x") is None

    class A:
        uri = "llmops://collections/kb"

    assert collection_from_events({A(): []}) == "kb"
    assert collection_from_events(None) is None


def test_reports_are_written_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "data"))
    s = settings_from_params({})
    path = Path(write_report(s, "llmops_eval", "manual__2026-01-01T00:00:00+00:00", {"hit_rate": 1.0}))
    assert path.parent == tmp_path / "data" / "airflow-reports" / "llmops_eval"
    assert json.loads(path.read_text()) == {"hit_rate": 1.0}


def test_dags_path_lists_the_shipped_dags():
    from llmops_cli.cli.app import app

    r = CliRunner().invoke(app, ["dags", "path", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {"llmops_ingest", "llmops_eval", "llmops_batch_inference"} <= set(doc["dags"])
    assert Path(doc["path"], "llmops_ingest.py").is_file()


def test_shipped_dags_stay_thin():
    """DAG files hold no logic of their own: they import pipelines / dag_support, never adapters or core."""
    import llmops_cli

    for f in (Path(llmops_cli.__file__).parent / "dags").glob("llmops_*.py"):
        text = f.read_text()
        assert "llmops_cli.pipelines" in text or "from llmops_cli import pipelines" in text, f.name
        assert "llmops_cli.core" not in text and "llmops_cli.wiring" not in text, f.name
