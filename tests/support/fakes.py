"""Fakes for fast unit tests: an embedder, an in-memory vector store, a scripted LLM, and a workspace made of them.

They implement the same interfaces as the real adapters (llmops_cli/core/ports.py); ``FakeWorkspace`` is what the
entry points and the CLI (``use_fake_workspaces``) are handed instead of the real wiring."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmops_cli.cli import state as cli_state
from llmops_cli.core.documents import Hit
from llmops_cli.core.ports import LLM, Completion, Embedder, SourceRecord, VectorStore
from llmops_cli.errors import NotConfiguredError
from llmops_cli.wiring import Workspace, no_llm_hint


class WordTokens:
    """One token per word or punctuation mark; spans are exact."""

    def __init__(self, max_tokens: int = 254):
        self.max_tokens = max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(self.token_spans(t)) for t in texts]


class FakeEmbedder(Embedder):
    """Bag-of-words vectors hashed into 64 dims: similar texts get similar vectors. Counts calls."""

    def __init__(self, max_tokens: int = 254, identity: str = "fake:bow"):
        self.identity = identity
        self.dimension = 64
        self.tokens = WordTokens(max_tokens)
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dimension] += 1.0
            out[i, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    @property
    def embedded_count(self) -> int:
        return sum(len(c) for c in self.calls)


class Killed(Exception):
    """Raised by MemoryStore to simulate a process killed between two writes."""


class MemoryStore(VectorStore):
    """In-memory VectorStore. ``fail_after_writes=N`` raises Killed at the (N+1)th write call. Source records lose
    their extra fields unless ``keep_extra`` (as Chroma keeps them)."""

    keep_extra = False

    def __init__(self, fail_after_writes: int | None = None):
        self.cols: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.manifests: dict[str, dict[str, SourceRecord]] = {}
        self.where = "memory"
        self.metadata_reads = 0  # collection_metadata calls: how often a collection was looked up
        self.writes = 0
        self.fail_after_writes = fail_after_writes

    def _tick(self) -> None:
        if self.fail_after_writes is not None and self.writes >= self.fail_after_writes:
            raise Killed(f"killed after {self.writes} writes")
        self.writes += 1

    def ensure_collection(self, name, *, metadata=None):
        if name not in self.cols:
            self.cols[name] = {}
            self.meta[name] = dict(metadata or {})
            self.manifests[name] = {}
        return dict(self.meta[name])

    def collection_metadata(self, name):
        self.metadata_reads += 1
        return dict(self.meta[name]) if name in self.meta else None

    def set_collection_metadata(self, name, metadata):
        self.meta[name].update(metadata)

    def list_collections(self):
        return sorted(self.cols)

    def delete_collection(self, name):
        self.cols.pop(name, None)
        self.meta.pop(name, None)
        self.manifests.pop(name, None)

    def upsert(self, name, ids, embeddings, documents, metadatas):
        self._tick()
        for i, cid in enumerate(ids):
            self.cols[name][cid] = (np.asarray(embeddings[i]), documents[i], dict(metadatas[i]))

    def update_metadata(self, name, ids, metadatas):
        self._tick()
        for cid, md in zip(ids, metadatas, strict=False):
            v, d, _ = self.cols[name][cid]
            self.cols[name][cid] = (v, d, dict(md))

    def delete(self, name, ids):
        if not ids:
            return
        self._tick()
        for cid in ids:
            self.cols[name].pop(cid, None)

    def query(self, name, embedding, k, where=None):
        rows = [
            (cid, float(np.dot(v, embedding)), d, md)
            for cid, (v, d, md) in self.cols[name].items()
            if not where or all(md.get(kk) == vv for kk, vv in where.items())
        ]
        rows.sort(key=lambda r: -r[1])
        return [Hit(id=c, text=d, score=s, metadata=md) for c, s, d, md in rows[:k]]

    def get(self, name, *, ids=None, where=None, include_documents=True, limit=None, offset=0):
        items = self.cols[name]
        keys = list(ids) if ids is not None else sorted(items)
        out = []
        for cid in keys:
            if cid in items:
                _, d, md = items[cid]
                if not where or all(md.get(kk) == vv for kk, vv in where.items()):
                    out.append(Hit(id=cid, text=d if include_documents else "", score=0.0, metadata=md))
        out = out[offset:]
        return out[:limit] if limit is not None else out

    def count(self, name):
        return len(self.cols[name])

    def read_manifest(self, name):
        return {k: self._copy(v) for k, v in self.manifests.get(name, {}).items()}

    def write_manifest(self, name, records):
        if not records:
            return
        self._tick()
        for r in records:
            self.manifests[name][r.source_id] = self._copy(r)

    def _copy(self, r: SourceRecord) -> SourceRecord:
        return SourceRecord(r.source_id, r.content_hash, list(r.chunk_ids), dict(r.extra) if self.keep_extra else {})

    def delete_manifest(self, name, source_ids):
        if not source_ids:
            return
        self._tick()
        for sid in source_ids:
            self.manifests[name].pop(sid, None)

    def snapshot(self, name: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """Chunks as {id: (text, metadata)} for comparing two stores."""
        return {cid: (d, md) for cid, (_, d, md) in self.cols.get(name, {}).items()}


class ScriptedLLM(LLM):
    """Answers from a queue (``enqueue``), else a default; records every call in ``history``."""

    def __init__(self, model: str = "fake/llm", default: str = "fake answer"):
        self.model = model
        self.default = default
        self.queue: list[str] = []
        self.history: list[list[dict[str, str]]] = []

    def enqueue(self, *texts: str) -> ScriptedLLM:
        self.queue.extend(texts)
        return self

    def complete(self, messages, **params) -> Completion:
        self.history.append(list(messages))
        text = self.queue.pop(0) if self.queue else self.default
        return Completion(
            text=text,
            model=self.model,
            input_tokens=sum(len(m["content"].split()) for m in messages),
            output_tokens=len(text.split()),
            cost=0.0,
        )


class FakeWorkspace(Workspace):
    """A workspace whose store, embedder and LLM are the fakes given (one of each, whatever the settings ask for), with
    the real answer log, LLM cache and eval history under settings.data_path. Every build and open is appended to
    ``events`` (share one list between the workspaces of several commands): ("store", read_only),
    ("embedder", model), ("llm", kind-free model, api_base, api_key), ("answer_log",)."""

    def __init__(
        self,
        settings: Any,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
        events: list[tuple] | None = None,
    ):
        super().__init__(settings)
        self.fake_store = store if store is not None else MemoryStore()
        self.fake_embedder = embedder if embedder is not None else FakeEmbedder()
        self.fake_llm = llm if llm is not None else ScriptedLLM()
        self.events = events if events is not None else []

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)

    def _build_store(self, read_only: bool) -> VectorStore:
        self.events.append(("store", read_only))
        return self.fake_store

    def _build_embedder(self, es: Any) -> Embedder:
        self.events.append(("embedder", es.model))
        return self.fake_embedder

    def _build_llm(self, ls: Any, model: str | None, client: str, concurrency: int, hint: dict) -> LLM:
        model = model or ls.model
        if not model:  # the real builders' refusal, with the asking command's hint
            raise NotConfiguredError("no LLM is configured", hint=no_llm_hint(**hint))
        self.events.append(("llm", model, ls.api_base, ls.api_key.get_secret_value() if ls.api_key else None))
        return self.fake_llm

    def _open_answer_log(self):
        self.events.append(("answer_log",))
        return super()._open_answer_log()


def use_fake_workspaces(monkeypatch: Any, **fakes: Any) -> list[tuple]:
    """Make every CLI command of this test work in a ``FakeWorkspace`` of ``fakes`` (store, embedder, llm); returns
    the events list all of them append to."""
    events: list[tuple] = fakes.pop("events", None) or []
    monkeypatch.setattr(cli_state, "workspace_factory", lambda s: FakeWorkspace(s, events=events, **fakes))
    return events


def run_step(step: Any, settings: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an entry point in its own real workspace, as one command or one DAG task does (closed afterwards)."""
    with Workspace(settings) as ws:
        return step(ws, *args, **kwargs)
