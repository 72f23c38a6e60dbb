"""LexicalIndex: BM25 scores equal bm25s's, searching needs neither bm25s nor scipy, old folders upgrade."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest

from llmops_cli.core.collection_meta import GENERATION_KEY
from llmops_cli.core.retrieval.lexical import FORMAT, LexicalIndex, tokenize
from tests.support.fakes import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_DOCS = Path("/work/shared/corpora/airflow-docs")

SMALL = [
    "Retry a failed task: set retries and retry_delay on the operator.",
    "Schedule a DAG daily with a cron expression or a timetable.",
    "Task retries use exponential backoff when retry_exponential_backoff is True.",
    "Sensors wait for a condition; in reschedule mode they free the worker slot.",
    "",  # empty chunk
    "the of and a to in",  # only stopwords
    "Die Größe der Warteschlange: naïve café, task_id und DAG-IDs 2024.",
    "Pools limit how many tasks run at once; a task waits for a free slot in its pool.",
    "Backfill runs a DAG over past dates; catchup does it when the DAG is unpaused.",
    "XComs pass small values between tasks; large data belongs in object storage.",
    "A failed task can be cleared from the UI, which makes the scheduler retry it.",
    "Task task task retry retry: repeated words raise the term frequency.",
]
SMALL_QUERIES = [
    "retry failed task",
    "task task",
    "exponential backoff",
    "DAG",
    "größe",
    "NAÏVE Café",
    "the of",
    "",
    "unknownword",
    "free slot pool",
    "schedule daily cron",
    "xcom values",
    "task_id",
    "cleared from the UI",
    "2024",
    "retry retry retry task",
]


def _store(texts: list[str]) -> MemoryStore:
    store = MemoryStore()
    store.ensure_collection("c")
    ids = [f"d{i:05d}" for i in range(len(texts))]  # MemoryStore.get returns ids sorted: same order as texts
    store.upsert("c", ids, np.zeros((len(texts), 2)), texts, [{} for _ in texts])
    return store


def _assert_same_as_bm25s(tmp_path: Path, texts: list[str], queries: list[str], k: int = 10) -> int:
    store = _store(texts)
    idx = LexicalIndex(tmp_path / "lex", store, "c")
    assert idx.build() == len(texts)
    ids = [h.id for h in store.get("c")]
    docs = [f"\n{t}" for t in texts]  # as build() joins the (missing) heading and the text
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    assert ref.scores["num_docs"] == len(ids)
    compared = 0
    for q in queries:
        ours = idx.search(q, k, query_tf="count", min_idf_share=0.0)  # bm25s counts a repeated query word each time
        q_tokens = bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)
        full = ref.get_scores(q_tokens[0]) if q_tokens[0] else np.zeros(len(ids), np.float32)
        _, top = ref.retrieve(q_tokens, k=min(k, len(ids)), show_progress=False, n_threads=0)
        top = [float(s) for s in top[0] if s > 0]
        assert np.allclose([s for _, s in ours], top), q
        # every id carries bm25s's score for that document (holds for tied scores too)
        assert np.allclose([s for _, s in ours], [full[ids.index(i)] for i, _ in ours]), q
        if top:  # above the k-th score the top set is unambiguous
            cut = top[-1]
            assert {i for i, s in ours if s > cut + 1e-6} == {ids[d] for d in np.flatnonzero(full > cut + 1e-6)}, q
            compared += 1
    return compared


def test_tokenize_matches_bm25s():
    stop = set(bm25s.stopwords.STOPWORDS_EN)
    texts = SMALL + ["Ünïcode WORDS, snake_case and x y z 1 22", "\n"]
    assert [tokenize(t, stop) for t in texts] == bm25s.tokenize(
        texts, stopwords="en", return_ids=False, show_progress=False
    )


def test_scores_match_bm25s_on_a_small_built_in_set(tmp_path):
    assert _assert_same_as_bm25s(tmp_path, SMALL, SMALL_QUERIES) >= 10
    assert _assert_same_as_bm25s(tmp_path / "k3", SMALL, SMALL_QUERIES, k=3) >= 10


@pytest.mark.skipif(not AIRFLOW_DOCS.is_dir(), reason=f"{AIRFLOW_DOCS} (the airflow-docs corpus) is not present")
def test_scores_match_bm25s_on_airflow_docs_paragraphs(tmp_path):
    paras = []
    for f in sorted(AIRFLOW_DOCS.rglob("*.rst")):
        paras += [p.strip() for p in f.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 40]
    assert len(paras) > 300
    rnd = random.Random(7)
    queries = [
        "how do I retry a failed task",
        "configure the scheduler heartbeat",
        "connection password secrets backend",
        "dag run timeout",
        "pool slots",
        "deferrable operators triggerer",
        "task task task",
        "kubernetes executor pod",
    ]
    queries += [" ".join(p.split()[:6]) for p in rnd.sample(paras, 22)]
    assert _assert_same_as_bm25s(tmp_path, paras, queries) >= 25


def test_a_repeated_query_word_weighs_one_plus_its_log(tmp_path):
    """The default query weighting: a word said t times weighs 1 + ln(t) times its BM25 term, not t times; a query
    without repeated words scores as bm25s does."""
    idx = LexicalIndex(tmp_path / "lex", _store(SMALL), "c")
    idx.build()
    once = dict(idx.search("retry", 20, min_idf_share=0.0))
    backoff = dict(idx.search("backoff", 20, min_idf_share=0.0))
    both = dict(idx.search("retry retry retry backoff", 20, min_idf_share=0.0))
    counted = dict(idx.search("retry retry retry backoff", 20, query_tf="count", min_idf_share=0.0))
    assert once and backoff and set(both) == set(once) | set(backoff)
    for cid, score in both.items():
        assert score == pytest.approx((1 + math.log(3)) * once.get(cid, 0.0) + backoff.get(cid, 0.0), rel=1e-5)
        assert counted[cid] == pytest.approx(3 * once.get(cid, 0.0) + backoff.get(cid, 0.0), rel=1e-5)
    assert dict(idx.search("exponential backoff", 20)) == dict(idx.search("exponential backoff", 20, query_tf="count"))
    with pytest.raises(ValueError, match="query_tf"):
        idx.search("retry", 3, query_tf="twice")


def test_query_words_far_more_common_than_the_rarest_are_left_out(tmp_path):
    """A word in every chunk (airflow) next to a rare one (backoff): with the default share the common word adds
    nothing; with 0 it counts, as in bm25s."""
    texts = [f"airflow chunk number {i} about scheduling" for i in range(19)] + ["airflow retry backoff"]
    idx = LexicalIndex(tmp_path / "lex", _store(texts), "c")
    idx.build()
    rare = dict(idx.search("backoff", 30))
    assert len(rare) == 1
    assert dict(idx.search("airflow backoff", 30)) == rare  # airflow's idf is below 0.2 x backoff's
    both = dict(idx.search("airflow backoff", 30, min_idf_share=0.0))
    assert len(both) == 20 and both[next(iter(rare))] > rare[next(iter(rare))]
    alone = dict(idx.search("airflow", 30))
    assert len(alone) == 20 and alone == dict(idx.search("airflow", 30, min_idf_share=0.0))  # its own highest


def test_searching_a_built_index_imports_neither_bm25s_nor_scipy(tmp_path):
    folder = tmp_path / "lex"
    idx = LexicalIndex(folder, _store(SMALL), "c")
    idx.build()
    expected = idx.search("retry failed task", 5)
    assert expected
    child = f"""
