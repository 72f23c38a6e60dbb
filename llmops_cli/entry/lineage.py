"""Lineage, both ways, from what the store and the answer log already hold: an answer's context chunks and the
sources (and their current versions) behind them; a source's chunks and the answers (promoted ones included) whose
context held them. A chunk's id is a hash of its text, so a cited chunk the store no longer holds means its source
changed (still in the collection's source ledger) or was removed (not there any more)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from llmops_cli.entry.store import collection_name, collection_not_found, source_root
from llmops_cli.errors import NotFoundError

if TYPE_CHECKING:
    from llmops_cli.core.feedback.log import AnswerRecord
    from llmops_cli.wiring import Workspace


def _ledger_key(source: str, ledger: dict[str, Any]) -> str | None:
    """The source ledger's key of a chunk's source (a table row ``file#row`` belongs to ``file``)."""
    if source in ledger:
        return source
    head = source.split("#", 1)[0]
    return head if head in ledger else None


def _promotion(ws: Workspace, answer_id: str) -> dict[str, Any] | None:
    p = ws.answer_log(read_only=True).promotion_of(answer_id)
    if p is None:
        return None
    return {"collection": p.collection, "active": p.active, "removed_reason": p.removed_reason}


def answer(ws: Workspace, answer_id: str) -> dict[str, Any]:
    """The chunks an answer was given, each ``current`` (still in the store), ``changed`` (its source was re-ingested
    with other text) or ``removed`` (its source is gone), and each source's version now."""
    log = ws.answer_log(read_only=True)
    a = log.get(answer_id)
    chunks: list[dict[str, Any]] = []
    sources: dict[str, dict[str, Any]] = {}
    store = ws.store(read_only=True)
    meta = store.collection_metadata(a.collection) if a.collection else None
    ledger = store.read_manifest(a.collection) if meta is not None else {}
    ids = [c["id"] for c in a.chunks if c.get("id")]
    present = {h.id for h in store.get(a.collection, ids=ids, include_documents=False)} if meta and ids else set()
    for c in a.chunks:
        src = c.get("source") or ""
        key = _ledger_key(src, ledger)
        if c.get("id") in present:
            status = "current"
        elif src.startswith("answer:"):
            status = "removed"  # a promoted answer that was in the context, taken out since
        else:
            status = "changed" if key else "removed"
        chunks.append({"id": c.get("id"), "source": src, "heading": c.get("heading"), "status": status})
        entry = sources.setdefault(
            src,
            {"source": src, "version": ledger[key].content_hash.split(":")[0][:16] if key else None, "status": status},
        )
        if status != "current":
            entry["status"] = status
    return {
        "answer": _answer_summary(a),
        "collection_exists": meta is not None,
        "chunks": chunks,
        "sources": list(sources.values()),
        "promotion": _promotion(ws, a.id),
    }


def _answer_summary(a: AnswerRecord) -> dict[str, Any]:
    d = a.to_dict()
    return {
        k: d[k] for k in ("id", "created_at", "kind", "collection", "question", "model", "config_hash", "cached_from")
    }


def resolve_source(ws: Workspace, collection: str, given: str, ledger: dict[str, Any]) -> str:
    """``given`` as a source id of the collection: as is (``docs/a.md``, a URL), or a local path made relative to
    the source root the way ingest does."""
    if given in ledger:
        return given
    from llmops_cli.core.loaders.discovery import source_id_for

    as_id = source_id_for(os.path.abspath(given), str(source_root(ws.settings)))
    if as_id in ledger:
        return as_id
    from difflib import get_close_matches

    close = get_close_matches(given, list(ledger), n=3, cutoff=0.5)
    raise NotFoundError(
        f"no source {given!r} in collection {collection!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + f"`llmops collections sources {collection}` lists them",
    )


def source(ws: Workspace, given: str, *, collection: str | None = None) -> dict[str, Any]:
    """A source's version and chunks in the collection, and every answer whose context held them: ``current`` when
    the chunks it was given are all still there, ``stale`` otherwise; promoted answers with their state."""
    name = collection_name(ws.settings, collection)
    store = ws.store(read_only=True)
    if store.collection_metadata(name) is None:
        raise collection_not_found(store, name)
    ledger = store.read_manifest(name)
    sid = resolve_source(ws, name, given, ledger)
    rec = ledger[sid]
    chunk_ids = list(rec.chunk_ids)
    held = store.get(name, ids=chunk_ids, include_documents=False) if chunk_ids else []
    answers = []
    current = set(chunk_ids)
    for a in ws.answer_log(read_only=True).citing(sid, collection=name):
        mine = [c for c in a.chunks if c.get("source") == sid or str(c.get("source", "")).startswith(sid + "#")]
        answers.append(
            {
                **_answer_summary(a),
                "chunks": [c.get("id") for c in mine],
                "status": "current" if all(c.get("id") in current for c in mine) else "stale",
                "promotion": _promotion(ws, a.id),
            }
        )
    return {
        "collection": name,
        "source": sid,
        "version": rec.content_hash.split(":")[0][:16],
        "chunks": [
            {"id": h.id, "heading": h.metadata.get("heading"), "index": h.metadata.get("chunk_index")} for h in held
        ],
        "answers": answers,
    }
