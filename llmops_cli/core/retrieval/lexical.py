"""Lexical BM25 index over a collection's chunks (bm25s), persisted beside the project state.

The index is rebuilt when the collection's generation (bumped by every ingest that changes it) differs
from the one it was built at; the rebuild reads the chunk texts back from the store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from llmops_cli.adapters.vectorstores.base import VectorStore

GENERATION_KEY = "llmops_generation"


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False)


class LexicalIndex:
    def __init__(self, folder: Path, store: VectorStore, collection: str):
        self.folder = Path(folder)
        self.store = store
        self.collection = collection
        self._model = None
        self._ids: list[str] = []

    def _generation(self) -> int:
        md = self.store.collection_metadata(self.collection) or {}
        return int(md.get(GENERATION_KEY, 0))

    def _meta(self) -> dict:
        f = self.folder / "meta.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    def build(self) -> int:
        """(Re)build from the store; returns the number of chunks indexed."""
        import bm25s

        gen = self._generation()
        hits = self.store.get(self.collection, include_documents=True)
        ids = [h.id for h in hits]
        texts = [f"{h.metadata.get('heading', '')}\n{h.text}" for h in hits]
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=self.folder.parent))
        try:
            if texts:
                model = bm25s.BM25()
                model.index(_tokenize(texts), show_progress=False)
                model.save(str(tmp / "bm25"), show_progress=False)
            (tmp / "ids.json").write_text(json.dumps(ids))
            (tmp / "meta.json").write_text(json.dumps({"generation": gen, "count": len(ids)}))
            old = self.folder.with_name(self.folder.name + f".old-{os.getpid()}")
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._model = None
        return len(ids)

    def _load(self) -> None:
        import bm25s

        if self._meta().get("generation") != self._generation() or not (self.folder / "ids.json").is_file():
            self.build()
        self._ids = json.loads((self.folder / "ids.json").read_text())
        self._model = bm25s.BM25.load(str(self.folder / "bm25"), show_progress=False) if self._ids else False

    def search(self, text: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; only positive scores."""
        if self._model is None:
            self._load()
        if not self._model or not self._ids:
            return []
        q = _tokenize([text])
        if not q.vocab:
            return []
        # map the query's vocabulary onto the index's; unknown words are dropped
        vocab = self._model.vocab_dict
        inv = {v: w for w, v in q.vocab.items()}
        words = [[inv[i] for i in q.ids[0] if inv[i] in vocab]]
        if not words[0]:
            return []
        docs, scores = self._model.retrieve(words, k=min(k, len(self._ids)), show_progress=False, n_threads=1)
        return [(self._ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
