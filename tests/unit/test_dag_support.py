"""dag_support: DAG param paths resolve against the project root (never the task's cwd), run summaries come from the
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


def test_relative_sources_resolve_against_llmops_project_dir(airflow_cwd, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    monkeypatch.setenv("LLMOPS_PROJECT_DIR", str(project))
    p = resolve_params(
        {"sources": ["docs", "/abs/other"], "collection": "c1", "input": "data/in.jsonl", "output": None}
    )
    assert p["sources"] == [str(project / "docs"), "/abs/other"]
    assert p["input"] == str(project / "data" / "in.jsonl") and p["output"] is None and p["collection"] == "c1"
    assert "LLMOPS_PROJECT_DIR" in p["_project_root"]
    check_sources_exist({**p, "sources": [str(project / "docs")]})  # exists: no error


def test_without_project_dir_the_config_files_project_folder_is_the_root(airflow_cwd, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "llmops.yaml").write_text("store:\n  collection: docs\n")
    monkeypatch.setenv("LLMOPS_CONFIG", str(project / "configs" / "llmops.yaml"))
    assert resolve_params({"dataset": "eval/q.jsonl"})["dataset"] == str(project / "eval" / "q.jsonl")


def test_a_relative_path_never_resolves_against_the_tasks_cwd(airflow_cwd):
    (airflow_cwd / "docs").mkdir()  # even when it happens to exist there
    with pytest.raises(ValueError, match="LLMOPS_PROJECT_DIR") as e:
        resolve_params({"sources": ["docs"]})
    assert "relative path 'docs'" in str(e.value)


def test_a_missing_source_names_the_absolute_path_looked_at(airflow_cwd, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_PROJECT_DIR", str(tmp_path / "project"))
    p = resolve_params({"sources": ["docs"]})
    with pytest.raises(FileNotFoundError) as e:
        check_sources_exist(p)
    assert str(tmp_path / "project" / "docs") in str(e.value) and "LLMOPS_PROJECT_DIR" in str(e.value)


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
    dags = Path(__file__).resolve().parents[2] / "llmops_cli" / "dags"
    for name in ("llmops_ingest.py", "llmops_batch_inference.py", "llmops_eval.py", "llmops_feedback.py"):
        assert "resolve_params" in (dags / name).read_text(), name


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
