"""Insights entry points, shared by ``llmops insights`` and any scheduled refresh: the answer log's questions and
citations from the workspace's state (local file or the shared database), the questions embedded with the configured
embedder, ``core.insights`` underneath."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
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


def render_html(doc: dict[str, Any]) -> str:
    """A self-contained page: one bar per group (size, gaps in red) and each group's weekly trend, as inline SVG."""
    clusters = doc["clusters"]
    biggest = max((c["size"] for c in clusters), default=1)
    bars = []
    for i, c in enumerate(clusters):
        w = 360 * c["size"] / biggest
        colour = "#c0392b" if c["gap"] else "#2e86c1"
        label = html.escape(c["typical"][0][:70])
        bars.append(
            f'<g transform="translate(0,{i * 26})"><rect class="bar" width="{w:.1f}" height="20" fill="{colour}"/>'
            f'<text x="{w + 6:.1f}" y="15">{c["size"]} · {label}</text></g>'
        )
    sizes_svg = (
        f'<svg id="sizes" xmlns="http://www.w3.org/2000/svg" width="900" height="{26 * len(clusters) + 4}">'
        + "".join(bars)
        + "</svg>"
    )
    weeks = sorted({w for c in clusters for w in c["weekly"]})
    trend = []
    for c in clusters:
        top = max(c["weekly"].values(), default=1)
        pts = " ".join(f"{10 + 60 * j:.0f},{50 - 40 * c['weekly'].get(w, 0) / top:.0f}" for j, w in enumerate(weeks))
        trend.append(
            f"<tr><td>{c['id']}</td><td>{html.escape(', '.join(c['terms']))}</td><td>{c['answer_rate']:.0%}</td>"
            f"<td>{'-' if c['avg_rating'] is None else format(c['avg_rating'], '+.2f')}</td>"
            f"<td>{c['cache_hit_rate']:.0%}</td><td>{'gap' if c['gap'] else ''}</td>"
            f'<td><svg class="trend" width="{20 + 60 * max(len(weeks) - 1, 1)}" height="56">'
            f'<polyline points="{pts}" fill="none" stroke="#2e86c1" stroke-width="2"/></svg></td></tr>'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>llmops insights: what people ask</title>"
        "<style>body{font-family:sans-serif;margin:2em}text{font-size:13px}td,th{padding:4px 8px;text-align:left}"
        "</style></head><body>"
        f"<h1>What people ask</h1><p id='summary'>{doc['questions']} questions in {len(clusters)} groups, "
        f"{doc['gaps']} gap(s) (groups the sources do not serve well) first.</p>"
        f"<h2>Groups by size</h2>{sizes_svg}"
        f"<h2>Weekly trend ({html.escape(weeks[0] if weeks else '')} to {html.escape(weeks[-1] if weeks else '')})"
        "</h2><table><tr><th>group</th><th>terms</th><th>answered</th><th>rating</th><th>cache hits</th><th></th>"
        f"<th>questions per week</th></tr>{''.join(trend)}</table></body></html>"
    )


def refresh(
    ws: Workspace,
    folder: str | Path,
    *,
    since: float | None = None,
    collection: str | None = None,
    clusters: int | None = None,
) -> dict[str, Any]:
    """Both analyses (``questions``, ``sources``: what ``llmops insights questions|sources --json`` print) written
    into ``folder`` as questions.json, questions.html and sources.json, the scheduled refresh of the insights DAG.
    Returns a summary with the files' paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    q = questions(ws, since=since, collection=collection, clusters=clusters)
    s = sources(ws, since=since, collection=collection)
    files = {
        "questions": out / "questions.json",
        "questions_html": out / "questions.html",
        "sources": out / "sources.json",
    }
    files["questions"].write_text(json.dumps(q, indent=2, default=str) + "\n", encoding="utf-8")
    files["questions_html"].write_text(render_html(q), encoding="utf-8")
    files["sources"].write_text(json.dumps(s, indent=2, default=str) + "\n", encoding="utf-8")
    return {
        "questions": q["questions"],
        "clusters": len(q["clusters"]),
        "gaps": q["gaps"],
        "sources": len(s["sources"]),
        "files": {k: str(v) for k, v in files.items()},
    }


def scheduled_refresh(params: dict[str, Any] | None, run_id: str | None) -> dict[str, Any]:
    """The ``llmops_insights`` DAG's task, Airflow-free: ``refresh`` into ``<data_dir>/insights/<run_id>/`` of the
    workspace the run's config gives (data_dir is the workers' shared folder, or state.url's database is read), then,
    with the param ``output`` (an absolute path or URL every worker reaches), each file published under
    ``<output>/<run_id>/`` (never replacing an earlier run's); the summary also goes to the DAG's JSON report."""
    from llmops_cli.entry.dag_support import publish_result, resolve_params, task_workspace, write_report

    params = resolve_params(params)
    run = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "run")
    # params are not settings here: "collection" filters the logged answers, it is not store.collection
    with task_workspace(params, params_as_flags=False) as ws:
        summary = refresh(
            ws,
            ws.settings.data_path / "insights" / run,
            since=parse_since(params.get("since")),
            collection=params.get("collection"),
            clusters=params.get("clusters"),
        )
        output = params.get("output")
        if output:
            base = f"{output.rstrip('/')}/{run}"
            summary["published"] = {
                key: publish_result(path, f"{base}/{Path(path).name}") for key, path in summary["files"].items()
            }
        summary["report"] = write_report(ws.settings, "llmops_insights", run_id, summary)
    return summary
