"""Retrieval benchmark: llmops against a typical LangChain pipeline, on real Stack Overflow threads and on the
project's own Airflow-docs questions, all measured in one run.

The Stack Overflow task (../shared/corpora/stackoverflow-airflow/base.parquet, 921 threads; skipped when absent),
the one a support bot faces:
- query: the thread's title, a newline, and its question body (the first post);
- corpus: one document per thread, the thread's answers joined by blank lines, its id the thread's link (docLink);
  for llmops each document is a text file ``<question id>.txt`` ingested by the real ingest core (loaders,
  chunking, the configured embedder, an embedded Chroma store, our BM25 index);
- scoring at source level: a query hits at k when its own thread is among the sources of the top k chunks;
  MRR@10 and nDCG@10 (one relevant source, gain 1/log2(1 + rank)) over the distinct sources of the top 10 chunks,
  in order of their first chunk;
- systems: llmops hybrid (the configured defaults), vector and lexical modes; the LangChain pipeline
  (RecursiveCharacterTextSplitter 1000/200, HuggingFaceEmbeddings of the same bundled model, normalised, Chroma
  with cosine space, ``similarity_search(query, k=10)``); BM25 alone (bm25s, English stopwords, one entry per
  whole document, no chunking);
- 95% bootstrap confidence intervals (2000 resamples of the queries, seed 0) of each mean, and of the paired
  difference llmops hybrid minus LangChain.
The Airflow docs (../shared/corpora/airflow-docs, tests/integration/airflow_docs_questions.py: 16 questions, each
with the page that answers it) are scored the same way, for llmops's three modes and LangChain.

Embeddings are cached by text under benchmarks/results/retrieval-cache/ (per model identity), so a second run, or a
variant that changes retrieval but not chunking, embeds nothing again. Chunking and retrieval settings come from the
usual sources (LLMOPS_CHUNKING_SIZE, LLMOPS_RETRIEVAL_RRF_K, ... in the environment), so a variant is measured
without editing a config. Results: benchmarks/results/bench_retrieval.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SO_THREADS = REPO.parent / "shared" / "corpora" / "stackoverflow-airflow" / "base.parquet"
AIRFLOW_DOCS = REPO.parent / "shared" / "corpora" / "airflow-docs"
RESULTS = REPO / "benchmarks" / "results"
CACHE = RESULTS / "retrieval-cache"
K = 10
BOOTSTRAP = 2000
_POST_HEADER = re.compile(r"\nDATE: [^\n]*\nBY: [^\n]*\nSCORE: [^\n]*\n")


def _say(msg: str) -> None:
    print(f"[bench_retrieval] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the task


def so_threads(parquet: Path) -> list[dict[str, str]]:
    """Each thread's link, query (title + question body) and answers (one document), in file order."""
    import pandas as pd

    out = []
    for link, content in pd.read_parquet(parquet, columns=["docLink", "content"]).itertuples(index=False):
        m = re.search(r"TITLE: (.*)\n", content)
        posts = _POST_HEADER.split(content)  # [title line, question, answer, answer, ...]
        if not m or len(posts) < 3:
            continue
        out.append(
            {
                "link": link,
                "query": f"{m.group(1).strip()}\n{posts[1].strip()}",
                "answers": "\n\n".join(p.strip() for p in posts[2:]),
            }
        )
    return out


def source_metrics(ranked_sources: Sequence[Sequence[str]], expected: Sequence[str]) -> dict[str, np.ndarray]:
    """Per query: hit@1/5/10 over the sources of the top chunks; MRR@10 and nDCG@10 over their distinct sources."""
    cols: dict[str, list[float]] = {"hit@1": [], "hit@5": [], "hit@10": [], "mrr@10": [], "ndcg@10": []}
    for got, want in zip(ranked_sources, expected, strict=True):
        got = list(got)[:K]
        for k in (1, 5, 10):
            cols[f"hit@{k}"].append(float(want in got[:k]))
        distinct = list(dict.fromkeys(got))
        rank = distinct.index(want) + 1 if want in distinct else 0
        cols["mrr@10"].append(1.0 / rank if rank else 0.0)
        cols["ndcg@10"].append(1.0 / np.log2(1 + rank) if rank else 0.0)
    return {k: np.array(v) for k, v in cols.items()}


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))
    means = values[idx].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def summary(per_query: dict[str, np.ndarray], with_ci: bool = True) -> dict:
    out = {}
    for name, v in per_query.items():
        out[name] = round(float(v.mean()), 4)
        if with_ci:
            out[f"{name}_ci95"] = bootstrap_ci(v)
    return out


