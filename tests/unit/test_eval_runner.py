"""The runner on fakes: a fake retriever over a fixed corpus and a fake LLM that answers by script."""

import asyncio
import json

import pytest

from llmops_cli.core.documents import Hit
from llmops_cli.core.eval.datasets import Dataset, EvalItem
from llmops_cli.core.eval.llm_calls import CachedLLM, Usage, bounded_gather
from llmops_cli.core.eval.runner import Answered, EvalOptions, resolve_metrics, run_eval, source_ranking
from llmops_cli.core.llm_cache import LLMCache
from llmops_cli.core.ports import LLM, Completion, LLMCallError
from llmops_cli.errors import UsageError


class FakeRetriever:
    """Returns fixed hits per question; records what it was asked."""

    def __init__(self, table):
        self.table = table
        self.asked = []

    def search(self, text, k, mode="hybrid", where=None):
        self.asked.append(text)
        return [
            Hit(id=cid, text=f"text of {cid}", score=1.0 / (i + 1), metadata={"source": src})
            for i, (cid, src) in enumerate(self.table.get(text, []))
        ][:k]


class ScriptedLLM(LLM):
    """A fake LLM: ``script(messages) -> text``; counts calls."""

    model = "fake/judge"

    def __init__(self, script):
        self.script = script
        self.calls = 0

    def complete(self, messages, **params):
        self.calls += 1
        out = self.script(messages)
        if isinstance(out, Exception):
            raise out
        return Completion(text=out, model=self.model, input_tokens=10, output_tokens=5, cost=0.001)

    async def acomplete(self, messages, **params):
        return self.complete(messages, **params)


def _ds(items):
    return Dataset(path="mem.jsonl", sha256="0" * 64, items=items)


