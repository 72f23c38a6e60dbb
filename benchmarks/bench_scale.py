"""Scale benchmark: a synthetic corpus of small Markdown files (20,000 by default; ``--quick``: 2,000;
``--files=N``) ingested into a real embedded Chroma store, each step in a fresh process as a CLI command runs:

- first ingest, unchanged re-ingest, and 10 changed files re-ingested (ingest core, then the lexical index);
- the lexical index after the change: incremental ``update()`` against a full ``build()`` (the previous behaviour)
  on the same collection, both from the same pre-change index; their search results must agree;
- the first query after the change (a fresh process: open the store, load the index, search), and one that finds
  the index behind the collection;
- chunking a 20 MB Markdown file (``--quick``: 2 MB; ``--chunk-mb=N``): wall time and peak RSS above the baseline,
  in a child process;
- peak RSS of each step's process.

The embedder is the tests' bag-of-words fake (tests/support/fakes.py): the targets are "under 2 s plus the changed
files' embedding time", so embedding is kept out of the figures (10 files are ~10 chunks: ~0.1 s with the bundled
model). Results: benchmarks/results/bench_scale.json.

    python -m benchmarks scale [--quick] [--files=N] [--chunk-mb=N]     (or: python -m benchmarks.bench_scale ...)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

WORDS = (
    "dag task operator sensor pool retry schedule trigger executor worker queue backfill catchup xcom "
    "connection variable hook provider plugin timetable dataset asset deferrable triggerer callback sla "
    "timeout priority weight branch group mapping dynamic template macro param secret backend logging"
).split()

CHUNKING_CHILD = r"""
import json, random, resource, sys, time
from llmops_cli.adapters.embedders.hf_tokens import HFTokenCounter
from llmops_cli.adapters.embedders.model_files import bundled_model_path
from llmops_cli.core.chunking.select import ChunkerSet
from llmops_cli.core.documents import Document
size = int(sys.argv[1])
rnd = random.Random(11)
vocab = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 10))) for _ in range(5000)]
parts, n, i = [], 0, 0
while n < size:
    s = f"## Section {i}\n\n" + "\n\n".join(" ".join(rnd.choice(vocab) for _ in range(rnd.randint(20, 120))) + "."
                                          for _ in range(rnd.randint(1, 6))) + "\n\n"
    parts.append(s); n += len(s); i += 1
