"""Writing a matrix: ``.json`` (the whole document) or ``.html`` (self-contained: the leaderboard with intervals,
winners and the Pareto front, a quality-vs-cost chart as inline SVG, and every question with the answers of every
combination side by side)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.eval.results_files import check_output_path, write_failed
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.eval.matrix import MatrixReport

MATRIX_FORMATS = (".json", ".html")


def matrix_output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MATRIX_FORMATS:
        raise UsageError(
            f"--output {path}: a matrix is written as .json or .html",
            hint="per-question rows of one combination: llmops eval export RUN -o rows.csv",
        )
    check_output_path(path)
    return suffix


def write_matrix(rep: MatrixReport, path: str | Path) -> None:
    p = Path(path)
    text = (
        json.dumps(rep.to_dict(), indent=2, default=str)
        if matrix_output_format(p) == ".json"
        else matrix_html(rep.to_dict())
    )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    except OSError as e:
        raise write_failed(p, e) from None


def _num(v: Any, fmt: str = ".3f") -> str:
    return "" if v is None else format(v, fmt)


def _ci(m: dict[str, Any]) -> str:
    if m.get("mean") is None:
        return ""
    if m.get("low") is None:
        return _num(m["mean"])
    return f"{_num(m['mean'])} <small>[{_num(m['low'])}, {_num(m['high'])}]</small>"


def quality_cost_svg(board: dict[str, Any], width: int = 560, height: int = 320) -> str:
    """Each combination a dot at (cost, quality); the Pareto front's dots filled and joined."""
    metric, axis = board.get("rank_by"), board.get("cost_axis", "cost")
    pts = [
        (float(r[axis] or 0.0), r["metrics"][metric]["mean"], r["label"], r["pareto"])
        for r in board.get("rows", [])
        if metric and r["metrics"].get(metric, {}).get("mean") is not None
    ]
    if not pts:
        return ""
    pad = 50
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(0.0, min(ys)), max(1.0, max(ys))

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(metric or "")} against {axis}">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">{html.escape(axis)} of the answers</text>',
        f'<text x="12" y="{height / 2}" transform="rotate(-90 12 {height / 2})" text-anchor="middle">'
        f"{html.escape(metric or '')}</text>",
    ]
    front = sorted((p for p in pts if p[3]), key=lambda p: p[0])
    if len(front) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _, _ in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2a7" stroke-dasharray="4 3"/>')
    for x, y, label, on_front in pts:
        fill = "#2a7" if on_front else "#fff"
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="6" fill="{fill}" stroke="#2a7"><title>'
            f"{html.escape(label)}: {y:.3f}, {axis} {x:g}</title></circle>"
            f'<text x="{sx(x) + 8:.1f}" y="{sy(y) - 8:.1f}" font-size="11">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def matrix_html(doc: dict[str, Any]) -> str:
    board = doc["leaderboard"]
    rows = board.get("rows", [])
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in metrics)
    body = []
    for r in rows:
        cells = []
        for m in metrics:
            win = r["label"] in board["winners"].get(m, [])
            cells.append(f'<td class="{"win" if win else ""}">{_ci(r["metrics"][m])}</td>')
        cost = "unknown" if r["cost"] is None else f"${r['cost']:.4f}"
        body.append(
            f"<tr><td>{r['rank']}</td><td>{esc(r['model'])}</td><td>{esc(r['prompt']['name'])} "
            f"<small>{esc(r['prompt']['sha256'][:12])}</small></td>{''.join(cells)}<td>{cost}</td>"
            f"<td>{r['tokens']}</td><td>{_num(r['latency_p50_s'], '.2f')}</td>"
            f"<td>{_num(r['latency_p95_s'], '.2f')}</td>"
            f"<td>{r['error_rows']}</td><td>{'yes' if r['pareto'] else ''}</td><td>{r['run_id'] or ''}</td></tr>"
        )
    labels = [r["label"] for r in rows]
    qrows = []
    for q in doc.get("questions", []):
        by_label = {a["label"]: a for a in q["answers"]}
        cells = []
        for label in labels:
            a = by_label.get(label, {})
            scores = ", ".join(f"{k} {v:.2f}" for k, v in (a.get("metrics") or {}).items())
            errs = "; ".join((a.get("errors") or {}).values())
            cells.append(
                f"<td><div>{esc(a.get('answer') or '')}</div><small>{esc(scores)}</small>"
                + (f'<div class="err">{esc(errs)}</div>' if errs else "")
                + "</td>"
            )
        qrows.append(
            f"<tr><td>{esc(str(q['id']))}</td><td>{esc(q['question'])}<br><small>reference: "
            f"{esc(q.get('reference_answer') or '')}</small></td>{''.join(cells)}</tr>"
        )
    winners = "".join(f"<li>{esc(m)}: {esc(', '.join(w))}</li>" for m, w in board["winners"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmops eval matrix {esc(doc["matrix_id"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}} th{{background:#f4f4f4}}
td.win{{background:#e4f6ea;font-weight:600}} .err{{color:#b00}} small{{color:#666}}
#questions td{{max-width:28em}}
</style></head><body>
<h1>Model x prompt matrix</h1>
<p>Question set {esc(doc["dataset"]["path"])} ({doc["dataset"]["rows"]} questions, sha256
{esc(doc["dataset"]["sha256"][:12])}); {len(rows)} combinations, ranked by {esc(str(board["rank_by"]))}.
Means with 95% intervals; winners shaded; cost is the answers' ({esc(board["cost_axis"])}).</p>
<table id="leaderboard"><thead><tr><th>rank</th><th>model</th><th>prompt</th>{head}<th>cost</th><th>tokens</th>
<th>p50 s</th><th>p95 s</th><th>errors</th><th>Pareto</th><th>run</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<h2>Winner per metric</h2><ul>{winners}</ul>
<h2>Quality against cost</h2>
<p>Filled dots: the Pareto front (no other combination is both better and cheaper).</p>
{quality_cost_svg(board)}
<h2>Questions side by side</h2>
<table id="questions"><thead><tr><th>id</th><th>question</th>{"".join(f"<th>{esc(x)}</th>" for x in labels)}</tr>
</thead><tbody>{"".join(qrows)}</tbody></table>
</body></html>
"""