def test_retrieval_metrics_per_row_and_means():
    r = FakeRetriever(
        {
            "q1": [("c1", "docs/a.md"), ("c2", "docs/b.md")],  # relevant a.md at rank 1 (suffix match)
            "q2": [("c3", "c.md"), ("c4", "b.md")],  # relevant b.md at rank 2
            "q3": [("c5", "c.md")],  # miss
        }
    )
    ds = _ds(
        [
            EvalItem("1", "q1", relevant_sources=["a.md"]),
            EvalItem("2", "q2", relevant_sources=["b.md"], relevant_chunks=["c4"]),
            EvalItem("3", "q3", relevant_sources=["a.md"]),
            EvalItem("4", "q4"),
        ]
    )
    rep = asyncio.run(run_eval(ds, EvalOptions(metrics=["retrieval", "chunk"], k=2), retriever=r))
    assert rep.rows[0].metrics["mrr"] == 1.0
    assert rep.rows[1].metrics["mrr"] == 0.5
    assert rep.rows[1].metrics["chunk_mrr"] == 0.5
    assert rep.rows[2].metrics["hit@2"] == 0.0
    assert rep.rows[3].metrics == {}  # no relevant sources: left out, not zero
    assert rep.metrics["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert rep.counts["mrr"] == 3 and rep.counts["chunk_mrr"] == 1
    assert rep.rows[0].retrieved[0] == {"id": "c1", "source": "docs/a.md", "score": 1.0}
    assert rep.primary_metric == "ndcg@2"
    assert [w.id for w in rep.worst(1)] == ["3"]
    summary = json.loads(json.dumps(rep.summary()))  # what the Airflow DAG puts in XCom: plain JSON, no rows
    assert "rows" not in summary and summary["metrics"]["mrr"] == pytest.approx(0.5) and summary["error_rows"] == 0


def test_source_ranking_maps_suffix_matches():
    hits = [Hit("x", "", 1, {"source": "/abs/docs/a.md"}), Hit("y", "", 1, {"source": "other.md"})]
    assert source_ranking(hits, ["docs/a.md"]) == ["docs/a.md", "other.md"]


def _judge_script(messages):
    user = messages[1]["content"]  # the judge's prompt (a re-ask adds the bad reply and a request after it)
    if "List every factual claim" in user:
        return json.dumps(
            {"claims": [{"claim": "x", "supported": True}, {"claim": "y", "supported": "bad" not in user}]}
        )
    if "REFERENCE ANSWER" in user:
        return "not json at all" if "broken" in user else json.dumps({"score": 5, "reason": "same"})
    if "toxic" in user:
        return json.dumps({"toxic": False, "score": 0.0})
    return json.dumps({"score": 4})


def test_judge_metrics_and_unparseable_row_is_an_error_not_a_crash(tmp_path):
    llm = ScriptedLLM(_judge_script)
    retr = FakeRetriever({"q1": [("c1", "a.md")], "q2": [("c2", "b.md")]})
    ds = _ds(
        [
            EvalItem("1", "q1", reference_answer="ref", answer="good answer"),
            EvalItem("2", "q2", reference_answer="ref", answer="bad broken answer"),
        ]
    )
    metrics = ["faithfulness", "answer_relevance", "correctness", "helpfulness", "toxicity", "token_f1"]
    usage = Usage()
    cached = CachedLLM(llm, LLMCache(tmp_path / "c.sqlite"), usage)
    rep = asyncio.run(
        run_eval(
            ds, EvalOptions(metrics=metrics, k=3, concurrency=4), retriever=retr, judge_llm=cached, usage=usage.to_dict
        )
    )
    r1, r2 = rep.rows
    assert r1.metrics["faithfulness"] == 1.0 and r2.metrics["faithfulness"] == 0.5
    assert r1.metrics["correctness"] == 1.0 and r1.reasons["correctness"] == "same"
    assert "correctness" not in r2.metrics and "not JSON" in r2.errors["correctness"]
    assert r1.metrics["answer_relevance"] == 0.75 and r1.metrics["toxicity"] == 0.0
    assert rep.error_rows == 1
    # 10 judgements, the unparseable one asked again once
    assert rep.usage["calls"] == 11 and rep.usage["cached"] == 0 and rep.usage["input_tokens"] == 110
    assert rep.usage["cost"] == pytest.approx(0.011)
    # a re-run with unchanged inputs makes no new calls, but for the reply that was unusable (never cached)
    usage2 = Usage()
    cached2 = CachedLLM(llm, LLMCache(tmp_path / "c.sqlite"), usage2)
    before = llm.calls
    rep2 = asyncio.run(
        run_eval(ds, EvalOptions(metrics=metrics, k=3), retriever=retr, judge_llm=cached2, usage=usage2.to_dict)
    )
    assert llm.calls == before + 2
    assert rep2.usage["cached"] == 9 and rep2.usage["calls"] == 2
    assert rep2.metrics == rep.metrics


def test_generated_answers_ground_faithfulness_and_failures_are_row_errors():
    def answerer(q):
        if q == "q2":
            raise LLMCallError("LLM down", retryable=True)
        return Answered(answer="the cat", hits=[Hit("g1", "grounding text", 1.0, {"source": "a.md"})])

    seen = []

    def script(messages):
        seen.append(messages[-1]["content"])
        return json.dumps({"claims": [{"claim": "c", "supported": True}]})

    ds = _ds([EvalItem("1", "q1", reference_answer="The cat!"), EvalItem("2", "q2", reference_answer="x")])
    rep = asyncio.run(
        run_eval(
            ds, EvalOptions(metrics=["exact_match", "faithfulness"]), answerer=answerer, judge_llm=ScriptedLLM(script)
        )
    )
    assert rep.rows[0].metrics == {"exact_match": 1.0, "faithfulness": 1.0}
    assert "grounding text" in seen[0]
    assert rep.rows[1].errors == {"answer": "LLM down"}
    assert rep.metrics == {"exact_match": 1.0, "faithfulness": 1.0}


def test_robustness_reports_deltas():
    class CaseSensitive(FakeRetriever):
        def search(self, text, k, mode="hybrid", where=None):
            # finds the relevant source only for the exact original wording
            return [Hit("c", "t", 1.0, {"source": "a.md" if text.startswith("How") else "z.md"})]

    ds = _ds([EvalItem("1", "How does scheduling work here?", relevant_sources=["a.md"])])
    rep = asyncio.run(
        run_eval(
            ds,
            EvalOptions(metrics=["retrieval", "robustness"], k=1, perturbations=["typos", "casing"]),
            retriever=CaseSensitive({}),
        )
    )
    casing = rep.robustness["casing"]["metrics"]["hit@1"]
    assert casing == {"original": 1.0, "perturbed": 0.0, "delta": -1.0, "rows": 1}
    assert rep.robustness["typos"]["metrics"]["hit@1"]["delta"] == 0.0  # typos keep "How"
    assert rep.robustness["casing"]["example"]["perturbed"] == "how DOES scheduling WORK here?"


def test_resolve_metrics():
    ds = _ds([EvalItem("1", "q", relevant_sources=["a"], reference_answer="r")])
    assert resolve_metrics(None, ds, llm_available=False, answers_possible=False) == ["retrieval"]
    assert resolve_metrics(["auto"], ds, llm_available=True, answers_possible=True) == [
        "retrieval",
        "exact_match",
        "token_f1",
        "semantic_similarity",
    ]
    assert resolve_metrics(["retrieval,correctness", "judge"], ds, llm_available=True, answers_possible=True)[:3] == [
        "retrieval",
        "correctness",
        "faithfulness",
    ]
    with pytest.raises(UsageError, match="unknown metric 'bleu'") as ei:
        resolve_metrics(["bleu"], ds, llm_available=True, answers_possible=True)
    choices = ei.value.hint.removeprefix("choose from: ").split(", ")
    assert len(choices) == len(set(choices)) and {"auto", "retrieval", "judge", "faithfulness"} <= set(choices)
    with pytest.raises(UsageError, match="need an LLM judge"):
        resolve_metrics(["correctness"], ds, llm_available=False, answers_possible=False)
    with pytest.raises(UsageError, match="nothing to evaluate"):
        resolve_metrics(None, _ds([EvalItem("1", "q")]), llm_available=False, answers_possible=False)


def test_bounded_gather_limits_concurrency_and_keeps_order():
    state = {"now": 0, "max": 0}

    async def job(i):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        if i == 3:
            raise ValueError("boom")
        return i

    res = asyncio.run(bounded_gather([(lambda i=i: job(i)) for i in range(10)], 3))
    assert state["max"] == 3
    assert res[:3] == [0, 1, 2] and isinstance(res[3], ValueError) and res[9] == 9


def test_paraphrase_perturbation_uses_the_llm():
    retr = FakeRetriever({"How do pools work?": [("c", "a.md")], "Explain pools": [("d", "b.md")]})
    llm = ScriptedLLM(lambda messages: '"Explain pools"')
    ds = _ds([EvalItem("1", "How do pools work?", relevant_sources=["a.md"])])
    rep = asyncio.run(
        run_eval(
            ds,
            EvalOptions(metrics=["retrieval", "robustness"], k=1, perturbations=["paraphrase"]),
            retriever=retr,
            judge_llm=llm,
        )
    )
    block = rep.robustness["paraphrase"]
    assert block["example"] == {"original": "How do pools work?", "perturbed": "Explain pools"}
    assert block["metrics"]["mrr"]["delta"] == -1.0 and llm.calls == 1


def test_cached_llm_retries_retryable_errors_only():
    from llmops_cli.core.batch.retry import RetryPolicy

    failures = [LLMCallError("429", status=429, retryable=True, retry_after=0.0), LLMCallError("503", retryable=True)]

    def script(messages):
        return failures.pop(0) if failures else "ok"

    inner = ScriptedLLM(script)
    llm = CachedLLM(inner, None, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0))
    assert asyncio.run(llm.acomplete([{"role": "user", "content": "x"}])).text == "ok"
    assert inner.calls == 3 and llm.usage.calls == 1 and llm.usage.failed == 0
    bad = CachedLLM(
        ScriptedLLM(lambda m: LLMCallError("400", status=400)),
        None,
        retry=RetryPolicy(max_attempts=3, base_delay_s=0.0),
    )
    with pytest.raises(LLMCallError):
        asyncio.run(bad.acomplete([{"role": "user", "content": "x"}]))
    assert bad.inner.calls == 1 and bad.usage.failed == 1