# ------------------------------------------------------------------------------------------ embedding cache


class VectorCache:
    """Vectors by text (sha1) per model identity; misses are computed in batches. Saved to
    ``<identity>[.<BENCH_CACHE_TAG>].npz``, merged with what is on disk, and read from every file of the identity, so
    two runs at once (variants measured side by side) lose nothing of each other's."""

    def __init__(self, identity: str):
        CACHE.mkdir(parents=True, exist_ok=True)
        self.stem = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:120]
        tag = os.environ.get("BENCH_CACHE_TAG")
        self.path = CACHE / (f"{self.stem}.{tag}.npz" if tag else f"{self.stem}.npz")
        self.vectors: dict[str, np.ndarray] = {}
        self.dirty = False
        for f in sorted(CACHE.glob(f"{self.stem}*.npz")):
            self.vectors.update(self._read(f))

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path) as z:
                return dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}

    def get(self, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items())
        for i in range(0, len(missing), 256):
            part = missing[i : i + 256]
            for (k, _), v in zip(part, compute([t for _, t in part]), strict=True):
                self.vectors[k] = np.asarray(v, dtype=np.float32)
            self.dirty = True
            if i and i % 2048 == 0:
                self.save()  # a long first run keeps what it has embedded
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def save(self) -> None:
        if not self.dirty:
            return
        merged = {**self._read(self.path), **self.vectors}
        keys = list(merged)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([merged[k] for k in keys]))
        os.replace(tmp, self.path)
        self.dirty = False


def cached_embedder(inner):
    """The configured embedder with its vectors cached by text: identical vectors, so the ingest and the retriever
    behave exactly as with the embedder itself."""
    from llmops_cli.core.ports import Embedder

    class Cached(Embedder):
        identity = inner.identity
        dimension = inner.dimension
        tokens = inner.tokens
        cache = VectorCache(inner.identity)
        cache_inner = inner

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return self.cache.get(list(texts), inner.embed)

    return Cached()


# ------------------------------------------------------------------------------------------ llmops


def llmops_settings(tmp: Path, source_root: Path):
    from llmops_cli.settings import load_settings

    env = {k: v for k, v in os.environ.items() if k.startswith(("LLMOPS_CHUNKING_", "LLMOPS_RETRIEVAL_", "LLMOPS_EMB"))}
    env.update(
        {
            "LLMOPS_STORE_PATH": str(tmp / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp / "state"),
            "LLMOPS_INGEST_SOURCE_ROOT": str(source_root),
        }
    )
    return load_settings(environ=env).settings


def llmops_index(settings, embedder, paths: list[str], collection: str):
    """Ingest ``paths`` with the real ingest core; the store and a built BM25 index."""
    from llmops_cli.adapters.vectorstores.chroma import ChromaStore
    from llmops_cli.core.ingest import ingest
    from llmops_cli.core.retrieval import LexicalIndex
    from llmops_cli.entry.ingest import ingest_options

    store = ChromaStore.embedded(Path(settings.store.path))
    t0 = time.perf_counter()
    report = ingest(paths, embedder=embedder, store=store, opts=ingest_options(settings, collection=collection))
    lexical = LexicalIndex(Path(settings.data_dir) / "lexical" / collection, store, collection)
    lexical.build()
    return (
        store,
        lexical,
        {"chunks": store.count(collection), "sources": len(report.new), "s": time.perf_counter() - t0},
    )


def llmops_rankings(settings, store, lexical, embedder, collection: str, queries: list[str], mode: str, **kw):
    """The sources of each query's top K chunks, as `llmops query --mode MODE -k 10` ranks them."""
    from llmops_cli.core.retrieval import Retriever

    r = settings.retrieval
    opts = {"candidates": r.candidates, "rrf_k": r.rrf_k, **kw}
    # score-level fusion, once the settings carry it (retrieval.fusion, retrieval.vector_weight)
    for name in ("fusion", "vector_weight"):
        if hasattr(r, name):
            opts.setdefault(name, getattr(r, name))
    retriever = Retriever(store, embedder, collection, lexical=lexical, **opts)
    return [[str(h.metadata.get("source")) for h in retriever.search(q, K, mode=mode)] for q in queries]


