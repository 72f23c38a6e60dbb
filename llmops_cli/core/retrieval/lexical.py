"""Lexical BM25 index over a collection's chunks, persisted beside the project state.

The index keeps each chunk's term frequencies and length (CSC postings as .npy files, vocabulary, stopwords, chunk
ids) and computes BM25 (Lucene's variant, bm25s's default) when searching, from the collection-wide statistics of
that moment: no precomputed weight depends on the rest of the collection, so a change is applied by dropping the
rows of the chunks that went and appending those that came (``update``), at a cost of the changed chunks'
tokenization plus a few vectorised passes over the postings, instead of re-reading and re-tokenizing every chunk of
the store. Searching needs only numpy: importing bm25s pulls in scipy.

The index follows the collection's generation (bumped by every ingest that changes it): a search or ``update``
finds it behind and applies the difference between the ids it holds and the store's; a missing index, one in an
older format, or one whose files are damaged (checked with a CRC per file) is rebuilt from the store, the damage
reported in one line on stderr.

The store is the only source of truth; this index is a cache of it, kept under data_dir and keyed (by the caller's
folder) by the store's address and the collection, and (in meta.json) by the generation the store records, so any
machine can rebuild it and none reads it stale. With a Chroma server, several processes of one machine may find it
behind at once: a lock file beside the folder lets one of them bring it up to date while the others wait and then
read that result (one rebuild per change of the collection, not one per process). A store that ranks text itself
(hybrid.py) needs no such index: ``update`` then does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from llmops_cli.core import write_steps
from llmops_cli.core.collection_meta import GENERATION_KEY
from llmops_cli.core.documents import indexed_text
from llmops_cli.core.ports import VectorStore
from llmops_cli.core.retrieval.hybrid import searches_text_itself
from llmops_cli.errors import LlmopsError

FORMAT = 3
_ARRAYS = ("data", "indices", "indptr", "doclen")  # data: term frequencies; doclen: tokens per chunk
_JSON = ("ids", "vocab", "stopwords")
_FILES = ("meta.json",) + tuple(f"{n}.json" for n in _JSON) + tuple(f"{n}.npy" for n in _ARRAYS)
# Lucene BM25 as bm25s computes it (method="lucene", k1=1.5, b=0.75)
BM25 = {"method": "lucene", "k1": 1.5, "b": 0.75, "delta": 0.5}
# Above this share of changed chunks a full rebuild is as cheap as applying the difference
REBUILD_SHARE = 0.5
_FETCH_BATCH = 1000

# bm25s.tokenize's defaults (lowercase, this pattern); the stopwords come from the index folder, so a query
# is split exactly as the chunks were when the index was built.
_WORDS = re.compile(r"(?u)\b\w\w+\b").findall


def tokenize(text: str, stopwords: Collection[str]) -> list[str]:
    return [w for w in _WORDS(text.lower()) if w not in stopwords]


class DamagedIndexError(ValueError):
    """The index's files cannot be read or do not fit together."""