def test_sweep_ranks_skips_and_cleans_up(tmp_path):
    from types import SimpleNamespace

    from llmops_cli.entry.eval import sweep as run_sweep
    from llmops_cli.settings import Settings

    qs = tmp_path / "qs.jsonl"
    qs.write_text('{"question": "q", "relevant_sources": ["a"]}\n')
    ingested, deleted = [], []

    def ingest(settings, paths, collection):
        ingested.append((collection, settings.chunking.size, settings.chunking.overlap))
        return SimpleNamespace(chunks_total=1000 // settings.chunking.size)

    def evaluate(settings, path, **kw):  # smaller chunks score better in this fake
        return SimpleNamespace(metrics={"ndcg@5": 1.0 - settings.chunking.size / 1000}, run_id=len(ingested))

    rep = run_sweep(
        Settings(),
        qs,
        ["docs"],
        sizes=[256, 64, 128],
        overlaps=[0, 100],
        k=5,
        ingest=ingest,
        evaluate=evaluate,
        delete_collection=lambda s, name: deleted.append(name),
        token_limit=lambda es: 510,
    )
    assert [(e.rank, e.size, e.overlap) for e in rep.entries][:3] == [(1, 64, 0), (2, 128, 0), (3, 128, 100)]
    assert [s["config"] for s in rep.skipped] == ["auto/64/100/all-MiniLM-L6-v2"]  # overlap >= size
    assert len(rep.entries) == 5 and sorted(deleted) == sorted(c for c, _, _ in ingested)
    assert rep.to_dict()["leaderboard"][0]["chunks"] == 15


def test_robustness_of_generated_answers():
    def answerer(q):  # answers well only when the question is spelled as asked
        return Answered(answer="the scheduler" if q == "Who runs DAGs?" else "no idea", hits=[])

    ds = _ds([EvalItem("1", "Who runs DAGs?", reference_answer="The scheduler")])
    rep = asyncio.run(
        run_eval(ds, EvalOptions(metrics=["token_f1", "robustness"], perturbations=["casing"]), answerer=answerer)
    )
    assert rep.metrics["token_f1"] == 1.0
    assert rep.robustness["casing"]["metrics"]["token_f1"] == {
        "original": 1.0,
        "perturbed": 0.0,
        "delta": -1.0,
        "rows": 1,
    }
    with pytest.raises(UsageError, match="robustness compares"):
        asyncio.run(run_eval(ds, EvalOptions(metrics=["robustness"]), answerer=answerer))


def test_answer_step_runs_as_wide_as_concurrency():
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def answerer(q):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return Answered(answer="x", hits=[])

    ds = _ds([EvalItem(str(i), f"q{i}", reference_answer="x") for i in range(24)])
    rep = asyncio.run(run_eval(ds, EvalOptions(metrics=["exact_match"], concurrency=12), answerer=answerer))
    assert rep.metrics["exact_match"] == 1.0
    assert state["max"] == 12  # more than asyncio's default pool (cpu + 4) would allow on a small machine


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"strategies": ["sentences"]}, "--chunker 'sentences'"),
        ({"sizes": [4]}, "--chunk-size 4"),
        ({"overlaps": [-1]}, "--chunk-overlap"),
        # --rank-by was checked after every configuration had been ingested and evaluated
        ({"rank_by": "ndgc@5"}, "--rank-by 'ndgc@5' is not a metric of the sweep; did you mean ndcg@5"),
        ({"rank_by": "chunk_mrr"}, "--rank-by 'chunk_mrr' is not a metric of the sweep"),
        ({"metrics": ["chunk"]}, "metric chunk needs relevant_chunks"),  # known before any ingest too
    ],
)
def test_sweep_rejects_bad_values_before_ingesting(tmp_path, kw, needle):
    from llmops_cli.entry.eval import sweep as run_sweep
    from llmops_cli.settings import Settings

    qs = tmp_path / "qs.jsonl"
    qs.write_text('{"question": "q", "relevant_sources": ["a"]}\n')
    with pytest.raises(UsageError, match=needle):
        run_sweep(
            Settings(),
            qs,
            ["docs"],
            ingest=lambda *a, **k: pytest.fail("ingested"),
            evaluate=None,
            delete_collection=None,
            **kw,
        )


