"""BM25 variants (k1/b, query word weighting, low-idf query words dropped, top-idf query words, RM3 feedback)
measured on the Stack Overflow threads and the Airflow-docs questions from one ingest of each (bench_retrieval's
parts; vectors from its cache, the vector lists computed once and reused, ``LexicalIndex.search`` swapped per
variant). Each variant is paired against the first one. Not a bench_* module: `make bench` does not
run it. docs/retrieval.md has the figures.

    python -m benchmarks.lexical_variants '{"base": {}, "log": {"qtf": "log"}, "rm3": {"rm3": [10, 20, 0.7]}}'
"""

import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks import bench_retrieval as br
from llmops_cli import wiring
from llmops_cli.core.retrieval import lexical as lx
from llmops_cli.core.retrieval.retriever import Retriever
from llmops_cli.settings import load_settings
from tests.integration.airflow_docs_questions import QUESTIONS

VARIANT = {}


def search(self, text, k):
    v = VARIANT
    if not self._loaded:
        self._load()
    words = lx.tokenize(text, self._stopwords)
    qtf = Counter(self._vocab[w] for w in words if w in self._vocab)
    n = len(self._ids)
    if k <= 0 or not qtf or not n:
        return []
    k1, b = v.get("k1", self._k1), v.get("b", self._b)
    norm = k1 * ((1 - b) + b * self._doclen / self._avgdl)
    idfs = {}
    for c in qtf:
        df = int(self._indptr[c + 1] - self._indptr[c])
        idfs[c] = math.log(1 + (n - df + 0.5) / (df + 0.5))

    # query term weight
    def qw(c):
        t = qtf[c]
        mode = v.get("qtf", "raw")
        if mode == "raw":
            return float(t)
        if mode == "log":
            return 1.0 + math.log(t)
        if mode == "cap2":
            return float(min(t, 2))
        if mode == "sat":
            kq = v.get("k3", 1.5)
            return (kq + 1) * t / (kq + t)
        return 1.0

    terms = list(qtf)
    if v.get("min_idf_frac"):
        mx = max(idfs.values())
        terms = [c for c in terms if idfs[c] >= v["min_idf_frac"] * mx] or terms
    if v.get("max_terms") and len(terms) > v["max_terms"]:
        terms = sorted(terms, key=lambda c: -idfs[c] * qw(c))[: v["max_terms"]]
    weights = {c: qw(c) for c in terms}

    def score(weights):
        scores = np.zeros(n, dtype=np.float64)
        for c, w in weights.items():
            s = slice(self._indptr[c], self._indptr[c + 1])
            rows, tf = self._indices[s], self._data[s].astype(np.float64)
            scores[rows] += w * idfs.setdefault(c, 0) * tf / (norm[rows] + tf)
        return scores

    scores = score(weights)
    if v.get("rm3"):
        fb_docs, fb_terms, lam = v["rm3"]
        top = np.argsort(-scores)[:fb_docs]
        top = top[scores[top] > 0]
        if len(top):
            # term distribution of the feedback chunks, weighted by their normalised scores
            ds = scores[top] / scores[top].sum()
            rel = {}
            # scan postings: build per-row tf via indices (CSC): costly over full vocab; use cached row->terms
            rt = self._rowterms
            for r, w in zip(top.tolist(), ds.tolist(), strict=True):
                cols, tfs = rt[r]
                length = tfs.sum() or 1
                for c, t in zip(cols.tolist(), tfs.tolist(), strict=True):
                    rel[c] = rel.get(c, 0.0) + w * t / length
            for c in rel:
                if c not in idfs:
                    df = int(self._indptr[c + 1] - self._indptr[c])
                    idfs[c] = math.log(1 + (n - df + 0.5) / (df + 0.5))
            exp = sorted(rel, key=lambda c: -rel[c] * (idfs[c] if v.get("rm3_idf") else 1))[:fb_terms]
            tot_q = sum(weights.values())
            tot_e = sum(rel[c] for c in exp) or 1
            new = {c: lam * w / tot_q for c, w in weights.items()}
            for c in exp:
                new[c] = new.get(c, 0.0) + (1 - lam) * rel[c] / tot_e
            scores = score(new)
    hit = np.flatnonzero(scores > 0)
    if len(hit) > k:
        hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
    hit = hit[np.argsort(-scores[hit], kind="stable")]
    return [(self._ids[i], float(scores[i])) for i in hit.tolist()]