class LexicalIndex:
    def __init__(self, folder: Path, store: VectorStore, collection: str):
        self.folder = Path(folder)
        self.store = store
        self.collection = collection
        self._loaded = False
        self._ids: list[str] = []
        self._vocab: dict[str, int] = {}
        self._stopwords: frozenset[str] = frozenset()
        self.last_update: dict[str, int | str] = {}  # what the last build/update did: {"mode", "added", "removed"}

    def _generation(self) -> int | str:
        md = self.store.collection_metadata(self.collection) or {}
        # the ledger's own generation, written with every ledger change: a writer killed before it bumps the
        # collection's generation cannot leave this index stale
        ledger_fn = getattr(self.store, "ledger_generation", None)  # any object with the reads works as a store
        ledger = ledger_fn(self.collection) if ledger_fn else None
        gen = int(md.get(GENERATION_KEY, 0))
        return gen if ledger is None else f"{gen}/{ledger}"

    def _meta(self) -> dict:
        f = self.folder / "meta.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    # --- reading -------------------------------------------------------------------------------------------

    def _read(self) -> dict:
        """Every file of a current-format index, checked against the CRCs in meta.json and against each other.
        Raises DamagedIndexError when they do not hold together."""
        f = self.folder
        try:
            meta = json.loads((f / "meta.json").read_text())
            crc = meta["crc"]
            raw = {}
            for name in _FILES[1:]:
                b = (f / name).read_bytes()
                if zlib.crc32(b) != crc[name]:
                    raise DamagedIndexError(f"{name} does not match its checksum")
                raw[name] = b
            out = {"meta": meta}
            for n in _JSON:
                out[n] = json.loads(raw[f"{n}.json"].decode("utf-8"))
            for n in _ARRAYS:
                out[n] = np.load(io.BytesIO(raw[f"{n}.npy"]), allow_pickle=False)
        except DamagedIndexError:
            raise
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DamagedIndexError(f"{type(e).__name__}: {e}") from e
        ids, vocab, indptr, indices, data, doclen = (
            out["ids"],
            out["vocab"],
            out["indptr"],
            out["indices"],
            out["data"],
            out["doclen"],
        )
        if (
            len(data) != len(indices)
            or not len(indptr)
            or int(indptr[-1]) != len(indices)
            or len(doclen) != len(ids)
            or len(ids) != meta.get("count")
            or (len(indices) and int(indices.max()) >= len(ids))
            or any(not 0 <= i < len(indptr) - 1 for i in vocab.values())
        ):
            raise DamagedIndexError("its files do not fit together")
        return out

    def on_disk(self) -> dict | None:
        """What the index on disk covers, read without (re)building it (for ``collections verify``): generation it
        was built at, the one it should be at, whether its format is current, its chunk ids. None when there is
        none; raises when its files cannot be read or do not fit together (a damaged index)."""
        if searches_text_itself(self.store):
            # the text index is the store's own (PostgreSQL: a generated tsvector column of every row), so it is at
            # the collection's generation and over its ids by construction
            gen = self._generation()
            return {
                "generation": gen,
                "expected_generation": gen,
                "current_format": True,
                "ids": self.store.ids(self.collection),
            }
        meta = self._meta()
        if not meta:
            return None
        if meta.get("format") != FORMAT:
            return {
                "generation": meta.get("generation"),
                "expected_generation": self._generation(),
                "current_format": False,
                "ids": json.loads((self.folder / "ids.json").read_text()),
            }
        got = self._read()
        return {
            "generation": meta.get("generation"),
            "expected_generation": self._generation(),
            "current_format": True,
            "ids": got["ids"],
        }

    # --- writing -------------------------------------------------------------------------------------------

    def build(self) -> int:
        """(Re)build from the store; returns the number of chunks indexed."""
        import bm25s

        gen = self._generation()
        hits = self.store.get(self.collection, include_documents=True)
        stopwords = sorted(bm25s.stopwords.STOPWORDS_EN)
        vocab: dict[str, int] = {}
        rows, cols, tfs, doclen = _postings([_text_of(h) for h in hits], frozenset(stopwords), vocab, 0)
        indices, data, indptr = _csc(
            np.asarray(cols, np.int64), np.asarray(rows, np.int32), np.asarray(tfs, np.float32), len(vocab)
        )
        self._write(gen, [h.id for h in hits], vocab, stopwords, data, indices, indptr, np.asarray(doclen, np.int32))
        self.last_update = {"mode": "build", "added": len(hits), "removed": 0}
        return len(hits)

    def update(self) -> int:
        """Bring the index to the store's current content, applying only the difference when it can: the chunks
        gone are dropped and the chunks new are tokenized and appended (a chunk's id is derived from its text, so an
        id present in both holds the same text). Rebuilds when there is no readable current-format index or most of
        the collection changed. Returns the number of chunks indexed (0 for a store that ranks text itself: it has no
        such index)."""
        if searches_text_itself(self.store):
            self.last_update = {"mode": "in-store", "added": 0, "removed": 0}
            return 0
        return len(self._current()["ids"])

    def _current(self) -> dict:
        """The index's contents (see _read), brought up to date first."""
        gen = self._generation()
        cur = self._read_current_format()
        if cur is not None and cur["meta"].get("generation") == gen:
            self.last_update = {"mode": "current", "added": 0, "removed": 0}
            return cur
        try:
            return self._refresh(cur, gen)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise LlmopsError(
                f"the lexical index of collection {self.collection!r} cannot be written under {self.folder.parent} "
                f"({e.strerror})",
                hint="make data_dir (LLMOPS_DATA_DIR) a writable folder, or search without it: --mode vector",
            ) from None

    def _refresh(self, cur: dict | None, gen) -> dict:
        with self._refresh_lock():
            # another process of this machine may have brought it up to date while we waited for the lock
            meta = self._meta_or_none(report=False)
            if meta is not None and meta.get("format") == FORMAT and meta.get("generation") == gen:
                again = self._read_current_format(report=False)
                if again is not None and again["meta"].get("generation") == gen:
                    self.last_update = {"mode": "current", "added": 0, "removed": 0}
                    return again
            if cur is None:
                self.build()
            else:
                self._apply_changes(cur, gen)
            return self._read()

    def _read_current_format(self, *, report: bool = True) -> dict | None:
        """The index on disk when it is in the current format and readable, else None (damage reported)."""
        meta = self._meta_or_none(report=report)
        if meta is None or meta.get("format") != FORMAT:
            return None
        for attempt in (1, 2):
            try:
                return self._read()
            except DamagedIndexError as e:
                # once more first: a writer may have swapped the folder between two of our reads
                if attempt == 2 and report:
                    self._report_damage(e)
        return None

    @contextlib.contextmanager
    def _refresh_lock(self):
        """One process of this machine at a time brings the index up to date (an advisory lock file beside it)."""
        import fcntl

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.folder.parent / f".{self.folder.name}.lock", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _apply_changes(self, cur: dict, gen) -> None:
        # ids only (VectorStore.ids): a store's metadata for every chunk costs ~10x more to read than the change
        lister = getattr(self.store, "ids", None)
        live = (
            lister(self.collection)
            if lister
            else [h.id for h in self.store.get(self.collection, include_documents=False)]
        )
        old_ids: list[str] = cur["ids"]
        held = set(old_ids)
        live_set = set(live)
        added = [i for i in live if i not in held]
        gone = held - live_set
        if len(added) + len(gone) > REBUILD_SHARE * max(len(live), 1):
            self.build()
            return
        keep = np.fromiter((i not in gone for i in old_ids), dtype=bool, count=len(old_ids))
        vocab: dict[str, int] = cur["vocab"]
        texts = []
        for i in range(0, len(added), _FETCH_BATCH):
            texts += [
                _text_of(h)
                for h in self.store.get(self.collection, ids=added[i : i + _FETCH_BATCH], include_documents=True)
            ]
        n_keep = int(keep.sum())
        rows, cols, tfs, doclen = _postings(texts, frozenset(cur["stopwords"]), vocab, n_keep)
        # old postings without the rows that went, rows renumbered; then the new ones, all re-sorted by column
        indptr, indices, data = cur["indptr"], cur["indices"], cur["data"]
        old_cols = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        stay = keep[indices]
        renum = np.cumsum(keep, dtype=np.int64) - 1
        all_cols = np.concatenate([old_cols[stay], np.asarray(cols, np.int64)])
        all_rows = np.concatenate([renum[indices[stay]].astype(np.int32), np.asarray(rows, np.int32)])
        all_tfs = np.concatenate([data[stay], np.asarray(tfs, np.float32)])
        new_indices, new_data, new_indptr = _csc(all_cols, all_rows, all_tfs, len(vocab))
        ids = [i for i, k in zip(old_ids, keep.tolist(), strict=False) if k] + added
        new_doclen = np.concatenate([cur["doclen"][keep], np.asarray(doclen, np.int32)])
        self._write(gen, ids, vocab, cur["stopwords"], new_data, new_indices, new_indptr, new_doclen)
        self.last_update = {"mode": "update", "added": len(added), "removed": len(gone)}

    def _meta_or_none(self, *, report: bool = True) -> dict | None:
        try:
            meta = self._meta()
        except (OSError, ValueError) as e:
            if report:
                self._report_damage(DamagedIndexError(f"meta.json: {e}"))
            return None
        return meta if meta and all((self.folder / n).is_file() for n in _FILES) else None

    def _report_damage(self, e: Exception) -> None:
        # a derived index: rebuilding it loses nothing, so one line says so and the command goes on
        print(
            f"llmops: the lexical index of collection {self.collection!r} at {self.folder} is damaged ({e}); "
            "rebuilding it from the store",
            file=sys.stderr,
            flush=True,
        )

    def _write(
        self, gen, ids: Sequence[str], vocab: dict[str, int], stopwords: Sequence[str], data, indices, indptr, doclen
    ) -> None:
        # bm25s appends "" for queries with no known word; our tokenizer never yields it
        vocab = {w: int(i) for w, i in vocab.items() if w}
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=self.folder.parent))
        try:
            crc = {}
            for name, arr in (("data", data), ("indices", indices), ("indptr", indptr), ("doclen", doclen)):
                np.save(tmp / f"{name}.npy", np.asarray(arr), allow_pickle=False)
            (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            (tmp / "stopwords.json").write_text(json.dumps(list(stopwords), ensure_ascii=False), encoding="utf-8")
            (tmp / "ids.json").write_text(json.dumps(list(ids)))
            for name in _FILES[1:]:
                crc[name] = zlib.crc32((tmp / name).read_bytes())
            meta = {"format": FORMAT, "generation": gen, "count": len(ids), "bm25": BM25, "crc": crc}
            (tmp / "meta.json").write_text(json.dumps(meta))
            old = self.folder.with_name(self.folder.name + f".old-{os.getpid()}")
            if self.folder.exists():
                os.replace(self.folder, old)
                write_steps.step("lexical swap: old index moved aside")
            os.replace(tmp, self.folder)
            write_steps.step("lexical swap: new index in place")
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._loaded = False

    # --- searching -----------------------------------------------------------------------------------------

    def _load(self) -> None:
        got = self._current()
        self._ids, self._vocab = got["ids"], got["vocab"]
        self._stopwords = frozenset(got["stopwords"])
        self._data, self._indices, self._indptr, self._doclen = (
            got["data"],
            got["indices"],
            got["indptr"],
            got["doclen"],
        )
        params = got["meta"].get("bm25", BM25)
        self._k1, self._b = float(params["k1"]), float(params["b"])
        self._avgdl = float(self._doclen.mean()) if len(self._doclen) else 0.0
        # BM25's length normalisation of every document, once per load instead of once per query
        self._norm = self._k1 * ((1 - self._b) + self._b * self._doclen / self._avgdl) if self._avgdl else None
        self._loaded = True

    def search(
        self, text: str, k: int, query_tf: Literal["log", "count"] = "log", min_idf_share: float = 0.2
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; only positive scores.

        ``query_tf`` is how a word repeated in the query counts: "log" (the default) weighs its term by
        1 + ln(times), so a long question that repeats its common words (task, dag, airflow) does not drown its
        rare ones; "count" counts it each time, as bm25s does (measured on the 921 Stack Overflow threads,
        docs/retrieval.md: "log" +0.012 hybrid hit@5, +0.016 lexical hit@5, the Airflow-docs questions no lower).
        A query without repeated words scores the same either way.

        Query words whose idf is below ``min_idf_share`` x the highest idf among the query's words are left out (0
        keeps all): a long question's common words (use, get, airflow) only add noise to its rare ones (Stack Overflow
        hybrid hit@5 +0.008, MRR@10 +0.008 [+0.001, +0.015] over the log weight alone; the Airflow-docs questions
        no lower than before either change). With ``query_tf="count"`` and 0 the scores are bm25s's."""
        if query_tf not in ("log", "count"):
            raise ValueError(f"query_tf {query_tf!r} must be 'log' or 'count'")
        if not self._loaded:
            self._load()
        times = Counter(self._vocab[w] for w in tokenize(text, self._stopwords) if w in self._vocab)
        n = len(self._ids)
        if k <= 0 or not times or not n:
            return []
        df = {c: int(self._indptr[c + 1] - self._indptr[c]) for c in times}
        idf = {c: math.log(1 + (n - d + 0.5) / (d + 0.5)) for c, d in df.items()}
        floor = min_idf_share * max(idf.values())
        scores = np.zeros(n, dtype=np.float32)
        norm = self._norm
        for c, t in times.items():
            s = slice(self._indptr[c], self._indptr[c + 1])
            rows, tf = self._indices[s], self._data[s].astype(np.float64)
            if not len(rows) or idf[c] < floor:
                continue
            weight = float(t) if query_tf == "count" else 1.0 + math.log(t)
            # each word's weights in float32, as bm25s stores them, then summed word by word
            w = (idf[c] * tf / (norm[rows] + tf)).astype(np.float32)
            # a word's postings name each document once, so a plain indexed add is exact (np.add.at, which
            # allows repeats, is several times slower)
            scores[rows] += w if t == 1 else (weight * w).astype(np.float32)
        hit = np.flatnonzero(scores > 0)
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        hit = hit[np.argsort(-scores[hit], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in hit.tolist()]


def _text_of(hit) -> str:
    return indexed_text(str(hit.metadata.get("heading") or ""), hit.text)


def _postings(texts: Sequence[str], stop: frozenset[str], vocab: dict[str, int], first_row: int):
    """(rows, cols, term frequencies, lengths) of ``texts`` as rows ``first_row``...; new words are added to
    ``vocab``. An empty (or all-stopword) text is a row without postings: it counts in the number of chunks and the
    average length, as in bm25s, and no query can match it."""
    rows: list[int] = []
    cols: list[int] = []
    tfs: list[int] = []
    lengths: list[int] = []
    for r, text in enumerate(texts, start=first_row):
        words = tokenize(text, stop)
        lengths.append(len(words))
        for w, n in Counter(words).items():
            c = vocab.get(w)
            if c is None:
                c = vocab[w] = len(vocab)
            rows.append(r)
            cols.append(c)
            tfs.append(n)
    return rows, cols, tfs, lengths


def _csc(cols, rows, values, n_cols: int):
    """Postings sorted by column (rows ascending within one, as they come), and the column pointers."""
    order = np.argsort(cols, kind="stable")
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n_cols), out=indptr[1:])
    return rows[order].astype(np.int32), values[order].astype(np.float32), indptr