def test_an_empty_given_answer_is_not_sent_to_the_answerer():
    asked = []

    def answerer(q):
        asked.append(q)
        return Answered(answer="generated", hits=[])

    ds = _ds([EvalItem("1", "q1", reference_answer="x", answer=""), EvalItem("2", "q2", reference_answer="generated")])
    rep = asyncio.run(run_eval(ds, EvalOptions(metrics=["exact_match"]), answerer=answerer))
    assert asked == ["q2"]
    assert rep.rows[0].answer == "" and rep.rows[0].metrics == {"exact_match": 0.0}
    assert rep.rows[1].metrics == {"exact_match": 1.0}


def test_an_unusable_judge_reply_is_asked_again_once_and_never_cached(tmp_path):
    """Garbage is not cached (a fixed judge is asked again on the next run); a malformed reply is re-asked once,
    with the reply and what was wrong with it, before it becomes a row error."""
    mode = {"judge": "garbage"}

    def script(messages):
        return (
            "I rate this answer 5 out of 5!" if mode["judge"] == "garbage" else json.dumps({"score": 5, "reason": "ok"})
        )

    ds = _ds([EvalItem("1", "Relevant?", answer="yes"), EvalItem("2", "Relevant too?", answer="yes")])
    opts = EvalOptions(metrics=["answer_relevance"])

    def run():
        llm = ScriptedLLM(script)
        usage = Usage()
        rep = asyncio.run(
            run_eval(ds, opts, judge_llm=CachedLLM(llm, LLMCache(tmp_path / "c.sqlite"), usage), usage=usage.to_dict)
        )
        return rep, llm

    rep, llm = run()
    assert (
        llm.calls == 4 and rep.error_rows == 2 and "not JSON" in rep.rows[0].errors["answer_relevance"]
    )  # 2 rows x (ask + re-ask)
    assert len(LLMCache(tmp_path / "c.sqlite")) == 0
    mode["judge"] = "fixed"
    rep, llm = run()
    assert llm.calls == 2 and rep.metrics["answer_relevance"] == 1.0 and rep.error_rows == 0
    rep, llm = run()
    assert llm.calls == 0 and rep.usage["cached"] == 2 and rep.metrics["answer_relevance"] == 1.0


