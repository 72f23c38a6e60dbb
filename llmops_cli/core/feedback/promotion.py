"""Promotion of good answers into the vector store, and their removal when they stop qualifying.

An answer qualifies when its review passed (helpfulness and relevance at or over the thresholds), the judge found it
public, and no rater's latest vote on it (or on a cache-served copy of it) is down; optionally it must also be rated
up. ``reconcile`` makes the store match that decision for each answer: qualifying answers are written as one
question-and-answer chunk (metadata ``kind="promoted_answer"``, ``answer_id``), the others are deleted. It is
idempotent, so a scheduled run and a rating can both call it.

The promoted text is redacted (API keys, tokens, passwords, e-mail addresses, phone numbers) BEFORE it is embedded
or written. Citation markers ([1], [2]) point at passages of the original context, which the chunk does not carry:
they are dropped and the cited sources listed instead.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.core.collection_meta import EMBEDDER_KEY, GENERATION_KEY
from llmops_cli.core.documents import indexed_text
from llmops_cli.core.feedback.cache import unit_vector
from llmops_cli.core.feedback.log import AnswerLog, AnswerRecord, Promotion, Rating, Review, latest_votes
from llmops_cli.core.ports import Embedder, VectorStore
from llmops_cli.core.redaction import redact

PROMOTED_KIND = "promoted_answer"


@dataclass
class Thresholds:
    min_helpfulness: float = 0.75
    min_relevance: float = 0.75
    require_rating_up: bool = False


@dataclass
class Decision:
    promote: bool
    reason: str


def decide(answer: AnswerRecord, review: Review | None, ratings: Sequence[Rating], t: Thresholds) -> Decision:
    """Whether ``answer`` belongs in the store, and why (the first reason that rules it out). ``ratings`` are all of
    them, oldest first: only each rater's latest vote counts."""
    ratings = latest_votes(ratings)
    if answer.kind != "ask" or answer.cached_from or not answer.collection:
        return Decision(False, "not an answer from a collection")
    if not answer.answer.strip():
        return Decision(False, "empty answer")
    if any(r.rating < 0 for r in ratings):
        return Decision(False, "rated down")
    if review is None:
        return Decision(False, "not reviewed")
    if review.status != "ok":
        return Decision(False, "review error")
    if not review.public:
        return Decision(False, "judged not public")
    if (review.helpfulness or 0.0) < t.min_helpfulness:
        return Decision(False, f"helpfulness {review.helpfulness:.2f} < {t.min_helpfulness:.2f}")
    if (review.relevance or 0.0) < t.min_relevance:
        return Decision(False, f"relevance {review.relevance:.2f} < {t.min_relevance:.2f}")
    if t.require_rating_up and not any(r.rating > 0 for r in ratings):
        return Decision(False, "not rated up (feedback.require_rating_up)")
    return Decision(True, "passed review")


def chunk_id_for(answer_id: str) -> str:
    return f"answer-{answer_id}"


_CITATION = re.compile(r"\s*(?:\[\d+\])+")


def _citations(answer: AnswerRecord) -> list[dict[str, Any]]:
    """The context chunks the answer's markers point at ([1] is the first), in citation order."""
    cited: list[dict[str, Any]] = []
    for m in re.finditer(r"\[(\d+)\]", answer.answer):
        n = int(m.group(1))
        if 1 <= n <= len(answer.chunks) and answer.chunks[n - 1] not in cited:
            cited.append(answer.chunks[n - 1])
    return cited


def cited_chunks(answer: AnswerRecord) -> list[dict[str, Any]]:
    """The chunks an answer rests on: those it cites, or its whole context when it cites none."""
    return _citations(answer) or list(answer.chunks)


def promoted_parts(answer: AnswerRecord) -> tuple[str, str, str]:
    """(question, answer text, chunk text), all redacted; citations replaced by the list of cited sources."""
    cited: list[str] = []
    for c in _citations(answer):
        src = str(c.get("source", ""))
        if src and src not in cited:
            cited.append(src)
    body = _CITATION.sub("", answer.answer).strip()
    if cited:
        body += "\n\nSources: " + ", ".join(cited)
    question = redact(answer.question.strip())
    body = redact(body)
    return question, body, f"Question: {question}\n\nAnswer: {body}"


