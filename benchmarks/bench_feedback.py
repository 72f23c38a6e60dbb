"""Benchmark: the feedback loop's costs and savings, as ratios against references measured in the same run.

- semantic cache: `pipelines.ask` of a question whose answer was promoted (served from the cache, no LLM call) vs
  the same ask with ``use_cache=False`` (rewordings + answer through the local OpenAI-compatible server answering
  in LATENCY seconds, real HTTP, the real embedder and Chroma). Ratio = cached time / uncached time.
- cache lookup as the number of promoted answers grows (1, 1000, 10000): the lookup (the question already embedded)
  / the time of embedding the question (which every ask pays anyway, cached or not).
- recording: writing one answer to the SQLite log vs one LLM round trip to the local server with no added latency
  (the cheapest call there is). Ratio = record time / call time.
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


def _median(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _responder(body):
    system = body["messages"][0]["content"]
    if system.startswith("You review answers"):
        return json.dumps({"helpfulness": {"score": 5}, "relevance": {"score": 5}, "publicness": {"public": True}})
    if system.startswith("You rewrite"):
        return "rotate frobnicator secrets\nfrobnicator credential rotation"
    return "Run `frob rotate --all` [1]."


def main() -> None:
    from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, OpenAIServer

    from llmops_cli import pipelines, wiring
    from llmops_cli.core.feedback import AnswerLog
    from llmops_cli.core.feedback.cache import find_cached
    from llmops_cli.core.feedback.log import Promotion
    from llmops_cli.settings import load_settings

    out: dict = {"latency_s": LATENCY, "repeats": REPEATS}
    with tempfile.TemporaryDirectory() as tmp, OpenAIServer(responder=_responder) as srv:
        tmp = Path(tmp)
        docs = tmp / "docs"
        docs.mkdir()
        (docs / "frob.md").write_text("# Frobnicator\n\n## Credentials\n\nRotate them with `frob rotate --all`.\n")
        (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
        env = {"LLMOPS_LLM_MODEL": TEST_MODEL, "LLMOPS_LLM_API_BASE": srv.base_url, "LLMOPS_LLM_API_KEY": TEST_API_KEY,
               "LLMOPS_STORE_PATH": str(tmp / "chroma"), "LLMOPS_DATA_DIR": str(tmp / "state"), "LLMOPS_LLM_REWORDINGS": "2"}
        s = load_settings(None, environ={**os.environ, **env}, cwd=tmp).settings
        pipelines.ingest(s, [str(docs)])
        first = pipelines.ask(s, QUESTION)  # warms up litellm, the embedder and Chroma
        pipelines.feedback_review(s)
        assert first.answer_id

        # --- recording vs the cheapest LLM call (no added latency) ---
        llm = wiring.build_llm(s.llm)
        msgs = [{"role": "user", "content": "ping"}]
        call_s = _median(lambda: llm.complete(msgs), 20)
        with AnswerLog(tmp / "bench-record.sqlite") as log:
            record_s = _median(lambda: log.record(kind="batch", question="ping", answer="pong", model=TEST_MODEL, input_tokens=1,
                                                  output_tokens=1), 200)
        out["recording"] = {"record_ms": round(record_s * 1000, 3), "local_call_ms": round(call_s * 1000, 3),
                            "ratio_record_to_call": round(record_s / call_s, 4)}

        # --- cached ask vs uncached ask, with the server answering in LATENCY s ---
        srv.latency = LATENCY
        before = len(srv.records())
        uncached_s = _median(lambda: pipelines.ask(s, QUESTION, use_cache=False), REPEATS)
        calls = len(srv.records())
        saved = (calls - before) / REPEATS
        cached_s = _median(lambda: pipelines.ask(s, QUESTION), REPEATS)
        assert len(srv.records()) == calls, "the cached asks made LLM calls"
        hit = pipelines.ask(s, QUESTION).cache_hit
        out["semantic_cache"] = {"uncached_ask_s": round(uncached_s, 4), "cached_ask_s": round(cached_s, 4),
                                 "ratio_cached_to_uncached": round(cached_s / uncached_s, 4), "llm_calls_saved_per_ask": saved,
                                 "similarity": hit["similarity"] if hit else None}

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
                    rows.append(Promotion(answer_id=aid, collection="docs", chunk_id=f"answer-{aid}", question="q", answer_text="a",
                                          question_vector=v.tobytes(), embedder=emb.identity, promoted_at=0.0))
                    have += 1
                log._db.execute("PRAGMA foreign_keys=OFF")  # synthetic promotions without answer rows
                log._tx(lambda db, rows=rows: db.executemany(
                    "INSERT INTO promotions (answer_id, collection, chunk_id, question, answer_text, question_vector, embedder, "
                    "promoted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(p.answer_id, p.collection, p.chunk_id, p.question, p.answer_text, p.question_vector, p.embedder, 0.0) for p in rows]))
                # the lookup without the question's embedding (that is paid by every ask anyway, cached or not)
                lookup_s = _median(lambda: find_cached(log, pre, "docs", QUESTION, 0.92), 20)
                scaling.append({"promotions": n, "lookup_ms": round(lookup_s * 1000, 3),
                                "ratio_to_embedding_the_question": round(lookup_s / embed_s, 3)})
        out["cache_lookup"] = {"embed_question_ms": round(embed_s * 1000, 3), "by_promotions": scaling}

    path = ROOT / "benchmarks" / "results" / "bench_feedback.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
