"""The fine-tuning core without a model: pairs, split, hard negatives, the held-out comparison, the run record."""

from types import SimpleNamespace

import numpy as np
import pytest

from llmops_cli.core.finetune.measure import compare, per_question, rank
from llmops_cli.core.finetune.pairs import (
    Chunk,
    Example,
    dedupe,
    examples_from_answers,
    examples_from_dataset,
    split_by_group,
    training_pairs,
)
from llmops_cli.core.finetune.runs import FinetuneRuns
from llmops_cli.entry.finetune import gate

CHUNKS = [
    Chunk("a1", "airflow scheduler heartbeat", "docs/a.md"),
    Chunk("a2", "scheduler loop details", "docs/a.md"),
    Chunk("b1", "kubernetes executor pods", "docs/b.md"),
    Chunk("c1", "scheduler tuning for kubernetes", "docs/c.md"),
]


def test_examples_come_from_datasets_and_good_answers_one_per_question():
    items = [
        SimpleNamespace(question="Why is the scheduler slow?", relevant_sources=["a.md"], relevant_chunks=[]),
        SimpleNamespace(question="no target", relevant_sources=[], relevant_chunks=[]),
    ]
    answers = [
        ("why is the  scheduler slow?", [{"id": "c1", "source": "docs/c.md"}]),
        ("pods?", [{"id": "b1", "source": "docs/b.md"}]),
        ("nothing cited", []),
    ]
    got = dedupe(examples_from_dataset(items) + examples_from_answers(answers))
    assert [(e.question, e.origin, e.group) for e in got] == [
        ("Why is the scheduler slow?", "dataset", "a.md"),
        ("pods?", "answer-log", "docs/b.md"),
    ]


def test_split_keeps_each_group_on_one_side_and_is_stable():
    examples = [Example(f"q{i}", [], [f"s{i % 40}"], "dataset") for i in range(200)]
    s = split_by_group(examples, 0.3)
    train, held = {e.group for e in s.train}, {e.group for e in s.held_out}
    assert not train & held and len(train | held) == 40
    assert 5 <= len(held) <= 20
    again = split_by_group(examples[:100], 0.3)  # fewer examples: each group keeps its side
    assert {e.group for e in again.held_out} <= held
    with pytest.raises(ValueError):
        split_by_group(examples, 1.0)


def test_pairs_take_sources_by_the_eval_suffix_rule_and_a_bm25_negative_from_another_source():
    ex = Example("scheduler heartbeat", [], ["a.md"], "dataset")
    calls = []

    def lexical(q, k):
        calls.append((q, k))
        return ["a2", "c1", "b1"]  # a2 is relevant (same source): skipped

    pairs = training_pairs([ex], CHUNKS, lexical)
    assert [(p.positive, p.negative) for p in pairs] == [
        ("airflow scheduler heartbeat", "scheduler tuning for kubernetes"),
        ("scheduler loop details", "scheduler tuning for kubernetes"),
    ]
    assert calls == [("scheduler heartbeat", 10)]
    assert training_pairs([Example("x", [], ["nowhere.md"], "dataset")], CHUNKS, lexical) == []
    by_id = training_pairs([Example("pods", ["b1"], [], "answer-log")], CHUNKS, None)
    assert by_id[0].positive == "kubernetes executor pods" and by_id[0].negative is None


def test_per_question_scores_like_the_eval_and_the_bootstrap_brackets_the_gain():
    vecs = np.eye(4, dtype=np.float32)  # chunk i is nearest to query i
    assert rank(vecs[[2]], vecs, 3)[0][0] == 2
    examples = [Example("q", [], ["a.md"], "d"), Example("q2", ["b1"], [], "d")]
    good = per_question(examples, CHUNKS, vecs[[0, 2]], vecs)
    assert good == {"hit@5": [1.0, 1.0], "mrr@10": [1.0, 1.0]}
    worse = per_question(examples, CHUNKS, vecs[[3, 3]], vecs)
    assert worse["mrr@10"][0] < 1.0
    base = {"hit@5": [0.0] * 30 + [1.0] * 30, "mrr@10": [0.2] * 60}
    tuned = {"hit@5": [1.0] * 60, "mrr@10": [0.5] * 60}
    c = compare(base, tuned, resamples=500)
    assert c.n == 60 and c.gain == {"hit@5": 0.5, "mrr@10": 0.3}
    lo, hi = c.ci["hit@5"]["gain"]
    assert 0 < lo <= 0.5 <= hi < 1
    assert c.ci["mrr@10"]["gain"] == [0.3, 0.3]


def test_runs_are_recorded_found_by_job_key_and_gated(tmp_path):
    with FinetuneRuns(tmp_path / "ft" / "runs.sqlite") as runs:
        rid = runs.start("embedder", "/m/base", collection="docs", params={"epochs": 1}, job_key="dag:run1")
        assert runs.by_job_key("dag:run1")["status"] == "running"
        metrics = {
            "gain": {"mrr@10": 0.02},
            "ci95": {"mrr@10": {"gain": [-0.01, 0.05]}},
        }
        runs.update(rid, status="done", metrics=metrics, cost={"train": {"wall_s": 3.0}}, output="/m/tuned")
        run = runs.get(rid)
    assert run["params"] == {"epochs": 1} and run["output"] == "/m/tuned"
    assert gate(run) and not gate(run, min_gain=0.05) and not gate(run, require_ci=True)
    assert not gate({**run, "status": "running"})
    with FinetuneRuns(tmp_path / "ft" / "runs.sqlite") as runs:  # reopened: migrated once, the run is there
        assert [r["id"] for r in runs.list(kind="embedder", status="done")] == [rid]