@dataclass
class ReconcileReport:
    promoted: list[str] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)  # {id, reason}
    kept: list[str] = field(default_factory=list)  # promoted before and still qualifying
    not_promoted: list[dict[str, str]] = field(default_factory=list)  # {id, reason}
    collections: list[str] = field(default_factory=list)  # collections written to

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "removed": self.removed,
            "kept": self.kept,
            "not_promoted": self.not_promoted,
            "collections": self.collections,
        }


def bump_generation(store: VectorStore, collection: str) -> None:
    """Tell the lexical index that the collection changed (as ingest does after a write)."""
    md = store.collection_metadata(collection) or {}
    store.set_collection_metadata(collection, {GENERATION_KEY: int(md.get(GENERATION_KEY, 0)) + 1})


class Promoter:
    """Applies decisions to a store. ``embedder(collection)`` gives the embedder that collection was made with; it is
    built only when something is to be written (it is costly). ``after_write(collection)`` runs once per changed
    collection (the caller rebuilds the lexical index there). ``write_lock()`` gives the store's write lock
    (core/store_lock.py); it is taken at the first write, so a vote that changes nothing never waits for an ingest."""

    def __init__(
        self,
        log: AnswerLog,
        store: VectorStore,
        embedder: Callable[[str], Embedder],
        thresholds: Thresholds,
        after_write: Callable[[str], None] | None = None,
        write_lock: Callable[[], Any] | None = None,
    ):
        self.log = log
        self._write_lock = write_lock
        self.store = store
        self._embedder_fn = embedder
        self._embedders: dict[str, Embedder] = {}
        self.thresholds = thresholds
        self.after_write = after_write

    def embedder(self, collection: str) -> Embedder:
        if collection not in self._embedders:
            self._embedders[collection] = self._embedder_fn(collection)
        return self._embedders[collection]

    def decision(self, answer: AnswerRecord) -> Decision:
        return decide(
            answer, self.log.review_of(answer.id), self.log.ratings(answer.id, with_cached_copies=True), self.thresholds
        )

    def reconcile(self, answer_ids: Sequence[str], *, dry_run: bool = False) -> ReconcileReport:
        with contextlib.ExitStack() as held:
            taken: list[bool] = []

            def lock() -> None:
                if self._write_lock is not None and not taken:
                    held.enter_context(self._write_lock())
                    taken.append(True)

            return self._reconcile(answer_ids, dry_run, lock)

    def _reconcile(self, answer_ids: Sequence[str], dry_run: bool, lock: Callable[[], None]) -> ReconcileReport:
        report = ReconcileReport()
        changed: set[str] = set()
        answers = self.log.get_many(answer_ids)
        stale = self.stale_reasons(answers)
        for a in answers:
            d = Decision(False, stale[a.id]) if a.id in stale else self.decision(a)
            prev = self.log.promotion_of(a.id)
            if d.promote:
                if prev is not None and prev.active and prev.collection == a.collection and self._present(prev):
                    report.kept.append(a.id)
                    continue
                why_not = self._cannot_write(a.collection or "")
                if why_not:
                    report.not_promoted.append({"id": a.id, "reason": why_not})
                    continue
                if not dry_run:
                    lock()
                    self._promote(a)
                    changed.add(a.collection or "")
                report.promoted.append(a.id)
            else:
                if prev is not None and prev.active:
                    if not dry_run:
                        lock()
                        self._remove(prev, d.reason)
                        changed.add(prev.collection)
                    report.removed.append({"id": a.id, "reason": d.reason})
                else:
                    report.not_promoted.append({"id": a.id, "reason": d.reason})
        for coll in sorted(changed):
            if self.store.collection_metadata(coll) is not None:
                bump_generation(self.store, coll)
                if self.after_write:
                    self.after_write(coll)
        report.collections = sorted(changed)
        return report

    def stale_reasons(self, answers: Sequence[AnswerRecord]) -> dict[str, str]:
        """Answers built on chunks the store no longer holds: their source changed (a chunk's id is a hash of its
        text) or was removed since. Such an answer is not promoted, and a promoted one is taken out of the store and
        the semantic cache: an answer must not outlive its facts. The chunks it cites count (all of its context when
        it cites none); chunks of earlier promoted answers do not."""
        cited: dict[str, list[tuple[str, str]]] = {}
        for a in answers:
            refs = [(c["id"], c.get("source") or "") for c in cited_chunks(a) if c.get("id")]
            refs = [(cid, src) for cid, src in refs if not src.startswith("answer:")]
            if refs and a.collection:
                cited[a.id] = refs
        by_collection: dict[str, set[str]] = {}
        for a in answers:
            if a.id in cited:
                by_collection.setdefault(a.collection or "", set()).update(cid for cid, _ in cited[a.id])
        present: set[str] = set()
        missing_collections = set()
        for coll, ids in by_collection.items():
            if self.store.collection_metadata(coll) is None:  # not in this store at all: _cannot_write says so
                missing_collections.add(coll)
                continue
            present.update(h.id for h in self.store.get(coll, ids=sorted(ids), include_documents=False))
        out = {}
        for a in answers:
            if a.collection in missing_collections:
                continue
            gone = sorted({src for cid, src in cited.get(a.id, []) if cid not in present})
            if gone:
                out[a.id] = f"stale: {', '.join(gone[:3])}{' ...' if len(gone) > 3 else ''} changed or removed since"
        return out

    def _present(self, p: Promotion) -> bool:
        """Still in this store (the store may have been rebuilt or switched since)."""
        try:
            return bool(self.store.get(p.collection, ids=[p.chunk_id], include_documents=False))
        except Exception:  # noqa: BLE001 - a missing collection means not present
            return False

    def _cannot_write(self, collection: str) -> str | None:
        meta = self.store.collection_metadata(collection)
        if meta is None:
            return f"collection {collection!r} does not exist in this store"
        if meta.get(EMBEDDER_KEY) and meta[EMBEDDER_KEY] != self.embedder(collection).identity:
            return f"collection {collection!r} holds vectors of another embedder ({meta[EMBEDDER_KEY]})"
        return None

    def _promote(self, a: AnswerRecord) -> None:
        question, body, text = promoted_parts(a)
        heading = question if len(question) <= 200 else question[:199] + "…"
        embedder = self.embedder(a.collection or "")
        vecs = embedder.embed([indexed_text(heading, text), question])  # embedded like an ingested chunk
        cid = chunk_id_for(a.id)
        md = {
            "kind": PROMOTED_KIND,
            "answer_id": a.id,
            "source": f"answer:{a.id}",
            "source_file": f"answer:{a.id}",
            "heading": heading,
            "chunk_index": 0,
            "model": a.model or "",
            "promoted_at": int(time.time()),
        }
        self.store.upsert(a.collection or "", [cid], vecs[:1], [text], [md])
        qv = unit_vector(vecs[1])
        self.log.save_promotion(
            Promotion(
                answer_id=a.id,
                collection=a.collection or "",
                chunk_id=cid,
                question=question,
                answer_text=body,
                question_vector=qv.tobytes(),
                embedder=embedder.identity,
                promoted_at=time.time(),
            )
        )

    def _remove(self, p: Promotion, reason: str) -> None:
        if self.store.collection_metadata(p.collection) is not None:
            self.store.delete(p.collection, [p.chunk_id])
        self.log.mark_removed(p.answer_id, reason)


def promoted_chunk_ids(store: VectorStore, collection: str) -> list[str]:
    """The ids of promoted answers in a collection, as the store has them."""
    return [h.id for h in store.get(collection, where={"kind": PROMOTED_KIND}, include_documents=False)]
