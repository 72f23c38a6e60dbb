"""Benchmark: the feedback loop's costs and savings, as ratios against references measured in the same run.

- semantic cache: `entry.ask.ask` of a question whose answer was promoted (served from the cache, no LLM call) vs
  the same ask with ``use_cache=False`` (rewordings + answer through the local OpenAI-compatible server answering
  in LATENCY seconds, real HTTP, the real embedder and Chroma). Ratio = cached time / uncached time.
- cache lookup as the number of promoted answers grows (1, 1000, 10000): the lookup (the question already embedded)
  / the time of embedding the question (which every ask pays anyway, cached or not).
- recording: writing one answer to the SQLite log vs one LLM round trip to the local server with no added latency
  (the cheapest call there is). Ratio = record time / call time.
- cache guard (issue 11 item 13): with the real bundled embedding model, a planted set of promoted questions, each
  with NEAR MISSES (a negation, another verb, entity or version: must not be served its answer), REWORDINGS (case,
  punctuation, function words, plurals, word order, a typo: should be) and SYNONYM paraphrases (other content words,
  same meaning). For each, ``find_cached`` at feedback.cache_threshold without the lexical check (before) and with it
  (after): false hits / near misses, true hits / rewordings, true hits / synonym paraphrases. A hit on the wrong
  promoted question counts as false. ``python -m benchmarks.bench_feedback guard`` runs only this part (seconds).
Results: benchmarks/results/bench_feedback.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LATENCY = 0.25
REPEATS = 5

QUESTION = "How do I rotate the frobnicator credentials?"

# (promoted question, near misses that must NOT be served its answer, rewordings that must be, synonym paraphrases)
PLANTED: list[tuple[str, list[str], list[str], list[str]]] = [
    (
        "How do I get the value of an Airflow Variable in a task?",
        [
            "How do I NOT get the value of an Airflow Variable in a task?",
            "How do I set the value of an Airflow Variable in a task?",
            "How do I delete an Airflow Variable in a task?",
            "How do I get the value of an Airflow Connection in a task?",
            "How do I get the value of an Airflow Variable outside a task?",
            "Why can't I get the value of an Airflow Variable in a task?",
            "How do I get the value of an Airflow Variable in a DAG file?",
        ],
        [
            "how do i get the value of an airflow variable in a task",
            "How can I get the value of an Airflow Variable in a task?",
            "How do I get the values of Airflow Variables in a task?",
            "How do I get the value of an Airflow Variable inside a task?",
            "In a task, how do I get the value of an Airflow Variable?",
            "How do I get the value of an Airflow Varaible in a task?",
        ],
        [
            "How do I read the value of an Airflow Variable in a task?",
            "How can I access an Airflow Variable's value from a task?",
        ],
    ),
    (
        "How do I trigger a DAG run from the CLI?",
        [
            "How do I trigger a DAG run from the REST API?",
            "How do I pause a DAG run from the CLI?",
            "How do I clear a DAG run from the CLI?",
            "How do I trigger a task from the CLI?",
            "Why can't I trigger a DAG run from the CLI?",
        ],
        [
            "How can I trigger a DAG run from the CLI?",
            "how to trigger a dag run from the cli",
            "How do I trigger DAG runs from the CLI?",
            "From the CLI, how do I trigger a DAG run?",
        ],
        ["How do I start a DAG run from the command line?", "How do I kick off a DAG run from the CLI?"],
    ),
    (
        "How do I install Airflow 3 with pip?",
        [
            "How do I install Airflow 2 with pip?",
            "How do I uninstall Airflow 3 with pip?",
            "How do I upgrade Airflow 3 with pip?",
            "How do I install Airflow 3 without pip?",
        ],
        [
            "How can I install Airflow 3 with pip?",
            "how do I install airflow 3 with pip",
            "How should I install Airflow 3 with pip?",
        ],
        ["How do I install Airflow 3 using pip?", "What is the way to pip install Airflow 3?"],
    ),
    (
        "What is the default value of parallelism in Airflow?",
        [
            "What is the maximum value of parallelism in Airflow?",
            "What is the default value of max_active_runs in Airflow?",
            "What is the default value of parallelism in Celery?",
        ],
        [
            "What's the default value of parallelism in Airflow?",
            "what is the default value of parallelism in airflow",
            "What is the default value for parallelism in Airflow?",
        ],
        ["What is Airflow's default parallelism?", "What does parallelism default to in Airflow?"],
    ),
    (
        "Why does my DAG not show up in the UI?",
        [
            "Why does my DAG show up in the UI?",
            "Why does my task not show up in the UI?",
            "Why does my DAG not show up in the logs?",
        ],
        [
            "Why doesn't my DAG show up in the UI?",
            "why does my dag not show up in the ui",
            "Why does my DAG not show up in the UI ?",
        ],
        ["Why is my DAG missing from the UI?", "Why can't I see my DAG in the UI?"],
    ),
]


def _median(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cache_guard(embedder, log_path: Path, threshold: float) -> dict:
    """The planted set through ``find_cached`` before (cosine only) and after (cosine + lexical check); per probe the
    similarity to its promoted question, what each variant served, and the rates."""
    from llmops_cli.core.feedback import AnswerLog
    from llmops_cli.core.feedback.cache import find_cached, lexical_conflict, unit_vector
    from llmops_cli.core.feedback.log import Promotion

    probes = []
    with AnswerLog(log_path) as log:
        ids = {}
        for promoted, *_ in PLANTED:
            aid = log.record(kind="ask", question=promoted, answer="a", collection="docs")
            log.save_promotion(
                Promotion(
                    answer_id=aid,
                    collection="docs",
                    chunk_id=f"answer-{aid}",
                    question=promoted,
                    answer_text="a",
                    question_vector=unit_vector(embedder.embed_query(promoted)).tobytes(),
                    embedder=embedder.identity,
                    promoted_at=time.time(),
                )
            )
            ids[promoted] = aid
        for promoted, near, rewordings, synonyms in PLANTED:
            target = unit_vector(embedder.embed_query(promoted))
            for kind, questions in (("near_miss", near), ("rewording", rewordings), ("synonym", synonyms)):
                for q in questions:
                    served = {}
                    for variant, check in (("before", False), ("after", True)):
                        hit = find_cached(log, embedder, "docs", q, threshold, lexical_check=check)
                        served[variant] = (
                            None if hit is None else ("right" if hit.answer_id == ids[promoted] else "other")
                        )
                    probes.append(
                        {
                            "kind": kind,
                            "question": q,
                            "promoted": promoted,
                            "similarity": round(float(unit_vector(embedder.embed_query(q)) @ target), 3),
                            "conflict": lexical_conflict(q, promoted),
                            **served,
                        }
                    )

    def rate(kind: str, variant: str, outcome) -> dict:
        rows = [p for p in probes if p["kind"] == kind]
        n = sum(1 for p in rows if outcome(p[variant]))
        return {"count": n, "of": len(rows), "ratio": round(n / len(rows), 3)}

    def wrong(served):  # a near miss served anything, or another question's answer
        return served is not None

    rates = {
        variant: {
            "false_hits_per_near_miss": rate("near_miss", variant, wrong),
            "true_hits_per_rewording": rate("rewording", variant, lambda v: v == "right"),
            "true_hits_per_synonym_paraphrase": rate("synonym", variant, lambda v: v == "right"),
            "rewordings_served_another_answer": rate("rewording", variant, lambda v: v == "other"),
        }
        for variant in ("before", "after")
    }
    return {"threshold": threshold, "embedder": embedder.identity, **rates, "probes": probes}


def _write(results: dict, merge: bool = False) -> None:
    path = ROOT / "benchmarks" / "results" / "bench_feedback.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if merge and path.is_file():
        results = {**json.loads(path.read_text()), **results}
    path.write_text(json.dumps(results, indent=2) + "\n")


def guard_main() -> dict:
    """Only the cache-guard measurement (the real embedding model, no server): merged into the results file."""
    from llmops_cli import wiring
    from llmops_cli.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
        s = load_settings(None, environ=environ, cwd=Path(tmp)).settings
        out = cache_guard(wiring.build_embedder(s.embedder), Path(tmp) / "guard.sqlite", s.feedback.cache_threshold)
    _write({"cache_guard": out}, merge=True)
    summary = {k: v for k, v in out.items() if k != "probes"}
    print(json.dumps(summary, indent=2))
    return out


def _responder(body):
    system = body["messages"][0]["content"]
    if system.startswith("You review answers"):
        return json.dumps({"helpfulness": {"score": 5}, "relevance": {"score": 5}, "publicness": {"public": True}})
    if system.startswith("You rewrite"):
        return "rotate frobnicator secrets\nfrobnicator credential rotation"
    return "Run `frob rotate --all` [1]."


def main() -> None:
    from llmops_cli import wiring
    from llmops_cli.entry.ask import ask
    from llmops_cli.entry.feedback import review
    from llmops_cli.entry.ingest import ingest
    from llmops_cli.wiring import Workspace

    def step(fn, *args, **kwargs):  # each call in its own workspace, as each command is
        with Workspace(s) as ws:
            return fn(ws, *args, **kwargs)

    from llmops_cli.core.feedback import AnswerLog
    from llmops_cli.core.feedback.cache import find_cached
    from llmops_cli.core.feedback.log import Promotion
    from llmops_cli.settings import load_settings
    from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, OpenAIServer

    out: dict = {"latency_s": LATENCY, "repeats": REPEATS}
    with tempfile.TemporaryDirectory() as tmp, OpenAIServer(responder=_responder) as srv:
        tmp = Path(tmp)
        docs = tmp / "docs"
        docs.mkdir()
        (docs / "frob.md").write_text("# Frobnicator\n\n## Credentials\n\nRotate them with `frob rotate --all`.\n")
        (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
        env = {
            "LLMOPS_LLM_MODEL": TEST_MODEL,
            "LLMOPS_LLM_API_BASE": srv.base_url,
            "LLMOPS_LLM_API_KEY": TEST_API_KEY,
            "LLMOPS_STORE_PATH": str(tmp / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp / "state"),
            "LLMOPS_LLM_REWORDINGS": "2",
        }
        s = load_settings(None, environ={**os.environ, **env}, cwd=tmp).settings
        step(ingest, [str(docs)])
        first = step(ask, QUESTION)  # warms up litellm, the embedder and Chroma
        step(review)
        assert first.answer_id

        # --- recording vs the cheapest LLM call (no added latency) ---
        llm = wiring.build_llm(s.llm)
        msgs = [{"role": "user", "content": "ping"}]
        call_s = _median(lambda: llm.complete(msgs), 20)
        with AnswerLog(tmp / "bench-record.sqlite") as log:
            record_s = _median(
                lambda: log.record(
                    kind="batch", question="ping", answer="pong", model=TEST_MODEL, input_tokens=1, output_tokens=1
                ),
                200,
            )
        out["recording"] = {
            "record_ms": round(record_s * 1000, 3),
            "local_call_ms": round(call_s * 1000, 3),
            "ratio_record_to_call": round(record_s / call_s, 4),
        }

        # --- cached ask vs uncached ask, with the server answering in LATENCY s ---
        srv.latency = LATENCY
        before = len(srv.records())
        uncached_s = _median(lambda: step(ask, QUESTION, use_cache=False), REPEATS)
        calls = len(srv.records())
        saved = (calls - before) / REPEATS
        cached_s = _median(lambda: step(ask, QUESTION), REPEATS)
        assert len(srv.records()) == calls, "the cached asks made LLM calls"
        hit = step(ask, QUESTION).cache_hit
        out["semantic_cache"] = {
            "uncached_ask_s": round(uncached_s, 4),
            "cached_ask_s": round(cached_s, 4),
            "ratio_cached_to_uncached": round(cached_s / uncached_s, 4),
            "llm_calls_saved_per_ask": saved,
            "similarity": hit["similarity"] if hit else None,
        }

        # --- lookup cost as promotions grow ---
        emb = wiring.build_embedder(s.embedder)
        embed_s = _median(lambda: emb.embed_query(QUESTION), 20)
        scaling = []

        class _Embedded:  # the question already embedded: isolates the lookup itself
            identity, dimension = emb.identity, emb.dimension
            vec = emb.embed_query(QUESTION)

            def embed_query(self, text):
                return self.vec

        pre = _Embedded()
        rng = np.random.default_rng(0)
        with AnswerLog(tmp / "bench-cache.sqlite") as log:
            have = 0
            for n in (1, 1000, 10000):
                vecs = rng.normal(size=(n - have, emb.dimension)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                rows = []
                for v in vecs:
                    aid = f"{have:012x}"
                    rows.append(
                        Promotion(
                            answer_id=aid,
                            collection="docs",
                            chunk_id=f"answer-{aid}",
                            question="q",
                            answer_text="a",
                            question_vector=v.tobytes(),
                            embedder=emb.identity,
                            promoted_at=0.0,
                        )
                    )
                    have += 1
                log._db.execute("PRAGMA foreign_keys=OFF")  # synthetic promotions without answer rows
                log._tx(
                    lambda db, rows=rows: db.executemany(
                        "INSERT INTO promotions (answer_id, collection, chunk_id, question, answer_text, "
                        "question_vector, embedder, promoted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                p.answer_id,
                                p.collection,
                                p.chunk_id,
                                p.question,
                                p.answer_text,
                                p.question_vector,
                                p.embedder,
                                0.0,
                            )
                            for p in rows
                        ],
                    )
                )
                # the lookup without the question's embedding (that is paid by every ask anyway, cached or not)
                lookup_s = _median(lambda: find_cached(log, pre, "docs", QUESTION, 0.92), 20)
                scaling.append(
                    {
                        "promotions": n,
                        "lookup_ms": round(lookup_s * 1000, 3),
                        "ratio_to_embedding_the_question": round(lookup_s / embed_s, 3),
                    }
                )
        out["cache_lookup"] = {"embed_question_ms": round(embed_s * 1000, 3), "by_promotions": scaling}
        out["cache_guard"] = cache_guard(emb, tmp / "bench-guard.sqlite", s.feedback.cache_threshold)

    _write(out)
    print(
        json.dumps(
            {k: v for k, v in out.items() if k != "cache_guard"}
            | {"cache_guard": {k: v for k, v in out["cache_guard"].items() if k != "probes"}},
            indent=2,
        )
    )


if __name__ == "__main__":
    import sys

    guard_main() if sys.argv[1:] == ["guard"] else main()
