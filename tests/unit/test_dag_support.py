"""dag_support: DAG param locations are absolute paths or URLs (a relative one is refused), run summaries come from the
store's ledger (true across retries), the outcome a DAG reports (ok / partial / a failed batch), and the DAG param
pattern for collection names agrees with the one name rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmops_cli.core.collection_meta import collection_name_problem
from llmops_cli.entry.dag_support import (
    COLLECTION_PATTERN,
    batch_outcome,
    check_sources_exist,
    ingest_outcome,
    ingest_summary,
    resolve_params,
)


@pytest.fixture
def airflow_cwd(tmp_path, monkeypatch):
    """A task's working directory: Airflow's, not the project's."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.chdir(home)
    for k in ("LLMOPS_PROJECT_DIR", "LLMOPS_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    return home


def test_absolute_paths_and_urls_pass_and_file_urls_become_local_paths(airflow_cwd, tmp_path):
    (tmp_path / "docs").mkdir()
    p = resolve_params(
        {
            "sources": [str(tmp_path / "docs"), "s3://bucket/docs", f"file://{tmp_path}/docs"],
            "collection": "c1",
            "output": "s3://bucket/out/answers.jsonl",
            "run_dir": None,
        }
    )
    assert p["sources"] == [str(tmp_path / "docs"), "s3://bucket/docs", str(tmp_path / "docs")]
    assert p["output"] == "s3://bucket/out/answers.jsonl" and p["run_dir"] is None and p["collection"] == "c1"
    check_sources_exist(p)  # the local ones exist; a URL is checked when it is read


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"sources": ["docs"]}, "sources"),
        ({"sources": ["/abs/docs", "./more"]}, "sources"),
        ({"dataset": "eval/q.jsonl"}, "dataset"),
        ({"input": "~/in.jsonl"}, "input"),
        ({"config": "llmops.yaml"}, "config"),
    ],
)
def test_a_relative_path_is_refused_with_what_to_pass_instead(airflow_cwd, params, key, monkeypatch):
    """Never resolved against the task's cwd nor a project root: each worker has its own."""
    (airflow_cwd / "docs").mkdir()  # even when it happens to exist there
    monkeypatch.setenv("LLMOPS_PROJECT_DIR", str(airflow_cwd))  # no longer a root relative paths resolve against
    with pytest.raises(ValueError) as e:
        resolve_params(params)
    msg = str(e.value)
    assert msg.startswith(f"param {key}: ") and "absolute path or URL every Airflow worker can reach" in msg
    assert "s3://bucket/docs" in msg  # an example of what to pass


def test_run_dir_must_be_a_local_folder(airflow_cwd):
    with pytest.raises(ValueError, match="run_dir must be an absolute path of a folder the workers share"):
        resolve_params({"run_dir": "s3://bucket/run"})


def test_a_remote_input_file_is_copied_to_the_same_local_path_every_time(airflow_cwd, tmp_path):
    pytest.importorskip("fsspec")
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/in/rows.jsonl", b'{"q": "x"}\n')
    first = resolve_params({"input": "memory://bucket/in/rows.jsonl"}, fetch_dir=tmp_path / "f1")
    again = resolve_params({"input": "memory://bucket/in/rows.jsonl"}, fetch_dir=tmp_path / "f1")
    assert first["input"] == again["input"] and first["input"].endswith("/rows.jsonl")
    assert Path(first["input"]).read_bytes() == b'{"q": "x"}\n'
    fs.rm("/bucket/in/rows.jsonl")


