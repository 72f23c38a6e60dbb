"""Model and prompt selection without a server: the statistics against hand-computed values, the matrix's shared
context and leaderboard, the blessed-baseline gate per question, and judge-vs-people agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmops_cli.core.eval import human, stats
from llmops_cli.core.eval.baselines import blessed_comparison, passes
from llmops_cli.core.eval.matrix import (
    MatrixEntry,
    MemoRetriever,
    SharedContexts,
    leaderboard,
    plan_matrix,
    prompt_answerer,
    read_models_file,
)
from llmops_cli.core.eval.report import EvalReport, RowResult, mean_metrics
from llmops_cli.core.prompts import PromptTemplate, default_prompt
from llmops_cli.errors import InputError, UsageError
from tests.support.fakes import ScriptedLLM


def test_kappa_hand_computed():
    # 50 items, two categories: 20 both yes, 5 a-yes/b-no, 10 a-no/b-yes, 15 both no
    a = [1] * 20 + [1] * 5 + [2] * 10 + [2] * 15
    b = [1] * 20 + [2] * 5 + [1] * 10 + [2] * 15
    # p_o = 35/50 = 0.7; p_e = (25/50)(30/50) + (25/50)(20/50) = 0.5; kappa = (0.7 - 0.5) / 0.5
    assert stats.cohen_kappa(a, b, (1, 2)) == pytest.approx(0.4)
    # quadratic weights on 1-3: one near miss (2 vs 3, weight 1/4) of three items: observed 1/12; expected from the
    # marginals (a: 1,1,1; b: 1,0,2) = (2 + 0.75 + 1) / 9; kappa_w = 1 - (1/12) / (3.75/9) = 0.8
    assert stats.cohen_kappa([1, 2, 3], [1, 3, 3], (1, 2, 3), weights="quadratic") == pytest.approx(0.8)
    assert stats.cohen_kappa([1, 2, 3], [1, 3, 3], (1, 2, 3)) == pytest.approx(1 - (1 / 3) / (1 - 3 / 9))
    assert stats.cohen_kappa([3, 3], [3, 3], (1, 2, 3)) is None  # no variation: chance agreement is total


def test_spearman_percentile_ci_sign_test_pareto():
    a, b = [1, 2, 3, 4, 5, 2], [5, 6, 7, 8, 7, 5]
    # ties share their average rank: a -> 1, 2.5, 4, 5, 6, 2.5; b -> 1.5, 3, 4.5, 6, 4.5, 1.5; Pearson of the ranks
    ra, rb = np.array([1, 2.5, 4, 5, 6, 2.5]), np.array([1.5, 3, 4.5, 6, 4.5, 1.5])
    assert stats.spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1])) == pytest.approx(0.85084104)
    assert stats.spearman([1, 1], [1, 2]) is None
    xs = [0.3, 1.2, 0.5, 4.0, 2.2, 0.9]
    for q in (50, 95):
        assert stats.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    ci = stats.mean_ci([0.5, 0.6, 0.7], 0, 1)  # sd 0.1, t(2) = 4.303: half width 0.24843
    assert ci["mean"] == pytest.approx(0.6) and ci["low"] == pytest.approx(0.6 - 4.303 * 0.1 / math.sqrt(3))
    assert stats.mean_ci([0.0, 1.0, 1.0, 1.0], 0, 1)["low"] == 0.0  # clipped to the metric's range
    # 8 better, 1 worse, 2 ties: p = 2 * (C(9,0) + C(9,1)) / 2^9
    t = stats.sign_test([0.1] * 8 + [-0.2] + [0.0, 0.0])
    assert (t["up"], t["down"], t["ties"]) == (8, 1, 2) and t["p_value"] == pytest.approx(20 / 512)
    # (quality, cost): b dominates a; c is dearer but better; d is worse and dearer than c
    assert stats.pareto_front([(0.5, 2.0), (0.6, 1.0), (0.9, 3.0), (0.8, 4.0)]) == [1, 2]


def _report(run_id: int, scores: dict[str, dict[str, float]], errors: dict[str, str] | None = None) -> EvalReport:
    rows = [RowResult(id=i, question=f"q {i}", answer=f"a {i}", metrics=dict(m)) for i, m in scores.items()]
    for i, msg in (errors or {}).items():
        next(r for r in rows if r.id == i).errors["answer"] = msg
    means, counts = mean_metrics(rows)
    return EvalReport(
        dataset={"path": "qs.jsonl", "sha256": "s", "rows": len(rows)},
        config={},
        config_hash="h",
        metrics=means,
        counts=counts,
        rows=rows,
        run_id=run_id,
    )


def test_leaderboard_ranks_winners_pareto_and_latency():
    p1, p2 = default_prompt(), PromptTemplate("terse", "answer", "Be terse.", default_prompt().user)
    combos = plan_matrix(["m-a", "m-b", "m-a"], [p1, p2])
    assert [c.label for c in combos] == [
        f"m-a x {p1.label}",
        f"m-a x {p2.label}",
        f"m-b x {p1.label}",
        f"m-b x {p2.label}",
    ]
    f1 = [[1.0, 0.5, 0.0], [1.0, 1.0, 0.5], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
    tox = [0.0, 0.2, 0.0, 0.1]
    costs = [0.02, 0.01, 0.05, 0.10]
    entries = []
    for n, combo in enumerate(combos):
        rep = _report(n + 1, {f"q{i}": {"token_f1": v, "toxicity": tox[n]} for i, v in enumerate(f1[n])})
        for i, r in enumerate(rep.rows):
            r.latency_s = (n + 1) * (i + 1) / 10
        entries.append(MatrixEntry(combo, rep, {"calls": 3, "cost": costs[n], "input_tokens": 10, "output_tokens": 5}))
    board = leaderboard(entries, rank_by="token_f1")
    rows = {r["label"]: r for r in board["rows"]}
    assert [r["label"] for r in board["rows"]][0] == combos[3].label  # best token_f1 (1.0)
    assert board["winners"]["token_f1"] == [combos[3].label]
    assert board["winners"]["toxicity"] == [combos[0].label, combos[2].label]  # lower is better, ties shared
    # quality vs cost: m-a x terse (0.833, $0.01) and m-b x terse (1.0, $0.10) are undominated
    assert set(board["pareto"]) == {combos[1].label, combos[3].label} and board["cost_axis"] == "cost"
    r = rows[combos[1].label]
    assert r["metrics"]["token_f1"]["mean"] == pytest.approx(2.5 / 3) and r["metrics"]["token_f1"]["n"] == 3
    assert r["latency_p50_s"] == pytest.approx(0.4) and r["latency_p95_s"] == pytest.approx(
        float(np.percentile([0.2, 0.4, 0.6], 95))
    )
    assert r["tokens"] == 15 and r["prompt"]["name"] == "terse"
    entries[0].answer_usage["cost"] = None  # one unknown price: the cost axis becomes tokens
    assert leaderboard(entries, rank_by="token_f1")["cost_axis"] == "tokens"
    with pytest.raises(UsageError, match="not a metric"):
        leaderboard(entries, rank_by="hit@5")


def test_plan_and_models_file(tmp_path):
    f = tmp_path / "models.txt"
    f.write_text("# candidates\nopenai/a\n\nopenai/b  # cheaper\n")
    assert read_models_file(f) == ["openai/a", "openai/b"]
    f.write_text("# none\n")
    with pytest.raises(InputError, match="names no model"):
        read_models_file(f)
    with pytest.raises(UsageError, match="combinations"):
        plan_matrix(
            [f"m{i}" for i in range(9)],
            [PromptTemplate(f"p{i}", "answer", f"s{i}", "{context}{question}") for i in range(8)],
        )


class CountingRetriever:
    def __init__(self):
        self.calls = []

    def search(self, text, k, mode="hybrid", where=None):
        self.calls.append(("search", text))
        return []

    def search_many(self, texts, k, mode="hybrid", where=None):
        from llmops_cli.core.documents import Hit

        self.calls.append(("many", tuple(texts)))
        return [Hit(id="c1", text="Pools limit tasks.", score=1.0, metadata={"source": "pools.md"})]


def test_context_is_made_once_and_shared_by_every_combination():
    retriever = CountingRetriever()
    reworder = ScriptedLLM(default="limit concurrency\nrestrict tasks")
    contexts = SharedContexts(retriever, reworder, k=3, rewordings=2, mode="hybrid", where=None)
    llm_a, llm_b = ScriptedLLM("a", default="Use pools [1]."), ScriptedLLM("b", default="No idea.")
    terse = PromptTemplate("terse", "answer", "Be terse.", "{context}\n{question}")
    ans_a, ans_b = prompt_answerer(llm_a, default_prompt(), contexts), prompt_answerer(llm_b, terse, contexts)
    got = [ans_a("How?"), ans_b("How?"), ans_a("Why?")]
    assert [g.answer for g in got] == ["Use pools [1].", "No idea.", "Use pools [1]."]
    # one rewording call and one search per question, whatever the number of combinations
    assert len(reworder.history) == 2 and retriever.calls == [
        ("many", ("How?", "limit concurrency", "restrict tasks")),
        ("many", ("Why?", "limit concurrency", "restrict tasks")),
    ]
    assert llm_b.history[0][0]["content"] == "Be terse." and llm_b.history[0][1]["content"].endswith("\nHow?")
    assert got[0].latency_s is not None
    memo = MemoRetriever(retriever)
    memo.search("q", 3), memo.search("q", 3), memo.search("q", 5)
    assert [c for c in retriever.calls if c[0] == "search"] == [("search", "q"), ("search", "q")]


def test_blessed_gate_counts_flips_over_questions_both_scored():
    base = _report(
        1,
        {
            "a": {"exact_match": 1.0, "token_f1": 0.9},
            "b": {"exact_match": 1.0, "token_f1": 0.8},
            "c": {"exact_match": 0.0, "token_f1": 0.2},
        },
    )
    # b flips to failing; c improves; a errored now (no scores): left out, never a regression
    new = _report(
        2,
        {"a": {}, "b": {"exact_match": 0.0, "token_f1": 0.3}, "c": {"exact_match": 1.0, "token_f1": 0.9}},
        errors={"a": "timeout"},
    )
    c = blessed_comparison(base, new)
    assert [(f["metric"], f["id"]) for f in c["question_regressions"]] == [("exact_match", "b"), ("token_f1", "b")]
    assert c["regressions"] == ["exact_match", "token_f1"]
    sig = c["significance"]["token_f1"]
    assert (sig["n_paired"], sig["better"], sig["worse"], sig["p_value"]) == (2, 1, 1, 1.0)
    only_errors = _report(
        3,
        {"a": {}, "b": {"exact_match": 1.0, "token_f1": 0.8}, "c": {"exact_match": 0.0, "token_f1": 0.2}},
        errors={"a": "timeout"},
    )
    assert blessed_comparison(base, only_errors)["regressions"] == []
    assert passes("toxicity", 0.1) and not passes("toxicity", 0.9) and not passes("hit@5", 0.99)


def test_agreement_and_blind_tasks():
    reps = [_report(1, {"q1": {}, "q2": {}, "q3": {}, "q4": {}}), _report(2, {"q1": {}, "q2": {}, "q3": {}, "q4": {}})]
    # the judge's answer_relevance (1-5 verdicts as (s-1)/4) for run 1
    for r, s in zip(reps[0].rows, [5, 4, 2, 1], strict=True):
        r.metrics["answer_relevance"] = (s - 1) / 4
    people = {"q1": [5, 5], "q2": [4, 3], "q3": [1, 2], "q4": [1, 1]}  # two raters, averaged and rounded half up
    ratings = [
        {"run_id": 1, "item_id": q, "rater": f"r{n}", "criterion": "relevance", "score": s}
        for q, ss in people.items()
        for n, s in enumerate(ss)
    ] + [{"run_id": 1, "item_id": "q1", "rater": "r0", "criterion": "tone", "score": 4}]
    doc = human.agreement(reps, ratings)
    rel = doc["criteria"]["relevance"]
    human_scores, judge_scores = [5, 4, 2, 1], [5, 4, 2, 1]  # 3.5 rounds to 4, 1.5 to 2
    assert rel["n"] == 4 and rel["exact_agreement"] == 1.0 and rel["weighted_kappa"] == pytest.approx(1.0)
    assert rel["confusion"]["table"][0][0] == 1 and human_scores == judge_scores
    assert doc["unjudged_criteria"] == ["tone"] and doc["disagreeing"] == [] and doc["raters"] == ["r0", "r1"]
    reps[0].rows[0].metrics["answer_relevance"] = 0.0  # the judge now calls q1 irrelevant
    bad = human.agreement(reps, ratings, min_kappa=0.9)["criteria"]["relevance"]
    assert bad["below_bound"] and bad["weighted_kappa"] < 0.9
    tasks = human.rating_tasks(reps, seed=1)
    assert len(tasks) == 4 and all(sorted(a["letter"] for a in t["answers"]) == ["A", "B"] for t in tasks)
    assert {a["run_id"] for a in tasks[0]["answers"]} == {1, 2}
    assert human.rating_tasks(reps, seed=1) == tasks  # the same order every time
    with pytest.raises(InputError, match="not 1-5"):
        human.check_rating({"run_id": 1, "item_id": "q", "rater": "x", "criterion": "tone", "score": 7})


def test_feedback_agreement_hand_computed():
    # people: good when more up than down votes (ties left out); judge: good when its score >= 0.5
    items = [
        {"helpfulness": 1.0, "relevance": 0.75, "up": 2, "down": 0},  # both good
        {"helpfulness": 0.75, "relevance": 1.0, "up": 1, "down": 0},  # both good
        {"helpfulness": 0.0, "relevance": 0.25, "up": 0, "down": 1},  # both bad
        {"helpfulness": 0.75, "relevance": 0.5, "up": 0, "down": 2},  # judge good, people bad
        {"helpfulness": 0.25, "relevance": 0.0, "up": 1, "down": 1},  # a tie: says nothing
    ]
    doc = human.feedback_agreement(items)
    h = doc["criteria"]["helpfulness"]
    # 4 items, 3 agree: p_o = 3/4; people good 2/4, judge good 3/4: p_e = 2/4*3/4 + 2/4*1/4 = 1/2; kappa = 0.5
    assert h["n"] == 4 and h["exact_agreement"] == 0.75 and h["kappa"] == pytest.approx(0.5)
    assert h["confusion"]["table"] == [[1, 1], [0, 2]] and not h["below_bound"]
    assert human.feedback_agreement(items, min_kappa=0.6)["disagreeing"] == ["helpfulness", "relevance"]


def test_offline_toxicity_word_list():
    pytest.importorskip("better_profanity")
    from llmops_cli.core.eval import wordlist_toxicity

    texts = [
        "Use pools to limit tasks [1].",
        "this sh1t is broken, you f*cking idiot",
        "Kill the process with SIGTERM.",
    ]
    # masked and leetspeak spellings are caught; operations words (kill, the DummyOperator) are not toxicity
    assert wordlist_toxicity.scores(texts) == [0.0, 1.0, 0.0]
    assert not wordlist_toxicity.flagged("Replace the DummyOperator and strip whitespace")