def rowterms(idx):
    if getattr(idx, "_rowterms", None) is not None:
        return
    if not idx._loaded:
        idx._load()
    n = len(idx._ids)
    cols = np.repeat(np.arange(len(idx._indptr) - 1), np.diff(idx._indptr))
    order = np.argsort(idx._indices, kind="stable")
    r_sorted = idx._indices[order]
    c_sorted = cols[order]
    t_sorted = idx._data[order]
    bounds = np.searchsorted(r_sorted, np.arange(n + 1))
    idx._rowterms = [(c_sorted[bounds[i] : bounds[i + 1]], t_sorted[bounds[i] : bounds[i + 1]]) for i in range(n)]


def main() -> None:
    lx.LexicalIndex.search = search
    _vec: dict = {}
    _orig_vh = Retriever.vector_hits

    def vh(self, text, k, where=None):
        key = (self.collection, text, k)
        if key not in _vec:
            _vec[key] = _orig_vh(self, text, k, where)
        import copy

        return copy.deepcopy(_vec[key])

    Retriever.vector_hits = vh

    variants = json.loads(sys.argv[1])
    emb = br.cached_embedder(wiring.build_embedder(load_settings(environ={}).settings.embedder))
    tmp = Path(tempfile.mkdtemp())
    out = {}
    # SO
    threads = br.so_threads(br.SO_THREADS)
    folder = tmp / "so"
    folder.mkdir()
    for t in threads:
        (folder / (t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt")).write_text(t["answers"], encoding="utf-8")
    source_of = {"so/" + t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt": t["link"] for t in threads}
    sets = {}
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    s = br.llmops_settings(tmp / "a", tmp)
    t0 = time.time()
    store, lex, built = br.llmops_index(s, emb, [str(folder)], "stackoverflow")
    print("so ingest", time.time() - t0, built, file=sys.stderr, flush=True)
    sets["so"] = (
        s,
        store,
        lex,
        "stackoverflow",
        [t["query"] for t in threads],
        [t["link"] for t in threads],
        source_of,
    )

    s2 = br.llmops_settings(tmp / "b", br.AIRFLOW_DOCS.parent)
    store2, lex2, built2 = br.llmops_index(s2, emb, [str(br.AIRFLOW_DOCS)], "afdocs")
    sets["af"] = (
        s2,
        store2,
        lex2,
        "afdocs",
        [q for q, _ in QUESTIONS],
        [f"airflow-docs/{p}" for _, p in QUESTIONS],
        {},
    )
    emb.cache.save()
    for index in (lex, lex2):
        rowterms(index)
    base = {}
    for name, var in variants.items():
        VARIANT.clear()
        VARIANT.update(var)
        res = {}
        for key, (st, sto, lxi, coll, qs, exp, so) in sets.items():
            for mode in ("hybrid", "lexical"):
                t0 = time.time()
                ranked = br.llmops_rankings(st, sto, lxi, emb, coll, qs, mode)
                m = br.source_metrics([[so.get(x, x) for x in r] for r in ranked], exp)
                tag = f"{key}-{mode}"
                if name == "base":
                    base[tag] = m
                r = {k: round(float(v.mean()), 4) for k, v in m.items() if k in ("hit@1", "hit@5", "hit@10", "mrr@10")}
                if name != "base" and key == "so":
                    for mm in ("hit@5", "mrr@10"):
                        d = m[mm] - base[tag][mm]
                        r[f"d_{mm}"] = [round(float(d.mean()), 4)] + br.bootstrap_ci(d)
                res[tag] = r
        out[name] = res
        print(name, json.dumps(res), flush=True)
    emb.cache.save()


if __name__ == "__main__":
    main()
