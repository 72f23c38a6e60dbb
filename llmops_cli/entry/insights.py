"""Insights entry points, shared by ``llmops insights`` and any scheduled refresh: the answer log's questions and
citations from the workspace's state (local file or the shared database), the questions embedded with the configured
embedder, ``core.insights`` underneath."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.insights import LoggedQuestion
    from llmops_cli.wiring import Workspace

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """``--since``: a span back from now (``7d``, ``12h``, ``2w``) or an ISO date; the epoch seconds it means."""
    if not value:
        return None
    now = time.time() if now is None else now
    m = _SINCE.match(value)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {value!r} is neither a span nor a date", hint="e.g. --since 7d, --since 12h or --since 2026-11-01"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def logged_questions(
    ws: Workspace, *, since: float | None = None, collection: str | None = None, kind: str = "ask"
) -> list[LoggedQuestion]:
    """The questions asked (kind ``ask`` by default: not eval or batch prompts), with votes, reviews and citations."""
    from llmops_cli.core.insights import LoggedQuestion, answered

    log = ws.answer_log(read_only=True)
    records = log.since(since, kind=kind, collection=collection)
    ids = [r.id for r in records]
    flags: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        flags.update(log.summary_flags(ids[i : i + 500]))
    reviews = log.reviews_of(ids)
    rows = []
    for r in records:
        f, rv = flags.get(r.id, {}), reviews.get(r.id)
        votes = f.get("votes") or {"up": 0, "down": 0}
        rows.append(
            LoggedQuestion(
                id=r.id,
                question=r.question,
                created_at=r.created_at,
                answered=answered(r.answer),
                rating=int(f.get("rating") or 0),
                rated=bool(votes["up"] or votes["down"]),
                cache_hit=r.cached_from is not None,
                helpfulness=rv.helpfulness if rv and rv.status == "ok" else None,
                relevance=rv.relevance if rv and rv.status == "ok" else None,
                sources=[c.get("source") for c in r.chunks if c.get("source")],
            )
        )
    return rows


def questions(
    ws: Workspace,
    *,
    since: float | None = None,
    collection: str | None = None,
    clusters: int | None = None,
) -> dict[str, Any]:
    """The logged questions grouped by meaning (``core.insights.cluster_questions``), gaps first."""
    from llmops_cli.core.insights import cluster_questions

    if clusters is not None and clusters < 1:
        raise UsageError(f"--clusters {clusters} must be at least 1", hint="leave it out to let the silhouette choose")
    rows = logged_questions(ws, since=since, collection=collection)
    if not rows:
        return {"questions": 0, "clusters": [], "gaps": 0, "chosen_k": None}
    vectors = ws.embedder().embed([r.question for r in rows])
    found = cluster_questions(rows, vectors, clusters)
    return {
        "questions": len(rows),
        "chosen_k": None if clusters else len(found),
        "gaps": sum(1 for c in found if c.gap),
        "clusters": [c.to_dict() for c in found],
    }


def sources(ws: Workspace, *, since: float | None = None, collection: str | None = None) -> dict[str, Any]:
    """Every cited source with evidence, ranked by accuracy (``core.insights.rank_sources``)."""
    from llmops_cli.core.insights import PRIOR, rank_sources

    rows = logged_questions(ws, since=since, collection=collection)
    ranked = rank_sources(rows)
    return {"answers": len(rows), "prior": list(PRIOR), "sources": [s.to_dict() for s in ranked]}


def source_accuracy(ws: Workspace, *, collection: str | None = None) -> dict[str, float]:
    """Each rated source's accuracy (``sources``' score: a Beta posterior mean), for retrieval's source prior.
    Unrated sources are absent; no answer log, no scores."""
    from llmops_cli.core.insights import rank_sources

    if not ws.answer_log_exists():
        return {}
    return {s.source: s.accuracy for s in rank_sources(logged_questions(ws, collection=collection))}


def source_prior(ws: Workspace, collection: str | None = None) -> dict[str, float] | None:
    """The source prior a retriever of ``collection`` applies: None when ``retrieval.source_prior`` is off (the
    answer log is not read), else the accuracy of every source rated in that collection's answers."""
    if not ws.settings.retrieval.source_prior:
        return None
    return source_accuracy(ws, collection=collection)