# ------------------------------------------------------------------------------------------ references


def langchain_rankings(
    docs: list[tuple[str, str]], queries: list[str], name: str, embedder=None
) -> tuple[list[list[str]], dict]:
    """RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings (same model, normalised) + Chroma.

    With ``embedder`` (BENCH_LANGCHAIN_EMBEDDER=llmops) LangChain's vectors come from llmops's embedder of the same
    model instead of sentence-transformers (the same vectors to ~1e-6; bench_embed measures it), so the queries'
    vectors are shared with llmops's through the cache: the cheap way on a busy machine."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if embedder is None:
        from langchain_huggingface import HuggingFaceEmbeddings

        from llmops_cli.adapters.embedders.model_files import bundled_model_path

        hf = HuggingFaceEmbeddings(model_name=str(bundled_model_path()), encode_kwargs={"normalize_embeddings": True})
        cache = VectorCache("langchain-huggingface:all-MiniLM-L6-v2")
        embed_texts = hf.embed_documents
    else:
        cache = embedder.cache
        embed_texts = embedder.cache_inner.embed

    class CachedHF(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return cache.get(texts, embed_texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return cache.get([text], embed_texts)[0].tolist()

    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        [Document(page_content=text, metadata={"source": sid}) for sid, text in docs]
    )
    db = Chroma.from_documents(
        chunks,
        CachedHF(),
        client=chromadb.EphemeralClient(),
        collection_name=name,
        collection_metadata={"hnsw:space": "cosine"},
    )
    ranked = [[d.metadata["source"] for d in db.similarity_search(q, k=K)] for q in queries]
    cache.save()
    return ranked, {"chunks": len(chunks)}


def bm25_rankings(docs: list[tuple[str, str]], queries: list[str]) -> list[list[str]]:
    """BM25 alone (bm25s defaults, English stopwords), one entry per whole document."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([t for _, t in docs], stopwords="en", show_progress=False), show_progress=False)
    found, _ = retriever.retrieve(
        bm25s.tokenize(queries, stopwords="en", show_progress=False), k=K, show_progress=False, n_threads=1
    )
    return [[docs[int(i)][0] for i in row] for row in found]


# ------------------------------------------------------------------------------------------ runs


def _langchain_installed() -> bool:
    import importlib.util

    mods = ("langchain_text_splitters", "langchain_chroma", "langchain_huggingface")
    if all(importlib.util.find_spec(m) for m in mods):
        return True
    _say("LangChain left out: pip install langchain-text-splitters langchain-huggingface langchain-chroma")
    return False


def _langchain_embedder(embedder):
    return embedder if os.environ.get("BENCH_LANGCHAIN_EMBEDDER") == "llmops" else None


