"""Fusion variants (RRF against a convex combination of normalised scores, a title vector list for long questions,
source-level evidence, dense pseudo-relevance feedback) measured on the Stack Overflow threads and the Airflow-docs
questions from one ingest of each (bench_retrieval's parts; vectors from its cache). Each query's vector and BM25
lists (50 candidates, with scores) are computed once; every variant is then a function of those lists, so all are
scored on exactly the same candidates. Parameters are chosen on one half of the Stack Overflow queries (even
index) and reported on the other (odd index) and on all; each variant is paired against the defaults (RRF k 60,
20 candidates per list). Not a bench_* module: `make bench` does not run it. docs/retrieval.md has the figures.

    python -m benchmarks.fusion_variants /tmp/fusion-lists.json          # the lists, once (a minute from the cache)
    python -m benchmarks.fusion_variants report /tmp/fusion-lists.json   # the tables (seconds)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import bench_retrieval as br
from llmops_cli import wiring
from llmops_cli.core.retrieval.fusion import convex_fusion, reciprocal_rank_fusion
from llmops_cli.settings import load_settings
from tests.integration.airflow_docs_questions import QUESTIONS

N = 50


def _lists(store, lex, emb, coll, queries, prf=((3, 0.5),)):
    """Per query: {"vector": [(id, score, source)], "lexical": [...], "title": [...], "prf<m>_<beta>": [...]}."""
    out = []
    tok = emb.tokens
    for q in queries:
        qv = emb.embed_query(q)
        v = store.query(coll, qv, N)
        d = {"vector": [(h.id, h.score, str(h.metadata.get("source"))) for h in v]}
        found = lex.search(q, N)
        src = {h.id: str(h.metadata.get("source")) for h in store.get(coll, ids=[i for i, _ in found])}
        d["lexical"] = [(i, s, src[i]) for i, s in found if i in src]
        title = q.split("\n", 1)[0]
        d["long"] = tok.count([q])[0] > tok.max_tokens
        t = store.query(coll, emb.embed_query(title), N)
        d["title"] = [(h.id, h.score, str(h.metadata.get("source"))) for h in t]
        vecs = store.read_embeddings(coll, [h.id for h in v[:5]])
        for m, beta in prf:
            top = [vecs[h.id] for h in v[:m] if vecs.get(h.id) is not None]
            nq = qv + beta * np.mean(top, axis=0)
            nq = nq / np.linalg.norm(nq)
            p = store.query(coll, nq, N)
            d[f"prf{m}_{beta}"] = [(h.id, h.score, str(h.metadata.get("source"))) for h in p]
        out.append(d)
    return out


def fuse(d, how, cand=20, **p):
    """Sources in fused order for one query's lists."""
    names = p.get("lists", ("vector", "lexical"))
    if p.get("title") and d["long"]:
        names = tuple(names) + ("title",)
    lists = [d[n][:cand] for n in names]
    src = {i: s for lst in lists for i, _, s in lst}
    weights = [p.get("w", {}).get(n, 1.0) for n in names]
    if how == "rrf":
        fused = reciprocal_rank_fusion([[i for i, _, _ in lst] for lst in lists], k=p.get("k", 60), weights=weights)
    else:
        alpha = p["alpha"]
        ws = [alpha if n != "lexical" else 1 - alpha for n in names]
        if p.get("title") and d["long"]:
            ws = [w * (p.get("tw", 0.5) if n == "title" else 1) for w, n in zip(ws, names, strict=True)]
        fused = convex_fusion([[(i, s) for i, s, _ in lst] for lst in lists], ws, norm=how)
    if p.get("src2"):
        # a source's score: its best chunk's plus a share of its second best
        by: dict[str, list[float]] = {}
        for i, s in fused:
            by.setdefault(src[i], []).append(s)
        sc = {k: v[0] + p["src2"] * (v[1] if len(v) > 1 else 0.0) for k, v in by.items()}
        return sorted(sc, key=lambda k: -sc[k])
    return list(dict.fromkeys(src[i] for i, _ in fused))


def metrics(sets, how, **p):
    return br.source_metrics([fuse(d, how, **p) for d in sets["lists"]], sets["expected"])