def test_a_missing_source_names_the_path_looked_at(airflow_cwd, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        check_sources_exist(resolve_params({"sources": [str(tmp_path / "no-such")]}))
    assert str(tmp_path / "no-such") in str(e.value)


def test_the_ingest_summary_counts_from_the_ledger_not_the_last_try():
    # shard 1's first try wrote a.md and b.md (629 chunks) and lost the API server; its retry found them unchanged
    after = {
        "d/a.md": [f"a{i}" for i in range(300)],
        "d/b.md": [f"b{i}" for i in range(329)],
        "d/c.md": [f"c{i}" for i in range(645)],
    }
    reports = [{"chunks_added": 0, "skipped": []}, {"chunks_added": 645, "skipped": []}]
    s = ingest_summary("docs", ["d/a.md", "d/b.md", "d/c.md"], {}, after, reports, sources_removed=0, chunks_total=1274)
    assert s["chunks_added"] == 1274 and s["chunks"] == 1274 and s["chunks_total"] == 1274 and s["skipped"] == 0
    assert ingest_outcome(s)["status"] == "ok"
    # a re-run: nothing new, one source changed 2 chunks
    before = dict(after)
    after2 = {**after, "d/c.md": [f"c{i}" for i in range(643)] + ["c-new1", "c-new2"]}
    s2 = ingest_summary("docs", list(after), before, after2, [], sources_removed=0, chunks_total=1274)
    assert (s2["chunks_added"], s2["chunks_removed"]) == (2, 2)


def test_skipped_sources_make_the_outcome_partial():
    after = {"d/a.md": ["x1"]}
    reports = [{"skipped": [{"source": "d/bad.pdf", "reason": "not a PDF"}]}]
    s = ingest_summary("docs", ["d/a.md", "d/bad.pdf"], {}, after, reports, sources_removed=0, chunks_total=1)
    assert s["skipped"] == 1 and s["skipped_sources"] == [{"source": "d/bad.pdf", "reason": "not a PDF"}]
    out = ingest_outcome(s)
    assert out["status"] == "partial" and "1 of 2 source(s) skipped: d/bad.pdf (not a PDF)" in out["message"]
    # a source skipped now whose earlier record stays in the ledger is still skipped by this run
    kept = ingest_summary(
        "docs", ["d/a.md", "d/bad.pdf"], {}, {**after, "d/bad.pdf": ["old"]}, reports, sources_removed=0, chunks_total=2
    )
    assert kept["skipped"] == 1
    # a report that names the source by another spelling is not counted twice; a lost shard's source is counted
    other = ingest_summary(
        "docs",
        ["/p/d/a.md", "/p/d/bad.pdf", "/p/d/lost.md"],
        {},
        {"/p/d/a.md": ["x1"]},
        [{"skipped": [{"source": "d/bad.pdf", "reason": "not a PDF"}]}],
        sources_removed=0,
        chunks_total=1,
    )
    assert other["skipped"] == 2


def test_a_batch_where_every_request_failed_fails_and_some_failed_is_partial():
    all_failed = {
        "requests": 4,
        "answered": 0,
        "errors": 4,
        "errors_by_kind": {"auth": 4},
        "error_samples": [{"error": "401 invalid api key"}],
        "output_kept": "out.jsonl",
    }
    with pytest.raises(RuntimeError, match="all 4 request.*auth 4.*401 invalid api key.*out.jsonl was left"):
        batch_outcome(all_failed)
    some = {"requests": 4, "answered": 3, "errors": 1, "errors_by_kind": {"timeout": 1}, "errors_file": "e.jsonl"}
    assert batch_outcome(some) == {"status": "partial", "message": "1 of 4 request(s) failed (timeout 1); see e.jsonl"}
    assert batch_outcome({"requests": 4, "answered": 4, "errors": 0})["status"] == "ok"


def test_shipped_dags_resolve_their_path_params():
    import inspect

    from llmops_cli.entry.insights import scheduled_refresh

    dags = Path(__file__).resolve().parents[2] / "llmops_cli" / "dags"
    shipped = sorted(p.name for p in dags.glob("llmops_*.py"))
    # the insights DAG's one task hands its params to the entry point, which resolves them
    by_entry = {"llmops_insights.py": inspect.getsource(scheduled_refresh)}
    assert "llmops_insights.py" in shipped and len(shipped) >= 6, shipped
    for name in shipped:
        assert "resolve_params(" in by_entry.get(name, (dags / name).read_text()), name


@pytest.mark.parametrize(
    "name",
    [
        "docs",
        "so-docs",
        "a.b_c-d",
        "ab",
        "a",
        "-docs",
        "docs-",
        "my docs",
        "a..b",
        "192.168.0.1",
        "1.2.3.4.5",
        "docs__sources",
        "docs__sources2",
        "x" * 512,
        "x" * 513,
        "dé",
    ],
)
def test_collection_param_pattern_is_the_name_rule(name):
    """The DAGs refuse at trigger time exactly the names core/collection_meta.py refuses."""
    assert (re.search(COLLECTION_PATTERN, name) is not None) == (collection_name_problem(name) is None), name
