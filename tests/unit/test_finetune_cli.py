"""`llmops finetune` in-process on fakes: the run history's JSON, and a dataset too small to split refused with one
line (exit 2) before any model is loaded."""

from __future__ import annotations

import json

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