def run_stackoverflow(embedder, tmp: Path, langchain: bool = True, **retriever_kw) -> dict:
    threads = so_threads(SO_THREADS)
    folder = tmp / "so"
    folder.mkdir()
    for t in threads:
        (folder / (t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt")).write_text(t["answers"], encoding="utf-8")
    source_of = {"so/" + t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt": t["link"] for t in threads}
    queries = [t["query"] for t in threads]
    expected = [t["link"] for t in threads]
    settings = llmops_settings(tmp, tmp)
    store, lexical, built = llmops_index(settings, embedder, [str(folder)], "stackoverflow")
    embedder.cache.save()
    per: dict[str, dict[str, np.ndarray]] = {}
    for mode in ("hybrid", "vector", "lexical"):
        t0 = time.perf_counter()
        ranked = llmops_rankings(settings, store, lexical, embedder, "stackoverflow", queries, mode, **retriever_kw)
        per[f"llmops-{mode}"] = source_metrics([[source_of.get(s, s) for s in r] for r in ranked], expected)
        _say(f"stackoverflow llmops {mode}: {time.perf_counter() - t0:.0f} s")
    embedder.cache.save()
    docs = [(t["link"], t["answers"]) for t in threads]
    per["bm25-alone"] = source_metrics(bm25_rankings(docs, queries), expected)
    lc_info = {}
    langchain = langchain and _langchain_installed()
    if langchain:
        t0 = time.perf_counter()
        ranked, lc_info = langchain_rankings(docs, queries, "stackoverflow", _langchain_embedder(embedder))
        per["langchain"] = source_metrics(ranked, expected)
        _say(f"stackoverflow langchain: {time.perf_counter() - t0:.0f} s")
    out = {
        "threads": len(threads),
        "llmops_chunks": built["chunks"],
        "langchain_chunks": lc_info.get("chunks"),
        "settings": {
            "chunking": settings.chunking.model_dump(),
            "retrieval": {**settings.retrieval.model_dump(), **retriever_kw},
        },
        "systems": {name: summary(m) for name, m in per.items()},
    }
    if langchain:
        out["paired_llmops_hybrid_minus_langchain"] = {
            m: {
                "diff": round(float((per["llmops-hybrid"][m] - per["langchain"][m]).mean()), 4),
                "ci95": bootstrap_ci(per["llmops-hybrid"][m] - per["langchain"][m]),
            }
            for m in ("hit@1", "hit@5", "mrr@10")
        }
    return out


def run_airflow_docs(embedder, tmp: Path, langchain: bool = True, **retriever_kw) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.integration.airflow_docs_questions import QUESTIONS

    queries = [q for q, _ in QUESTIONS]
    expected = [f"airflow-docs/{p}" for _, p in QUESTIONS]
    settings = llmops_settings(tmp, AIRFLOW_DOCS.parent)
    store, lexical, built = llmops_index(settings, embedder, [str(AIRFLOW_DOCS)], "afdocs")
    per = {}
    for mode in ("hybrid", "vector", "lexical"):
        ranked = llmops_rankings(settings, store, lexical, embedder, "afdocs", queries, mode, **retriever_kw)
        per[f"llmops-{mode}"] = source_metrics(ranked, expected)
    embedder.cache.save()
    if langchain and _langchain_installed():
        files = sorted(p for p in AIRFLOW_DOCS.rglob("*") if p.is_file())
        docs = [
            (f"airflow-docs/{p.relative_to(AIRFLOW_DOCS).as_posix()}", p.read_text(encoding="utf-8", errors="replace"))
            for p in files
        ]
        lc = langchain_rankings(docs, queries, "afdocs", _langchain_embedder(embedder))[0]
        per["langchain"] = source_metrics(lc, expected)
    return {
        "questions": len(queries),
        "llmops_chunks": built["chunks"],
        "systems": {name: summary(m, with_ci=False) for name, m in per.items()},
    }


def main() -> dict:
    from llmops_cli import wiring
    from llmops_cli.settings import load_settings

    RESULTS.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k.startswith("LLMOPS_EMB")}
    embedder = cached_embedder(wiring.build_embedder(load_settings(environ=env).settings.embedder))
    res: dict = {"model": embedder.identity, "langchain_embedder": os.environ.get("BENCH_LANGCHAIN_EMBEDDER", "hf")}
    parts = os.environ.get("BENCH_RETRIEVAL_PARTS", "stackoverflow,airflow_docs").split(",")
    out = RESULTS / "bench_retrieval.json"
    with tempfile.TemporaryDirectory() as tmp:
        if "stackoverflow" in parts and SO_THREADS.is_file():
            (Path(tmp) / "a").mkdir()
            res["stackoverflow"] = run_stackoverflow(embedder, Path(tmp) / "a")
            out.write_text(json.dumps(res, indent=2))  # a part's results are kept if a later part fails
        elif "stackoverflow" in parts:
            _say(f"skipped Stack Overflow: {SO_THREADS} is absent")
        if "airflow_docs" in parts and AIRFLOW_DOCS.is_dir():
            (Path(tmp) / "b").mkdir()
            res["airflow_docs"] = run_airflow_docs(embedder, Path(tmp) / "b")
        elif "airflow_docs" in parts:
            _say(f"skipped the Airflow docs: {AIRFLOW_DOCS} is absent")
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