text = "".join(parts)[:size]
cs = ChunkerSet("auto", HFTokenCounter(bundled_model_path()), 200, 30)
cs.split(Document("warm", "# a\n\nwarm up"))
# current, not the peak so far
base = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
t0 = time.perf_counter()
pieces = cs.split(Document("big", text, format="markdown"))
print(json.dumps({"chars": len(text), "chunks": len(pieces), "seconds": time.perf_counter() - t0,
                  "peak_above_baseline_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""


def _page(i: int, rnd: random.Random, salt: str = "") -> str:
    body = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(60, 110)))
    return f"# Page {i}\n\nTopic w{i} {salt}. {body}.\n"


def _corpus(root: Path, n: int) -> None:
    rnd = random.Random(1)
    for i in range(n):
        d = root / f"d{i // 500:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"p{i:05d}.md").write_text(_page(i, rnd), encoding="utf-8")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _args(argv: list[str]) -> tuple[int, bool, int]:
    quick = "--quick" in argv or os.environ.get("LLMOPS_BENCH_QUICK") == "1"
    n = 2000 if quick else 20000
    mb = 2 if quick else 20
    for a in argv:  # --files=N, --chunk-mb=N (one word each: `python -m benchmarks` takes bare words for names)
        if a.startswith("--files="):
            n = int(a.split("=", 1)[1])
        elif a.startswith("--chunk-mb="):
            mb = int(a.split("=", 1)[1])
    return n, quick, mb


# One step of the benchmark in a fresh process, as the CLI runs it (a process per command: Chroma's in-process state
# after a big write would otherwise slow the next one). Prints its own timings as JSON.
STEP_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from llmops_cli.adapters.vectorstores.chroma import ChromaStore
from llmops_cli.core.retrieval.lexical import LexicalIndex
step, tmp = sys.argv[1], Path(sys.argv[2])
out = {}
if step == "query":
    store = ChromaStore.embedded(tmp / "store", read_only=True)
    t1 = time.perf_counter()
    idx = LexicalIndex(tmp / "lexical" / "scale", store, "scale")
    hits = idx.search(sys.argv[3], 10)
    out.update(search_s=time.perf_counter() - t1, hits=[h for h, _ in hits], mode=idx.last_update.get("mode"))
else:
    from llmops_cli.core.ingest import IngestOptions, ingest
    from tests.support.fakes import FakeEmbedder
    store = ChromaStore.embedded(tmp / "store")
    lex = LexicalIndex(tmp / "lexical" / "scale", store, "scale")
    t1 = time.perf_counter()
    if step == "rebuild":
        out["lexical_s"] = (lex.build(), time.perf_counter() - t1)[1]
    else:
        rep = ingest([str(tmp / "corpus")], embedder=FakeEmbedder(), store=store,
                     opts=IngestOptions(collection="scale", chunk_size=200, chunk_overlap=30, source_root=str(tmp)))
        t2 = time.perf_counter()
        if rep.changed_anything:
            lex.update()
        out.update(ingest_core_s=t2 - t1, lexical_s=time.perf_counter() - t2, lexical=lex.last_update,
                   chunks=rep.chunks_total, changed=len(rep.changed))
out["wall_s"] = time.perf_counter() - t0
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _step(*args: str) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", STEP_CHILD, *args], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"step {args[0]} failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0  # with the interpreter's start and imports, as a CLI run
    return out


def main(argv: list[str] | None = None) -> dict:
    n, quick, mb = _args(sys.argv[1:] if argv is None else argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    res: dict = {
        "files": n,
        "quick": quick,
        "embedder": "fake bag-of-words (embedding time excluded)",
        "note": "each step is a fresh process, as a CLI command; *_s inside it, process_s with start-up",
    }
    try:
        _corpus(tmp / "corpus", n)
        res["first_ingest"] = first = _step("ingest", str(tmp))
        print(f"first ingest of {n} files: {first['process_s']:.1f} s ({first['chunks']} chunks)", file=sys.stderr)
        res["unchanged_reingest"] = _step("ingest", str(tmp))
        assert res["unchanged_reingest"]["lexical"] == {}, "an unchanged re-ingest touched the lexical index"

        rnd = random.Random(2)
        for i in sorted(rnd.sample(range(n), 10)):
            (tmp / "corpus" / f"d{i // 500:03d}" / f"p{i:05d}.md").write_text(
                _page(i, rnd, salt="zanzibar"), encoding="utf-8"
            )
        lexdir = tmp / "lexical" / "scale"
        shutil.copytree(lexdir, tmp / "lexical-before")
        res["changed_10_files"] = changed = _step("ingest", str(tmp))
        assert changed["changed"] == 10 and changed["lexical"]["mode"] == "update", changed
        res["query_after_change"] = q_upd = _step("query", str(tmp), "zanzibar retry")
        shutil.move(lexdir, tmp / "lexical-updated")
        # the previous behaviour on the same collection: every change rebuilt the whole index from the store
        shutil.copytree(tmp / "lexical-before", lexdir)
        res["full_rebuild_after_change"] = full = _step("rebuild", str(tmp))
        q_full = _step("query", str(tmp), "zanzibar retry")
        assert q_upd["hits"] == q_full["hits"] and len(q_upd["hits"]) == 10, "update and rebuild disagree"
        res["lexical_rebuild_over_update"] = full["lexical_s"] / changed["lexical_s"]
        # a query that finds the index behind (a writer killed before it updated it) applies the difference itself
        shutil.rmtree(lexdir)
        shutil.copytree(tmp / "lexical-before", lexdir)
        res["query_on_stale_index"] = stale = _step("query", str(tmp), "zanzibar retry")
        assert stale["hits"] == q_full["hits"]
        for k in ("query_after_change", "query_on_stale_index"):
            res[k].pop("hits")

        out = subprocess.run(
            [sys.executable, "-c", CHUNKING_CHILD, str(mb * 1_000_000)], cwd=REPO, capture_output=True, text=True
        )
        res["chunking_big_markdown"] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (RESULTS / "bench_scale.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
