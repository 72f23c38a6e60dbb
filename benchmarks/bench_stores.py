"""Store benchmark: hybrid query latency (p50/p95) of the three backends on the same collection, at 1,000 and 20,000
chunks (``--quick``: 1,000 and 2,000; ``--sizes=1000,20000`` to choose):

- embedded Chroma (a folder), with our BM25 index (a cache under data_dir) fused with vector search by RRF;
- a Chroma server (``chroma run`` on loopback, llmops_cli.devstack.chroma), with the same BM25 cache;
- PostgreSQL with pgvector (llmops_cli.devstack.postgres), ranking text itself: HNSW distance and ts_rank over a
  GIN-indexed tsvector in one statement, fused by RRF.

The collection is synthetic: texts of 40-120 words drawn with Zipf frequencies from 6,000 words (Airflow's first,
then made-up ones), each with a heading, and SYNTHETIC VECTORS: random unit vectors of 384 dimensions (the bundled
model's size), the query's vector derived from its text by a seeded generator, so embedding time is not part of any
figure and every backend gets the very same chunks, vectors and queries. Latency is ``Retriever.search(question,
k=5, mode="hybrid")`` in one process with the store open and the BM25 cache loaded (the steady state of a long-lived
worker or an eval run), after a warm-up; the first query (BM25 cache built or loaded) is reported apart. Also
reported: the time to load the collection into each store (one upsert call, paged by the store). Results:
benchmarks/results/bench_stores.json, ratios against the embedded store.

    python -m benchmarks stores [--quick] [--sizes=N,M] [--queries=N]
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DIM = 384

VOCAB = (
    "dag task operator sensor pool retry schedule trigger executor worker queue backfill catchup xcom connection "
    "variable hook provider plugin timetable dataset asset deferrable triggerer callback timeout priority weight "
    "branch group mapping dynamic template macro param secret backend logging scheduler webserver database metadata "
    "celery kubernetes redis postgres upgrade migration config environment security authentication token role "
    "permission api rest client cli command run instance state success failed skipped upstream downstream "
    "dependency sla alert email slack notification retries delay exponential jitter interval cron timezone "
    "start end date logical data interval partition bucket object storage file path sql query transfer"
).split()


def _args(argv: list[str]) -> tuple[list[int], bool, int]:
    quick = "--quick" in argv
    sizes = [1000, 2000] if quick else [1000, 20000]
    queries = 100 if quick else 200
    for a in argv:
        if a.startswith("--sizes="):
            sizes = [int(x) for x in a.split("=", 1)[1].split(",")]
        elif a.startswith("--queries="):
            queries = int(a.split("=", 1)[1])
    return sizes, quick, queries


def vocabulary(size: int = 6000, seed: int = 5) -> tuple[list[str], np.ndarray]:
    """The Airflow words first, then made-up words, with Zipf frequencies (p of rank r ~ 1/r): a few words in most
    chunks, a long tail in few, as in real text."""
    rnd = random.Random(seed)
    made = {"".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(4, 10))) for _ in range(size)}
    words = VOCAB + sorted(made - set(VOCAB))[: size - len(VOCAB)]
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    return words, p / p.sum()


def corpus(n: int, seed: int = 7):
    """ids, unit vectors, texts and metadata of ``n`` synthetic chunks."""
    rnd = random.Random(seed)
    gen = np.random.default_rng(seed)
    words, p = vocabulary()
    vecs = gen.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids, texts, metas = [], [], []
    for i in range(n):
        picked = gen.choice(len(words), size=rnd.randint(40, 120), p=p)
        ids.append(f"chunk-{i:06d}")
        texts.append(" ".join(words[j] for j in picked) + ".")
        metas.append(
            {
                "source": f"docs/page{i // 20:05d}.md",
                "heading": " ".join(rnd.sample(VOCAB, 3)).title(),
                "format": "markdown" if i % 3 else "rst",
                "chunk_index": i % 20,
            }
        )
    return ids, vecs, texts, metas


def questions(n: int, seed: int = 11) -> list[str]:
    gen = np.random.default_rng(seed)
    words, p = vocabulary()
    return [
        "how do I " + " ".join(words[j] for j in gen.choice(len(words), size=gen.integers(3, 8), p=p)) + "?"
        for _ in range(n)
    ]


class SeededEmbedder:
    """A query's vector from its text (seeded by a hash): the same for every backend, no model time."""

    identity = "bench-seeded-384"
    dimension = DIM
    tokens = None

    def embed(self, texts):
        return np.stack([self.embed_query(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        import zlib

        v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)


def _load(store, name: str, ids, vecs, texts, metas) -> float:
    from llmops_cli.core.collection_meta import DIMENSION_KEY, EMBEDDER_KEY

    store.delete_collection(name)
    t0 = time.perf_counter()
    store.ensure_collection(name, metadata={EMBEDDER_KEY: SeededEmbedder.identity, DIMENSION_KEY: DIM})
    store.upsert(name, ids, vecs, texts, metas)  # one load, paged by the store itself
    return time.perf_counter() - t0


def _measure(store, name: str, lexical_dir: Path | None, qs: list[str], warmup: int = 20) -> dict:
    from llmops_cli.core.retrieval import LexicalIndex, Retriever

    lexical = LexicalIndex(lexical_dir, store, name) if lexical_dir is not None else None
    r = Retriever(store, SeededEmbedder(), name, lexical=lexical, candidates=20, rrf_k=60)
    t0 = time.perf_counter()
    first = r.search(qs[0], 5, mode="hybrid")
    first_s = time.perf_counter() - t0
    assert len(first) == 5, first
    for q in qs[1 : warmup + 1]:
        r.search(q, 5, mode="hybrid")
    lat = []
    for q in qs:
        t = time.perf_counter()
        hits = r.search(q, 5, mode="hybrid")
        lat.append((time.perf_counter() - t) * 1000)
        assert hits
    lat.sort()
    return {
        "queries": len(lat),
        "p50_ms": round(statistics.median(lat), 3),
        "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "mean_ms": round(statistics.fmean(lat), 3),
        "first_query_s": round(first_s, 3),
        "in_store_text_search": r.in_store,
    }


def main(argv: list[str] | None = None) -> dict:
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore
    from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore
    from llmops_cli.devstack import chroma as chroma_dev
    from llmops_cli.devstack import postgres as pg_dev

    sizes, quick, n_queries = _args(sys.argv[1:] if argv is None else argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    qs = questions(n_queries)
    res: dict = {
        "sizes": sizes,
        "quick": quick,
        "dimension": DIM,
        "vectors": "synthetic: random unit vectors (384-d), query vectors seeded from the query text",
        "texts": "synthetic: 40-120 words of a 6,000-word vocabulary with Zipf frequencies, a heading per chunk",
        "measure": "Retriever.search(k=5, mode=hybrid) in one process, store open, BM25 cache loaded, after warm-up",
        "backends": {},
    }
    try:
        chroma_srv = chroma_dev.start(tmp / "chroma-server")
        pg = pg_dev.start(tmp / "pg")
        stores = {
            "embedded": (lambda: ChromaStore.embedded(tmp / "embedded"), True),
            "chroma-server": (lambda: ChromaStore.server("127.0.0.1", chroma_srv.port), True),
            "pgvector": (lambda: PgVectorStore.open(pg.create_database("bench")), False),
        }
        for n in sizes:
            ids, vecs, texts, metas = corpus(n)
            name = f"bench-{n}"
            for backend, (opener, uses_bm25) in stores.items():
                store = opener()
                load_s = _load(store, name, ids, vecs, texts, metas)
                if backend == "embedded":
                    store = ChromaStore.embedded(tmp / "embedded", read_only=True)  # as a query command opens it
                lexdir = tmp / "lexical" / backend / name if uses_bm25 else None
                got = _measure(store, name, lexdir, qs)
                got["load_s"] = round(load_s, 2)
                res["backends"].setdefault(backend, {})[str(n)] = got
                print(
                    f"{backend:>13} {n:>6} chunks: p50 {got['p50_ms']:.2f} ms, p95 {got['p95_ms']:.2f} ms, "
                    f"first {got['first_query_s']:.2f} s, load {load_s:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if hasattr(store, "close"):
                    store.close()
        ratios: dict = {}
        for backend, per_size in res["backends"].items():
            for n, got in per_size.items():
                ref = res["backends"]["embedded"][n]
                ratios.setdefault(backend, {})[n] = {
                    "p50_vs_embedded": round(got["p50_ms"] / ref["p50_ms"], 2),
                    "p95_vs_embedded": round(got["p95_ms"] / ref["p95_ms"], 2),
                    "load_vs_embedded": round(got["load_s"] / ref["load_s"], 2) if ref["load_s"] else None,
                }
        res["ratios"] = ratios
    finally:
        chroma_dev.stop(tmp / "chroma-server")
        pg_dev.stop(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)
    out = RESULTS / "bench_stores.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["ratios"], indent=2), file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
