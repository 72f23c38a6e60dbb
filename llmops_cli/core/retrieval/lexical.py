"""Lexical BM25 index over a collection's chunks, persisted beside the project state.

Building uses bm25s to compute the BM25 weights; they are saved in our own format (the CSC score matrix as
.npy files, vocabulary, stopwords, chunk ids), so that searching needs only numpy: importing bm25s pulls in
scipy and costs a noticeable part of a query's time budget.

The index is rebuilt when the collection's generation (bumped by every ingest that changes it) differs
from the one it was built at, or when it was written in another format; the rebuild reads the chunk texts
back from the store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

import numpy as np

from llmops_cli.adapters.vectorstores.base import VectorStore
from llmops_cli.core import write_steps
from llmops_cli.core.collection_meta import GENERATION_KEY
from llmops_cli.core.documents import indexed_text

FORMAT = 2
_FILES = ("meta.json", "ids.json", "vocab.json", "stopwords.json", "data.npy", "indices.npy", "indptr.npy")

# bm25s.tokenize's defaults (lowercase, this pattern); the stopwords come from the index folder, so a query
# is split exactly as the chunks were when the index was built.
_WORDS = re.compile(r"(?u)\b\w\w+\b").findall


def tokenize(text: str, stopwords: Collection[str]) -> list[str]:
    return [w for w in _WORDS(text.lower()) if w not in stopwords]


class LexicalIndex:
    def __init__(self, folder: Path, store: VectorStore, collection: str):
        self.folder = Path(folder)
        self.store = store
        self.collection = collection
        self._loaded = False
        self._ids: list[str] = []
        self._vocab: dict[str, int] = {}
        self._stopwords: frozenset[str] = frozenset()

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

    def build(self) -> int:
        """(Re)build from the store; returns the number of chunks indexed."""
        import bm25s

        gen = self._generation()
        hits = self.store.get(self.collection, include_documents=True)
        ids = [h.id for h in hits]
        stopwords = sorted(bm25s.stopwords.STOPWORDS_EN)
        stop = frozenset(stopwords)
        # An empty (or all-stopword) chunk stays an empty row: it counts in num_docs and the average length,
        # as with bm25s.tokenize, and no query can match it.
        tokens = [tokenize(indexed_text(str(h.metadata.get("heading") or ""), h.text), stop) for h in hits]
        # lucene (the default) has no non-occurrence term: a query's score is the sum of its words' columns
        model = bm25s.BM25(method="lucene")
        if any(tokens):
            model.index(tokens, show_progress=False)
            scores, vocab = model.scores, model.vocab_dict
            data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
        else:  # bm25s cannot index a corpus without a single token
            data, indices, indptr, vocab = np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), {}
        # bm25s appends "" past the matrix's last column (for queries with no known word); our tokenizer never
        # yields it and looking it up would index out of indptr.
        vocab = {w: int(i) for w, i in vocab.items() if w and i < len(indptr) - 1}
        meta = {"format": FORMAT, "generation": gen, "count": len(ids),
                "bm25": {"method": model.method, "k1": model.k1, "b": model.b, "delta": model.delta}}

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=self.folder.parent))
        try:
            for name, arr in (("data", data), ("indices", indices), ("indptr", indptr)):
                np.save(tmp / f"{name}.npy", np.asarray(arr), allow_pickle=False)
            (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            (tmp / "stopwords.json").write_text(json.dumps(stopwords, ensure_ascii=False), encoding="utf-8")
            (tmp / "ids.json").write_text(json.dumps(ids))
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
        return len(ids)

    def _load(self) -> None:
        meta = self._meta()
        f = self.folder
        if (meta.get("format") != FORMAT or meta.get("generation") != self._generation()
                or not all((f / name).is_file() for name in _FILES)):
            self.build()
        self._ids = json.loads((f / "ids.json").read_text())
        self._vocab = json.loads((f / "vocab.json").read_text(encoding="utf-8"))
        self._stopwords = frozenset(json.loads((f / "stopwords.json").read_text(encoding="utf-8")))
        self._data = np.load(f / "data.npy", allow_pickle=False)
        self._indices = np.load(f / "indices.npy", allow_pickle=False)
        self._indptr = np.load(f / "indptr.npy", allow_pickle=False)
        self._loaded = True

    def search(self, text: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; only positive scores."""
        if not self._loaded:
            self._load()
        # a word repeated in the query counts each time, as in bm25s
        cols = [self._vocab[w] for w in tokenize(text, self._stopwords) if w in self._vocab]
        if k <= 0 or not cols or not self._ids:
            return []
        spans = [slice(self._indptr[c], self._indptr[c + 1]) for c in cols]
        scores = np.zeros(len(self._ids), dtype=self._data.dtype)
        # added in query order in the index's float32, so scores equal bm25s's to the bit
        np.add.at(scores, np.concatenate([self._indices[s] for s in spans]),
                  np.concatenate([self._data[s] for s in spans]))
        hit = np.flatnonzero(scores > 0)
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        hit = hit[np.argsort(-scores[hit], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in hit.tolist()]
