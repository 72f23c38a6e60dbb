"""`llmops finetune` in-process on fakes: the run history's JSON, and a dataset too small to split refused with one
line (exit 2) before any model is loaded."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_feedback_cli import invoke, project  # noqa: F401 - the fixture is used by name


def test_runs_are_listed_and_too_few_examples_are_refused_before_training(project, capsys, tmp_path):  # noqa: F811
    code, out, _ = invoke(capsys, "finetune", "runs", "--json")
    assert code == 0 and json.loads(out)["runs"] == []

    ds = tmp_path / "one.jsonl"
    ds.write_text(json.dumps({"question": "How do I rotate credentials?", "relevant_sources": ["frob.md"]}) + "\n")
    code, out, err = invoke(capsys, "finetune", "embedder", "--dataset", str(ds), "--no-answer-log")
    assert code == 2 and out == ""
    assert "too few to train and hold out" in err and "Traceback" not in err

    from llmops_cli.core.finetune.runs import FinetuneRuns

    with FinetuneRuns(tmp_path / ".llmops" / "finetune" / "runs.sqlite") as runs:
        rid = runs.start("llm", "/models/tiny", params={"lora_r": 4})
    code, out, _ = invoke(capsys, "finetune", "runs", "--json")
    got = json.loads(out)["runs"]
    assert code == 0 and [(r["id"], r["kind"], r["status"]) for r in got] == [(rid, "llm", "running")]


def test_runs_table_shows_each_runs_time_tokens_and_price(project, capsys, tmp_path):  # noqa: F811
    from llmops_cli.core.finetune.runs import FinetuneRuns

    with FinetuneRuns(tmp_path / ".llmops" / "finetune" / "runs.sqlite") as runs:
        job = runs.start("llm-provider", "gpt-tiny")
        cost = {"trained_tokens": 4321, "cost_usd": 0.0346, "wall_s": 612.5, "wait": {"wall_s": 3.0, "cpu_s": 0.25}}
        runs.update(job, status="done", output="ft:gpt-tiny:x", cost=cost)
        local = runs.start("embedder", "/models/base")
        runs.update(
            local, status="done", cost={"train": {"wall_s": 20, "cpu_s": 31}, "evaluate": {"wall_s": 4, "cpu_s": 6}}
        )
    code, out, _ = invoke(capsys, "finetune", "runs", "--json")
    totals = {r["id"]: r["cost_total"] for r in json.loads(out)["runs"]}
    assert code == 0 and totals == {
        job: {"wall_s": 612.5, "cpu_s": 0.25, "trained_tokens": 4321, "cost_usd": 0.0346},
        local: {"wall_s": 24.0, "cpu_s": 37.0, "trained_tokens": None, "cost_usd": None},
    }
    code, out, _ = invoke(capsys, "finetune", "runs")  # the table renders them
    assert code == 0 and "Fine-tuning runs" in out


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    """A folder with no project in it or above it, as a user's fresh folder (fake workspaces: no model loads)."""
    import os

    from tests.support.fakes import use_fake_workspaces

    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_CEILING_DIRECTORIES", str(tmp_path.parent))
    use_fake_workspaces(monkeypatch)
    return tmp_path


def test_runs_and_promote_create_nothing_where_nothing_was_recorded(empty_folder, capsys):
    # `finetune runs` (and a promote with nothing to promote) created .llmops/finetune/runs.sqlite in any folder it
    # ran in, which made that folder a project of its own (the nearest .llmops wins) instead of the one above it
    code, out, _ = invoke(capsys, "finetune", "runs", "--json")
    assert code == 0 and json.loads(out)["runs"] == []
    code, _, err = invoke(capsys, "finetune", "promote")
    assert code == 2 and "no finished embedder fine-tuning run" in err
    code, _, err = invoke(capsys, "finetune", "promote", "--run", "3")
    assert code == 9 and "no fine-tuning run 3" in err
    assert list(empty_folder.iterdir()) == []


def test_eval_runs_creates_nothing_where_nothing_was_recorded(empty_folder, capsys):
    # `eval runs` made .llmops/eval/runs.sqlite wherever it ran (the same trap as `finetune runs`)
    code, out, _ = invoke(capsys, "eval", "runs", "--json")
    assert code == 0 and json.loads(out)["runs"] == []
    assert list(empty_folder.iterdir()) == []