def test_a_malformed_reply_then_a_good_one_scores_the_row(tmp_path):
    seen = []

    def script(messages):
        seen.append(messages)
        return json.dumps({"score": 3}) if len(messages) > 2 else '{"verdict": "fine"}'

    llm = ScriptedLLM(script)
    cache = LLMCache(tmp_path / "c.sqlite")
    rep = asyncio.run(
        run_eval(
            _ds([EvalItem("1", "q", answer="a")]), EvalOptions(metrics=["helpfulness"]), judge_llm=CachedLLM(llm, cache)
        )
    )
    assert rep.rows[0].metrics == {"helpfulness": 0.5} and llm.calls == 2
    ask_again = seen[1]
    assert ask_again[:2] == seen[0] and ask_again[2] == {"role": "assistant", "content": '{"verdict": "fine"}'}
    assert "score" in ask_again[3]["content"] and "JSON" in ask_again[3]["content"]
    assert len(cache) == 1  # the good reply, under the original prompt's key
    again = ScriptedLLM(script)
    rep = asyncio.run(
        run_eval(
            _ds([EvalItem("1", "q", answer="a")]),
            EvalOptions(metrics=["helpfulness"]),
            judge_llm=CachedLLM(again, cache),
        )
    )
    assert again.calls == 0 and rep.rows[0].metrics == {"helpfulness": 0.5}


