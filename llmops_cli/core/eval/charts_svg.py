"""Charts as inline SVG for the HTML reports, drawn by hand (no script, no library): metric trends across recorded
runs and a sweep leaderboard. Pure functions of plain data; every label is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

# distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def trend_metrics(runs: Sequence[Mapping[str, Any]], limit: int = 4) -> list[str]:
    """The metrics to draw: those most runs have, in the order the newest run lists them, at most ``limit``."""
    seen: dict[str, int] = {}
    for r in runs:
        for m, v in (r.get("metrics") or {}).items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                seen[m] = seen.get(m, 0) + 1
    return sorted(seen, key=lambda m: -seen[m])[:limit]


def trend_svg(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    width: int = 640,
    height: int = 260,
) -> str:
    """A line per metric over ``runs`` (dicts with "id" and "metrics", any order: drawn oldest first by id)."""
    runs = sorted(runs, key=lambda r: r["id"])
    names = list(metrics) if metrics else trend_metrics(runs)
    left, right, top, bottom = 48, 150, 16, 36
    pw, ph = width - left - right, height - top - bottom
    values = [r["metrics"][m] for r in runs for m in names if isinstance((r.get("metrics") or {}).get(m), (int, float))]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 1.0) if hi <= 1.0 else hi
    span = (hi - lo) or 1.0

    def x(i: int) -> float:
        return left + (pw * i / (len(runs) - 1) if len(runs) > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph - (v - lo) / span * ph

    out = [
        f'<svg class="trend-chart" role="img" aria-label="metric trends across runs" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="11">',
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#444"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#444"/>',
    ]
    for t in range(5):
        v = lo + span * t / 4
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#ddd"/>')
    for i, r in enumerate(runs):
        out.append(
            f'<text class="run-label" x="{x(i):.1f}" y="{top + ph + 14}" text-anchor="middle">{_e(r["id"])}</text>'
        )
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">run</text>')
    for n, m in enumerate(names):
        colour = PALETTE[n % len(PALETTE)]
        pts = [
            (x(i), y(float(r["metrics"][m])), r["metrics"][m])
            for i, r in enumerate(runs)
            if isinstance((r.get("metrics") or {}).get(m), (int, float))
        ]
        if not pts:
            continue
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in pts)
        out.append(
            f'<polyline class="series" data-metric="{_e(m)}" points="{line}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        for px, py, v in pts:
            out.append(
                f'<circle class="point" data-metric="{_e(m)}" data-value="{v:.4f}" cx="{px:.1f}" cy="{py:.1f}" '
                f'r="3" fill="{colour}"><title>{_e(m)} {v:.3f}</title></circle>'
            )
        ly = top + 14 * n + 6
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text class="legend" x="{left + pw + 26}" y="{ly + 1}">{_e(m)}</text>')
    out.append("</svg>")
    return "".join(out)


def leaderboard_svg(entries: Sequence[Mapping[str, Any]], metric: str, *, width: int = 640) -> str:
    """A horizontal bar per sweep configuration (dicts with "label" and "value"), best first as given."""
    bar_h, gap, left, right, top = 18, 6, 220, 60, 8
    height = top * 2 + len(entries) * (bar_h + gap)
    vals = [float(e["value"]) for e in entries if isinstance(e.get("value"), (int, float))]
    hi = max([*vals, 1e-9])
    pw = width - left - right
    out = [
        f'<svg class="leaderboard-chart" role="img" aria-label="sweep leaderboard by {_e(metric)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, e in enumerate(entries):
        yy = top + i * (bar_h + gap)
        v = e.get("value")
        w = 0.0 if not isinstance(v, (int, float)) else max(0.0, float(v)) / hi * pw
        out.append(f'<text x="{left - 6}" y="{yy + 13}" text-anchor="end">{_e(e["label"])}</text>')
        out.append(
            f'<rect class="bar" data-label="{_e(e["label"])}" x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h}" '
            f'fill="{PALETTE[0] if i else PALETTE[2]}"/>'
        )
        shown = "n/a" if not isinstance(v, (int, float)) else f"{v:.3f}"
        out.append(f'<text x="{left + w + 4:.1f}" y="{yy + 13}">{shown}</text>')
    out.append("</svg>")
    return "".join(out)


def sweep_page(report: Mapping[str, Any], bars: Sequence[Mapping[str, Any]]) -> str:
    """A self-contained page for a sweep (``SweepReport.to_dict()``): the leaderboard as a chart, then as a table."""
    metric = str(report.get("rank_by", ""))
    entries = list(report.get("leaderboard") or [])
    names = list(dict.fromkeys(m for e in entries for m in (e.get("metrics") or {})))
    head = "".join(f"<th>{_e(h)}</th>" for h in ["rank", "chunker", "size", "overlap", "embedder", "chunks", *names])
    rows = []
    for e in entries:
        vals = [e.get("rank"), e.get("strategy"), e.get("size"), e.get("overlap"), e.get("embedder"), e.get("chunks")]
        cells = [f"<td>{_e(str(v))}</td>" for v in vals]
        for m in names:
            v = (e.get("metrics") or {}).get(m)
            cells.append(f"<td>{v:.3f}</td>" if isinstance(v, (int, float)) else "<td></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>llmops eval sweep</title>'
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>Sweep leaderboard (by {_e(metric)})</h1><p>{_e(str(report.get('dataset', '')))}</p>"
        f"{leaderboard_svg(bars, metric)}<table><tr>{head}</tr>{''.join(rows)}</table></body></html>\n"
    )