def main() -> None:
    emb = br.cached_embedder(wiring.build_embedder(load_settings(environ={}).settings.embedder))
    tmp = Path(tempfile.mkdtemp())
    threads = br.so_threads(br.SO_THREADS)
    folder = tmp / "so"
    folder.mkdir()
    for t in threads:
        (folder / (t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt")).write_text(t["answers"], encoding="utf-8")
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    t0 = time.time()
    s = br.llmops_settings(tmp / "a", tmp)
    store, lex, _ = br.llmops_index(s, emb, [str(folder)], "stackoverflow")
    print("so ingest", round(time.time() - t0), file=sys.stderr, flush=True)
    so_lists = _lists(store, lex, emb, "stackoverflow", [t["query"] for t in threads])
    src_of = {"so/" + t["link"].rstrip("/").rsplit("/", 1)[-1] + ".txt": t["link"] for t in threads}
    for d in so_lists:
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = [(i, sc, src_of.get(sr, sr)) for i, sc, sr in v]
    print("so lists", round(time.time() - t0), file=sys.stderr, flush=True)
    s2 = br.llmops_settings(tmp / "b", br.AIRFLOW_DOCS.parent)
    store2, lex2, _ = br.llmops_index(s2, emb, [str(br.AIRFLOW_DOCS)], "afdocs")
    af_lists = _lists(store2, lex2, emb, "afdocs", [q for q, _ in QUESTIONS])
    emb.cache.save()
    sets = {
        "so": {"lists": so_lists, "expected": [t["link"] for t in threads]},
        "af": {"lists": af_lists, "expected": [f"airflow-docs/{p}" for _, p in QUESTIONS]},
    }
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fusion_lists.json")
    out.write_text(json.dumps(sets))
    print("saved", out, round(time.time() - t0), file=sys.stderr, flush=True)


VARIANTS: dict[str, tuple[str, dict]] = {
    "RRF k 60, 20 candidates (default)": ("rrf", {}),
    "vector alone": ("rrf", {"lists": ("vector",)}),
    "vector + title vector list (long questions)": ("rrf", {"lists": ("vector",), "title": True}),
    "RRF + title vector list (long questions)": ("rrf", {"title": True}),
    "RRF + title vector list weight 0.3": ("rrf", {"title": True, "w": {"title": 0.3}}),
    "RRF, source = best + 0.2 x second chunk": ("rrf", {"src2": 0.2}),
    "RRF, source = best + 0.5 x second chunk": ("rrf", {"src2": 0.5}),
    "dense PRF vector list alone (3 chunks, beta 0.5)": ("rrf", {"lists": ("prf3_0.5",)}),
    "RRF of dense PRF vector list + BM25": ("rrf", {"lists": ("prf3_0.5", "lexical")}),
    "RRF, 50 candidates": ("rrf", {"cand": 50}),
    "min-max, vector weight 0.5, 20 candidates": ("minmax", {"alpha": 0.5}),
    "z-score, vector weight 0.5, 20 candidates": ("zscore", {"alpha": 0.5}),
    "min-max, vector weight 0.5, 50 candidates": ("minmax", {"alpha": 0.5, "cand": 50}),
    "z-score, vector weight 0.5, 50 candidates (best on the even half)": ("zscore", {"alpha": 0.5, "cand": 50}),
    "z-score, vector weight 0.4, 50 candidates": ("zscore", {"alpha": 0.4, "cand": 50}),
    "z-score, vector weight 0.35, 50 candidates (best keeping the Airflow docs)": (
        "zscore",
        {"alpha": 0.35, "cand": 50},
    ),
}


def grid(sets: dict) -> None:
    """Convex fusion's parameters chosen on the even half: every (normalisation, candidates, vector weight) by
    hit@5 + MRR@10 there, shown with the odd half and the Airflow docs beside."""
    so, af = sets["so"], sets["af"]
    n = len(so["lists"])
    ev, od = np.arange(0, n, 2), np.arange(1, n, 2)
    rows = []
    for norm in ("minmax", "zscore"):
        for cand in (20, 30, 40, 50):
            for a in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65):
                m, f = metrics(so, norm, alpha=a, cand=cand), metrics(af, norm, alpha=a, cand=cand)
                rows.append(
                    (
                        norm,
                        cand,
                        a,
                        *(float(m[k][i].mean()) for i in (ev, od) for k in ("hit@5", "mrr@10")),
                        float(f["hit@5"].mean()),
                        float(f["mrr@10"].mean()),
                    )
                )
    rows.sort(key=lambda r: -(r[3] + r[4]))
    print("| norm | candidates | vector weight | even hit@5 / MRR@10 | odd hit@5 / MRR@10 | AF hit@5 / MRR@10 |")
    for r in rows[:8]:
        print(
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} / {r[4]:.3f} | {r[5]:.3f} / {r[6]:.3f} "
            f"| {r[7]:.3f} / {r[8]:.3f} |"
        )


def report(path: str) -> None:
    sets = json.loads(Path(path).read_text())
    so, af = sets["so"], sets["af"]
    n = len(so["lists"])
    halves = {"even": np.arange(0, n, 2), "odd": np.arange(1, n, 2), "all": np.arange(n)}
    base = metrics(so, "rrf")
    print(
        "| variant | half | hit@1 | hit@5 | hit@10 | MRR@10 | nDCG@10 | paired hit@5 [95% CI] | paired MRR@10 [95% CI] "
        "| AF hit@5 / MRR@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (how, p) in VARIANTS.items():
        m, a = metrics(so, how, **p), metrics(af, how, **p)
        for h, idx in halves.items():
            cells = [f"{float(m[k][idx].mean()):.3f}" for k in ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10")]
            for k in ("hit@5", "mrr@10"):
                d = (m[k] - base[k])[idx]
                lo, hi = br.bootstrap_ci(d)
                cells.append(f"{float(d.mean()):+.3f} [{lo:+.3f}, {hi:+.3f}]")
            af_cell = f"{float(a['hit@5'].mean()):.3f} / {float(a['mrr@10'].mean()):.3f}" if h == "all" else ""
            print(f"| {name if h == 'even' else ''} | {h} | " + " | ".join(cells) + f" | {af_cell} |", flush=True)
    grid(sets)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        main()