def test_an_unusable_reply_cached_by_an_older_version_is_not_served(tmp_path):
    from llmops_cli.core.eval import judge as judge_mod
    from llmops_cli.core.llm_cache import cache_key

    cache = LLMCache(tmp_path / "c.sqlite")
    ji = judge_mod.JudgeInput("q", "a", [], None)
    cache.put(
        cache_key("fake/judge", judge_mod.build_messages("helpfulness", ji), judge_mod.JUDGE_PARAMS),
        Completion(text="not json", model="fake/judge"),
    )
    llm = ScriptedLLM(lambda m: json.dumps({"score": 5}))
    usage = Usage()
    rep = asyncio.run(
        run_eval(
            _ds([EvalItem("1", "q", answer="a")]),
            EvalOptions(metrics=["helpfulness"]),
            judge_llm=CachedLLM(llm, cache, usage),
            usage=usage.to_dict,
        )
    )
    assert rep.rows[0].metrics == {"helpfulness": 1.0} and llm.calls == 1 and rep.usage["cached"] == 0


@pytest.mark.parametrize(
    "error",
    [
        __import__("llmops_cli.core.ports", fromlist=["LLMAuthError"]).LLMAuthError(
            "LLM rejected the credentials (401)", status=401
        ),
        __import__("llmops_cli.core.ports", fromlist=["LLMUnreachableError"]).LLMUnreachableError(
            "LLM is not reachable", retryable=True
        ),
        # a model string no provider serves: each row failed alike and the run ended "every question failed" (1),
        # or, in a matrix, exit 3 with the combination at $0; now exit 2 at the first call
        __import__("llmops_cli.core.ports", fromlist=["LLMConfigError"]).LLMConfigError(
            "LLM model 'bogus/x' names no provider litellm knows", status=400
        ),
    ],
)
def test_a_rejected_key_or_no_endpoint_stops_the_run_instead_of_failing_each_row(error):
    """Every row would fail the same way: the run stops at the first such error (exit 8 / 7 / 2), and jobs not yet
    started are not started."""
    from llmops_cli.errors import AuthError, ConfigError, UnreachableError

    judge = ScriptedLLM(lambda m: error)
    ds = _ds([EvalItem(str(i), f"q{i}", answer="a") for i in range(20)])
    with pytest.raises((AuthError, UnreachableError, ConfigError)) as ei:
        asyncio.run(run_eval(ds, EvalOptions(metrics=["helpfulness"], concurrency=2), judge_llm=judge))
    assert ei.value is error and judge.calls <= 2

    def answerer(q):
        raise error

    with pytest.raises(type(error)):
        asyncio.run(
            run_eval(
                _ds([EvalItem("1", "q", reference_answer="r")]), EvalOptions(metrics=["exact_match"]), answerer=answerer
            )
        )


def test_sweep_checks_every_combination_before_any_work(tmp_path):
    """A size over an embedder's maximum is refused before the first ingest, naming sweep's own flag; combinations
    that are only skipped (overlap >= size) are known up front too."""
    from llmops_cli.entry.eval import sweep as run_sweep
    from llmops_cli.settings import Settings

    qs = tmp_path / "qs.jsonl"
    qs.write_text('{"question": "q", "relevant_sources": ["a"]}\n')
    limits = {"small-model": 254, "long-model": 510}
    never = dict(
        ingest=lambda *a, **k: pytest.fail("ingested"),
        evaluate=None,
        delete_collection=None,
        token_limit=lambda es: limits[es.model],
    )
    with pytest.raises(UsageError) as e:
        run_sweep(Settings(), qs, ["docs"], sizes=[128, 256], embedders=["long-model", "small-model"], **never)
    assert "--chunk-size 256" in e.value.message and "small-model" in e.value.message and "254" in e.value.message
    assert e.value.hint == "use --chunk-size 254 or less (or drop --embed-model small-model)"
    with pytest.raises(UsageError, match="every combination is skipped"):
        run_sweep(Settings(), qs, ["docs"], sizes=[64], overlaps=[64, 100], embedders=["small-model"], **never)
