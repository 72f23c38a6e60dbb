"""The Airflow-facing API's pure parts, without Airflow: the llmops connection as settings, which errors are
permanent, lineage dataset names, records as an ingestable file, gates, provider info; and that importing the
package (and its Airflow-free modules) imports no Airflow."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from llmops_cli.airflow import get_provider_info
from llmops_cli.airflow.connection import (
    config_from_connection,
    environment_for,
    settings_from_connection,
    ui_field_behaviour,
)
from llmops_cli.airflow.errors import describe, is_permanent
from llmops_cli.airflow.lineage import DatasetName, collection_dataset, location_dataset
from llmops_cli.airflow.steps import _locations, check_gates, records_file
from llmops_cli.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    GateFailed,
    InputError,
    LLMError,
    NotConfiguredError,
    UnreachableError,
    UsageError,
)
from llmops_cli.settings import load_settings


def test_importing_the_package_and_its_pure_modules_imports_no_airflow():
    probe = (
        "import sys, llmops_cli, llmops_cli.airflow, llmops_cli.airflow.steps, llmops_cli.airflow.connection\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_connection_becomes_settings_with_the_run_param_precedence_of_the_cli():
    values = settings_from_connection(
        host="http://chroma.internal:8000",
        password="sk-secret",
        extra=json.dumps(
            {
                "state_url": "postgresql://u:p@db/llmops",
                "llm_model": "openai/gpt-4o-mini",
                "collection": "kb",
                "settings": {"retrieval.k": 8},
                "config": "/srv/llmops.yaml",
            }
        ),
    )
    assert values == {
        "store.url": "http://chroma.internal:8000",
        "state.url": "postgresql://u:p@db/llmops",
        "llm.model": "openai/gpt-4o-mini",
        "store.collection": "kb",
        "retrieval.k": 8,
        "llm.api_key": "sk-secret",
    }
    env = environment_for(values)
    assert env["LLMOPS_LLM_API_KEY"] == "sk-secret" and env["LLMOPS_RETRIEVAL_K"] == "8"
    s = load_settings(None, environ=env, flags={"store.collection": "from-a-run-param"}).settings
    assert s.store.url == "http://chroma.internal:8000" and s.state.url == "postgresql://u:p@db/llmops"
    assert s.llm.model == "openai/gpt-4o-mini" and s.retrieval.k == 8
    assert s.llm.api_key.get_secret_value() == "sk-secret" and "sk-secret" not in repr(s.llm)
    assert s.store.collection == "from-a-run-param"  # a run's param beats the connection
    assert config_from_connection('{"config": "/srv/llmops.yaml"}') == "/srv/llmops.yaml"
    assert settings_from_connection() == {}  # an empty connection changes nothing


def test_a_bad_connection_extra_names_the_problem():
    with pytest.raises(ValueError, match="not JSON"):
        settings_from_connection(extra="{nope")
    with pytest.raises(ValueError, match="unknown key.*stor_url"):
        settings_from_connection(extra={"stor_url": "http://x"})
    assert ui_field_behaviour()["relabeling"]["password"] == "LLM API key"


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (ConfigError("bad key"), True),
        (UsageError("embedder mismatch"), True),
        (InputError("bad dataset"), True),
        (NotConfiguredError("no model"), True),
        (AuthError("key rejected"), True),
        (GateFailed("hit@5 < 0.8"), True),
        (UnreachableError("store down"), False),
        (LLMError("rate limited"), False),
        (ConflictError("writer lock held"), False),
        (RuntimeError("anything else"), False),
    ],
)
def test_permanent_errors_are_config_usage_auth_and_gates(exc, permanent):
    assert is_permanent(exc) is permanent


def test_a_permanent_error_is_described_with_its_hint():
    assert describe(ConfigError("bad store.url", hint="use http://host:port")) == (
        "bad store.url (hint: use http://host:port)"
    )


def test_lineage_dataset_names_follow_openlineage_naming():
    assert location_dataset("/srv/docs/") == DatasetName("file", "/srv/docs")
    assert location_dataset("file:///srv/in.jsonl") == DatasetName("file", "/srv/in.jsonl")
    assert location_dataset("s3://bucket/eval/report.json") == DatasetName("s3://bucket", "eval/report.json")
    assert collection_dataset("/p/.llmops/chroma", "kb") == DatasetName("llmops:///p/.llmops/chroma", "kb")
    assert collection_dataset("postgresql://u:***@db:5432/x", "kb").namespace == "llmops+postgresql://u:***@db:5432/x"


def test_issue_and_slack_records_become_exports_and_others_a_table(tmp_path):
    issues = records_file([{"number": 1, "title": "t", "body": "b"}], tmp_path, "gh", "text", "id")
    assert issues.name == "gh.jsonl" and json.loads(issues.read_text().splitlines()[0])["number"] == 1
    slack = records_file([{"ts": "1.0", "text": "hi"}], tmp_path, "slack", "text", "id")
    assert slack.suffix == ".jsonl"
    table = records_file(
        [{"id": "a", "text": "hello", "tags": ["x"]}, {"id": "b", "text": "world", "lang": "en"}],
        tmp_path,
        "notes",
        "text",
        "id",
    )
    rows = list(csv.DictReader(table.open()))
    assert table.name == "notes.csv" and [r["id"] for r in rows] == ["a", "b"] and rows[0]["tags"] == '["x"]'
    with pytest.raises(InputError, match="no 'text' text"):
        records_file([{"id": "a", "body": "x"}], tmp_path, "bad", "text", "id")
    with pytest.raises(UsageError, match="records name"):
        records_file([{"id": "a", "text": "x"}], tmp_path, "../escape", "text", "id")
    with pytest.raises(InputError, match="no records"):
        records_file([], tmp_path, "empty", "text", "id")


def test_gates_and_locations():
    ok = {"gates": [{"metric": "hit@5", "check": ">= 0.5", "passed": True}], "report": "/r.json"}
    assert check_gates(ok)["status"] == "ok"
    bad = {"gates": [{"metric": "hit@5", "check": ">= 0.9", "passed": False}], "report": "/r.json"}
    with pytest.raises(GateFailed, match="hit@5 >= 0.9") as info:
        check_gates(bad)
    assert is_permanent(info.value)
    with pytest.raises(UsageError, match="relative path"):
        _locations("sources", ["docs"])
    assert _locations("sources", "s3://b/docs") == ["s3://b/docs"]


def test_provider_info_names_the_connection_type_and_the_hook():
    info = get_provider_info()
    assert info["package-name"] == "llmops-cli"
    assert info["connection-types"] == [
        {"connection-type": "llmops", "hook-class-name": "llmops_cli.airflow.hooks.LlmopsHook"}
    ]
    names = {d["name"] for d in info["task-decorators"]}
    assert names == {"llmops_ingest", "llmops_query", "llmops_ask", "llmops_evaluate", "llmops_batch"}