import json, sys
from llmops_cli.core.retrieval.lexical import LexicalIndex

class Store:  # the index is current: search must not rebuild
    def collection_metadata(self, name): return {{}}
    def get(self, *a, **kw): raise AssertionError("rebuilt")

found = LexicalIndex({str(folder)!r}, Store(), "c").search("retry failed task", 5)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("bm25s", "scipy"))
print(json.dumps({{"found": found, "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert res["heavy"] == []
    assert [tuple(r) for r in res["found"]] == expected


def _old_format_folder(folder: Path, texts: list[str], ids: list[str]) -> None:
    """What the previous LexicalIndex wrote: bm25s.save under bm25/, meta.json without a format."""
    model = bm25s.BM25()
    model.index(bm25s.tokenize([f"\n{t}" for t in texts], stopwords="en", show_progress=False), show_progress=False)
    model.save(str(folder / "bm25"), show_progress=False)
    (folder / "ids.json").write_text(json.dumps(ids))
    (folder / "meta.json").write_text(json.dumps({"generation": 0, "count": len(ids)}))


def test_an_old_format_folder_is_rebuilt_transparently(tmp_path):
    store = _store(SMALL)
    folder = tmp_path / "lex"
    _old_format_folder(folder, SMALL, [h.id for h in store.get("c")])
    idx = LexicalIndex(folder, store, "c")
    found = idx.search("retry failed task", 3)
    assert found and found[0][0] == "d00000"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == FORMAT and meta["count"] == len(SMALL) and meta["bm25"]["k1"] == 1.5
    assert not (folder / "bm25").exists()
    assert json.loads((folder / "stopwords.json").read_text()) == sorted(bm25s.stopwords.STOPWORDS_EN)


def test_a_folder_missing_a_file_is_rebuilt(tmp_path):
    store = _store(SMALL)
    LexicalIndex(tmp_path / "lex", store, "c").build()
    (tmp_path / "lex" / "vocab.json").unlink()
    assert LexicalIndex(tmp_path / "lex", store, "c").search("sensors", 2)[0][0] == "d00003"


def test_a_new_generation_rebuilds(tmp_path):
    store = _store(SMALL)
    LexicalIndex(tmp_path / "lex", store, "c").build()
    store.upsert("c", ["z1"], np.zeros((1, 2)), ["zebra crossing"], [{"heading": "Zoo"}])
    assert LexicalIndex(tmp_path / "lex", store, "c").search("zebra", 2) == []  # generation unchanged: stale index
    store.set_collection_metadata("c", {GENERATION_KEY: 1})
    idx = LexicalIndex(tmp_path / "lex", store, "c")
    assert [i for i, _ in idx.search("zoo zebra", 2)] == ["z1"]  # the heading is indexed too
    assert json.loads((tmp_path / "lex" / "meta.json").read_text())["generation"] == 1


@pytest.mark.parametrize("texts", [[], ["", "the and of"]])
def test_collections_without_any_word(tmp_path, texts):
    idx = LexicalIndex(tmp_path / "lex", _store(texts), "c")
    assert idx.build() == len(texts)
    assert idx.search("anything the", 5) == []
    assert json.loads((tmp_path / "lex" / "meta.json").read_text())["count"] == len(texts)


def test_k_limits_and_orders_results(tmp_path):
    idx = LexicalIndex(tmp_path / "lex", _store(SMALL), "c")
    found = idx.search("task retry", 3)
    assert len(found) == 3 and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert all(isinstance(i, str) and isinstance(s, float) and s > 0 for i, s in found)
    assert idx.search("task retry", 0) == []
    assert len(idx.search("task retry", 100)) < len(SMALL)  # only documents with a positive score


class _CountingStore(MemoryStore):
    """Records how many chunk texts each get() returned (what the index had to read back and tokenize)."""

    def __init__(self):
        super().__init__()
        self.texts_read = 0
        self.listings = 0  # get() of the whole collection (every chunk's metadata: slow on a real store)

    def get(self, name, **kw):
        hits = super().get(name, **kw)
        if kw.get("include_documents", True):
            self.texts_read += len(hits)
        if kw.get("ids") is None:
            self.listings += 1
        return hits

    def ids(self, name):
        return [h.id for h in MemoryStore.get(self, name, include_documents=False)]


def _bump(store: MemoryStore) -> None:
    md = store.collection_metadata("c")
    store.set_collection_metadata("c", {GENERATION_KEY: int(md.get(GENERATION_KEY, 0)) + 1})


def test_a_change_is_applied_incrementally_and_scores_equal_a_full_rebuild(tmp_path):
    store = _CountingStore()
    store.ensure_collection("c")
    rnd = random.Random(3)
    vocab = [f"w{i}" for i in range(300)] + ["retry", "task", "sensor", "pool"]
    texts = {f"d{i:05d}": " ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 30))) for i in range(400)}
    store.upsert("c", list(texts), np.zeros((len(texts), 2)), list(texts.values()), [{} for _ in texts])
    idx = LexicalIndex(tmp_path / "lex", store, "c")
    idx.build()
    store.texts_read = store.listings = 0
    # 10 chunks go, 12 come (some with words the index has never seen), one under a heading
    store.delete("c", [f"d{i:05d}" for i in range(0, 100, 10)])
    new = {f"n{i:02d}": f"zebra{i} retry task " + " ".join(rnd.choice(vocab) for _ in range(10)) for i in range(12)}
    store.upsert(
        "c",
        list(new),
        np.zeros((12, 2)),
        list(new.values()),
        [{"heading": "Quokka"} if i == 0 else {} for i in range(12)],
    )
    _bump(store)
    assert idx.update() == 402
    assert idx.last_update == {"mode": "update", "added": 12, "removed": 10}
    assert store.texts_read == 12 and store.listings == 0  # only the new chunks were read back, and the ids listed
    assert set(json.loads((tmp_path / "lex" / "ids.json").read_text())) == {
        h.id for h in store.get("c", include_documents=False)
    }
    ref = LexicalIndex(tmp_path / "ref", store, "c")
    ref.build()
    for q in ["retry task", "zebra3", "quokka", "w1 w2 w3", "sensor pool retry", "w299 zebra11", "nothing-here"]:
        got, want = LexicalIndex(tmp_path / "lex", store, "c").search(q, 20), ref.search(q, 20)
        assert [i for i, _ in got] == [i for i, _ in want] or sorted(got) == sorted(want), q
        assert np.allclose([s for _, s in got], [s for _, s in want]), q
    assert idx.update() == 402 and idx.last_update["mode"] == "current"  # same generation: nothing to do


def test_a_query_after_a_change_updates_rather_than_rebuilds(tmp_path):
    store = _CountingStore()
    store.ensure_collection("c")
    store.upsert(
        "c", [f"d{i}" for i in range(50)], np.zeros((50, 2)), [f"word{i} common" for i in range(50)], [{}] * 50
    )
    LexicalIndex(tmp_path / "lex", store, "c").build()
    store.upsert("c", ["z"], np.zeros((1, 2)), ["zebra common"], [{}])
    _bump(store)
    store.texts_read = 0
    assert LexicalIndex(tmp_path / "lex", store, "c").search("zebra", 3)[0][0] == "z"
    assert store.texts_read == 1


def test_most_of_the_collection_changed_is_a_rebuild(tmp_path):
    store = _store(SMALL)
    idx = LexicalIndex(tmp_path / "lex", store, "c")
    idx.build()
    store.delete("c", [h.id for h in store.get("c")][:8])
    _bump(store)
    idx.update()
    assert idx.last_update["mode"] == "build"


@pytest.mark.parametrize("damage", ["garbage array", "flipped byte", "truncated json", "garbage meta", "empty file"])
def test_a_damaged_index_is_rebuilt_with_one_line_on_stderr(tmp_path, capsys, damage):
    store = _store(SMALL)
    folder = tmp_path / "lex"
    LexicalIndex(folder, store, "c").build()
    expected = LexicalIndex(folder, store, "c").search("retry failed task", 3)
    capsys.readouterr()
    if damage == "garbage array":
        (folder / "indptr.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "flipped byte":  # still a valid .npy: only the checksum tells
        b = bytearray((folder / "data.npy").read_bytes())
        b[-1] ^= 0x40
        (folder / "data.npy").write_bytes(bytes(b))
    elif damage == "truncated json":
        (folder / "vocab.json").write_text((folder / "vocab.json").read_text()[:50])
    elif damage == "garbage meta":
        (folder / "meta.json").write_bytes(b"\x00\xff{")
    else:
        (folder / "ids.json").write_bytes(b"")
    assert LexicalIndex(folder, store, "c").search("retry failed task", 3) == expected
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lexical index" in err[0] and "damaged" in err[0] and "rebuilding" in err[0]
    # rebuilt: the next search is quiet
    assert LexicalIndex(folder, store, "c").search("retry failed task", 3) == expected
    assert capsys.readouterr().err == ""


def test_update_of_a_damaged_index_rebuilds(tmp_path, capsys):
    store = _store(SMALL)
    folder = tmp_path / "lex"
    LexicalIndex(folder, store, "c").build()
    (folder / "doclen.npy").write_bytes(b"junk")
    store.upsert("c", ["z1"], np.zeros((1, 2)), ["zebra"], [{}])
    _bump(store)
    idx = LexicalIndex(folder, store, "c")
    assert idx.update() == len(SMALL) + 1 and idx.last_update["mode"] == "build"
    assert "damaged" in capsys.readouterr().err
    assert idx.search("zebra", 1)[0][0] == "z1"


def test_processes_finding_the_index_behind_rebuild_it_once(tmp_path):
    """Several readers of one machine that find the cache behind the store (a Chroma server changed by another
    machine) bring it up to date once: the others wait on the lock and then read that result."""
    import threading
    import time

    store = _store(SMALL)
    full_reads = []
    real_get = store.get

    def counting_get(name, **kw):
        if kw.get("include_documents", True) and kw.get("ids") is None:
            full_reads.append(1)
            time.sleep(0.2)  # a slow store: the others arrive while the first one builds
        return real_get(name, **kw)

    store.get = counting_get
    indexes = [LexicalIndex(tmp_path / "lex", store, "c") for _ in range(4)]
    threads = [threading.Thread(target=ix.update) for ix in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(full_reads) == 1
    assert sorted(ix.last_update["mode"] for ix in indexes) == ["build", "current", "current", "current"]
    assert all(ix.search("retry failed task", 3) == indexes[0].search("retry failed task", 3) for ix in indexes)


def test_a_store_that_ranks_text_itself_gets_no_local_index(tmp_path):
    class TextRankingStore(MemoryStore):
        def hybrid_query(self, name, text, embedding, n, where=None, *, rrf_k=60):
            return []

    store = TextRankingStore()
    store.ensure_collection("c")
    ix = LexicalIndex(tmp_path / "lex", store, "c")
    assert ix.update() == 0 and ix.last_update["mode"] == "in-store"
    assert not (tmp_path / "lex").exists()


def test_an_index_folder_that_cannot_be_written_is_one_error_naming_it_and_the_way_out(tmp_path, monkeypatch):
    # a read-only data_dir (a worker's read-only root filesystem) made a search of a server store an internal error
    # (PermissionError: [Errno 1] Operation not permitted, exit 1)
    import errno

    from llmops_cli.errors import LlmopsError

    def read_only(*_a, **_k):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    idx = LexicalIndex(tmp_path / "lex" / "c", _store(SMALL), "c")
    with pytest.raises(LlmopsError) as e:
        idx.search("retry", 5)
    assert type(e.value) is LlmopsError and "lexical index of collection 'c'" in e.value.message
    assert str(tmp_path / "lex") in e.value.message and "Read-only file system" in e.value.message
    assert "LLMOPS_DATA_DIR" in e.value.hint and "--mode vector" in e.value.hint
