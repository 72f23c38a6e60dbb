"""Locations of DAG inputs and results: the rule (absolute path or URL, never relative), the JSON-schema pattern
Airflow checks at trigger time, copies of URLs whose files keep the URL as source id, results that never replace an
earlier one, and which tasks run in the embedded store's writer pool."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from llmops_cli.adapters.storage import exists, fetch_tree, publish
from llmops_cli.core.loaders.discovery import discover
from llmops_cli.core.locations import LOCATION_PATTERN, is_remote, local_path, location_problem
from llmops_cli.entry.dag_support import EMBEDDED_STORE_POOL, POOL_ENV, location_schema, writer_task_args
from llmops_cli.errors import ConflictError, ExitCode, InputError

DAGS = Path(__file__).resolve().parents[2] / "llmops_cli" / "dags"


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ("/srv/docs", True),
        ("/", True),
        ("file:///srv/docs", True),
        ("s3://bucket/docs", True),
        ("gs://bucket/a.jsonl", True),
        ("docs", False),
        ("./docs", False),
        ("../docs", False),
        ("~/docs", False),
        ("C:/docs", False),  # a drive letter is not a URL scheme
        ("", False),
    ],
)
def test_a_location_is_an_absolute_path_or_a_url_and_the_pattern_agrees(location, ok):
    assert (location_problem(location) is None) == ok, location
    assert (re.search(LOCATION_PATTERN, location) is not None) == ok or location.startswith("~"), location
    if location.startswith("~"):  # the pattern refuses it too
        assert re.search(LOCATION_PATTERN, location) is None


def test_local_and_remote_locations():
    assert local_path("file:///srv/a%20b.md") == "/srv/a b.md" and local_path("/srv/x") == "/srv/x"
    assert local_path("file://localhost/srv/x") == "/srv/x"
    assert local_path("s3://b/k") is None and is_remote("s3://b/k") and not is_remote("file:///x")


def test_the_trigger_time_message_says_why_and_what_to_pass():
    """Airflow validates a run's conf against each Param's schema (jsonschema) and returns 400 with the error's text,
    which shows the schema: the description that says what to pass."""
    schema = {
        "type": "array",
        "items": {"type": "string", "minLength": 1, **location_schema("A file or folder to ingest.")},
        "minItems": 1,
    }
    jsonschema.validate(["/srv/docs", "s3://bucket/docs"], schema)
    with pytest.raises(jsonschema.ValidationError) as e:
        jsonschema.validate(["docs"], schema)
    text = re.sub(r"'\s*\n\s*'", "", str(e.value))  # jsonschema wraps the schema's long strings over lines
    assert "'docs' does not match" in text
    assert "an absolute path or URL every Airflow worker can reach" in text and "s3://bucket/docs" in text
    # a null optional param passes the same schema with type [null, string]
    jsonschema.validate(None, {"type": ["null", "string"], **location_schema("Config.")})


def test_every_path_param_of_the_shipped_dags_carries_the_location_rule():
    for name, params in {
        "llmops_ingest.py": ("sources", "config"),
        "llmops_batch_inference.py": ("input", "output", "template", "schema", "config"),
    }.items():
        text = (DAGS / name).read_text()
        for param in params:
            block = text[text.index(f'"{param}": Param(') :]
            block = block[: block.index("\n        ),") if "\n        )," in block[:600] else 600]
            assert "location_schema(" in block, (name, param)
    batch = (DAGS / "llmops_batch_inference.py").read_text()
    assert "<input stem>.results" not in batch  # no default beside the input


def test_a_url_folder_copy_keeps_the_url_as_source_ids_and_a_shard_copies_only_its_own(tmp_path):
    shared = tmp_path / "shared" / "docs"
    (shared / "guide").mkdir(parents=True)
    (shared / "a.md").write_text("# A\nalpha\n")
    (shared / "guide" / "b.md").write_text("# B\nbeta\n")
    url = f"file://{shared}"
    local = fetch_tree(url, tmp_path / "w1")
    files, missing = discover([str(local)], None, [], root=tmp_path / "elsewhere")
    assert [f.source_id for f in files] == [f"{url}/a.md", f"{url}/guide/b.md"] and not missing
    # another worker, another temporary folder, one shard: the same ids, only its file copied
    other = fetch_tree(url, tmp_path / "w2", only={f"{url}/guide/b.md"})
    files2, _ = discover([str(other)], None, [], root=tmp_path)
    assert [f.source_id for f in files2] == [f"{url}/guide/b.md"]
    # one file named by URL: its id is the URL itself
    single = fetch_tree(f"{url}/a.md", tmp_path / "w3")
    assert [f.source_id for f in discover([str(single)], None, [], root=tmp_path)[0]] == [f"{url}/a.md"]


def test_a_missing_url_says_so(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        fetch_tree(f"file://{tmp_path}/nope", tmp_path / "w")


def test_a_result_never_replaces_an_earlier_one(tmp_path):
    first, second = tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"
    first.write_text('{"a": 1}\n')
    second.write_text('{"a": 2}\n')
    target = tmp_path / "out" / "results.jsonl"
    assert publish(first, str(target)) == str(target) and target.read_text() == '{"a": 1}\n'
    assert publish(first, f"file://{target}")  # the same bytes again (a retried task): fine, nothing changes
    with pytest.raises(ConflictError) as e:
        publish(second, str(target))
    assert e.value.exit_code == ExitCode.CONFLICT and "never replaced" in str(e.value)
    assert target.read_text() == '{"a": 1}\n' and exists(str(target)) and not exists(str(tmp_path / "x"))
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.jsonl"]  # no temporary file left


def test_a_result_is_published_whole_on_a_remote_location(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    src = tmp_path / "r.jsonl"
    src.write_text('{"a": 1}\n')
    try:
        publish(src, "memory://bucket/out/r.jsonl")
        assert fs.cat_file("/bucket/out/r.jsonl") == b'{"a": 1}\n'
        src.write_text('{"a": 2}\n')
        with pytest.raises(ConflictError):
            publish(src, "memory://bucket/out/r.jsonl")
        assert fs.cat_file("/bucket/out/r.jsonl") == b'{"a": 1}\n'
    finally:
        fs.rm("/bucket", recursive=True)


def test_embedded_store_writers_run_one_at_a_time_and_in_the_pool_when_it_is_named():
    assert writer_task_args(True, environ={}) == {"max_active_tis_per_dagrun": 1}
    assert writer_task_args(True, environ={POOL_ENV: EMBEDDED_STORE_POOL}) == {
        "max_active_tis_per_dagrun": 1,
        "pool": "llmops_embedded_store",
    }
    assert writer_task_args(False, environ={POOL_ENV: EMBEDDED_STORE_POOL}) == {}  # a server store: in parallel


def test_the_pool_name_is_the_one_llmops_pools_creates():
    from llmops_cli.adapters.airflow.ops import LLMOPS_POOL

    assert EMBEDDED_STORE_POOL == LLMOPS_POOL


def test_the_dev_airflow_names_that_pool_to_its_tasks(tmp_path):
    """`llmops dev airflow up` creates the pool and names it in the tasks' environment, under the variable the DAG
    files read at parse time."""
    from llmops_cli.devstack import airflow as dev_airflow

    assert dev_airflow.POOL_ENV == POOL_ENV
    af = dev_airflow.LocalAirflow(home=tmp_path, venv=tmp_path / "venv", port=8080, log_server_port=8793)
    assert af.airflow_env()[POOL_ENV] == EMBEDDED_STORE_POOL
    af.task_env = {POOL_ENV: ""}  # a deployment that opts out
    assert af.airflow_env()[POOL_ENV] == ""
