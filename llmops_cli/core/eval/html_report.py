"""A self-contained HTML report: summary, a chart per metric (inline SVG, drawn here), robustness deltas,
the worst questions and the per-question table (sortable and filterable by a few lines of inline JS).
No external resources: it opens offline and can be attached to a CI job as one file."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmops_cli.core.eval.gates import shown
from llmops_cli.core.eval.report import EvalReport, lower_is_better

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#5b6475;font-size:13px}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6;cursor:pointer;user-select:none;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px}
.chart h3{font-size:13px;margin:0 0 4px}
.bad{color:#b42318}.good{color:#067647}.err{color:#b42318;font-size:12px}
#filter{margin:0 0 8px;padding:4px 8px;width:320px}
.q{max-width:420px}.a{max-width:420px;white-space:pre-wrap}
"""

_JS = """
(function(){
  var table = document.getElementById('rows');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(cell, numeric){
    var v = cell.getAttribute('data-v');
    if (numeric){ var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return (cell.textContent || '').toLowerCase();
  }
  Array.prototype.forEach.call(heads, function(th, idx){
    th.addEventListener('click', function(){
      var numeric = th.getAttribute('data-num') === '1';
      var asc = th.getAttribute('data-dir') !== 'asc';
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = key(a.cells[idx], numeric), y = key(b.cells[idx], numeric);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
  var filter = document.getElementById('filter');
  filter.addEventListener('input', function(){
    var q = filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function(r){
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
  document.body.setAttribute('data-ready', String(document.querySelectorAll('svg.metric-chart').length));
})();
"""


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def histogram_svg(
    metric: str, values: list[float], mean: float | None, width: int = 300, height: int = 150, bins: int = 10
) -> str:
    """Distribution of one metric's per-question values over [lo, 1] in ``bins`` bars, with the mean marked."""
    lo = min(0.0, min(values)) if values else 0.0  # semantic similarity can be negative
    hi = max(1.0, max(values)) if values else 1.0
    counts = [0] * bins
    for v in values:
        i = min(bins - 1, int((v - lo) / (hi - lo) * bins)) if hi > lo else 0
        counts[i] += 1
    top = max(counts) or 1
    pad_l, pad_b, pad_t = 28, 18, 8
    plot_w, plot_h = width - pad_l - 6, height - pad_b - pad_t
    bw = plot_w / bins
    parts = [
        f'<svg class="metric-chart" data-metric="{_e(metric)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(metric)} distribution">'
    ]
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 6}" y2="{pad_t + plot_h}" stroke="#8a93a5"/>')
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = pad_l + i * bw
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
            'fill="#4f7cd8">'
            f"<title>{lo + (hi - lo) * i / bins:.2f}-{lo + (hi - lo) * (i + 1) / bins:.2f}: {c}</title></rect>"
        )
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 9}" font-size="10" text-anchor="end" fill="#5b6475">{top}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" font-size="10" text-anchor="end" fill="#5b6475">0</text>')
    parts.append(f'<text x="{pad_l}" y="{height - 4}" font-size="10" fill="#5b6475">{lo:g}</text>')
    parts.append(
        f'<text x="{width - 6}" y="{height - 4}" font-size="10" text-anchor="end" fill="#5b6475">{hi:g}</text>'
    )
    if mean is not None and hi > lo and math.isfinite(mean):
        mx = pad_l + plot_w * (mean - lo) / (hi - lo)
        parts.append(
            f'<line class="mean" x1="{mx:.1f}" y1="{pad_t}" x2="{mx:.1f}" y2="{pad_t + plot_h}" stroke="#d92d20" '
            'stroke-width="2" stroke-dasharray="4 2"/>'
        )
        parts.append(
            f'<text x="{min(mx + 3, width - 40):.1f}" y="{pad_t + 9}" font-size="10" fill="#d92d20">'
            f"mean {mean:.3f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: EvalReport, *, worst: int = 10, trend: Sequence[Mapping[str, Any]] | None = None) -> str:
    """``trend``: recorded runs (eval history's list_runs rows) drawn as metric trends, when two or more."""
    metrics = list(report.metrics)
    cfg = report.config
    title = f"llmops eval: {report.dataset.get('path', '')}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    out.append(f"<h1>Evaluation report{' - run ' + _e(report.run_id) if report.run_id is not None else ''}</h1>")
    out.append(
        f'<div class="meta">{_e(report.created_at)} | dataset {_e(report.dataset.get("path"))} '
        f"(sha256 {_e(str(report.dataset.get('sha256', ''))[:12])}, {_e(report.dataset.get('rows'))} questions) | "
        f"config {_e(report.config_hash[:12])} | collection {_e(cfg.get('collection'))} | k={_e(cfg.get('k'))} "
        f"mode={_e(cfg.get('mode'))} | {report.duration_s:.1f} s</div>"
    )

    out.append(
        '<h2>Summary</h2><table id="summary"><thead><tr><th>metric</th><th>mean</th><th>questions</th><th>gate</th>'
        "</tr></thead><tbody>"
    )
    gates = {g["metric"]: g for g in report.gates}
    for m in metrics:
        g = gates.get(m)
        gate = ""
        if g is not None:
            verdict = "pass" if g["passed"] else "FAIL"
            gate = f'<span class="{"good" if g["passed"] else "bad"}">{verdict} ({_e(g["check"])})</span>'
        arrow = " (lower is better)" if lower_is_better(m) else ""
        mean = shown(report.metrics[m], g["threshold"]) if g else _fmt(report.metrics[m])
        out.append(
            f'<tr><td>{_e(m)}{arrow}</td><td class="num">{mean}</td><td class="num">{report.counts.get(m, 0)}</td>'
            f"<td>{gate}</td></tr>"
        )
    out.append("</tbody></table>")
    u = report.usage or {}
    if u:
        out.append(
            f'<p class="meta">LLM calls {u.get("calls", 0)} (cached {u.get("cached", 0)}, '
            f"failed {u.get('failed', 0)}), "
            f"tokens in {u.get('input_tokens', 0)} / out {u.get('output_tokens', 0)}, "
            f"cost {'unknown' if u.get('cost') is None else '$' + format(u['cost'], '.4f')}; "
            f"rows with errors: {report.error_rows}</p>"
        )

    out.append('<h2>Charts</h2><div class="charts">')
    for m in metrics:
        vals = [r.metrics[m] for r in report.rows if m in r.metrics]
        out.append(
            f'<div class="chart"><h3>{_e(m)} (n={len(vals)})</h3>{histogram_svg(m, vals, report.metrics.get(m))}</div>'
        )
    out.append("</div>")

    if report.by_tag:
        out.append(
            '<h2>By tag</h2><table id="tags"><thead><tr><th>tag</th>'
            + "".join(f"<th>{_e(m)}</th>" for m in metrics)
            + "</tr></thead><tbody>"
        )
        for tag, means in report.by_tag.items():
            out.append(
                f"<tr><td>{_e(tag)}</td>"
                + "".join(f'<td class="num">{_fmt(means.get(m))}</td>' for m in metrics)
                + "</tr>"
            )
        out.append("</tbody></table>")

    if report.robustness:
        out.append(
            '<h2>Robustness</h2><table id="robustness"><thead><tr><th>perturbation</th><th>metric</th><th>original</th>'
            "<th>perturbed</th><th>delta</th><th>example</th></tr></thead><tbody>"
        )
        for kind, block in report.robustness.items():
            ex = block.get("example") or {}
            for m, d in (block.get("metrics") or {}).items():
                cls = "bad" if d["delta"] < -0.01 else ""
                out.append(
                    f'<tr><td>{_e(kind)}</td><td>{_e(m)}</td><td class="num">{_fmt(d["original"])}</td>'
                    f'<td class="num">{_fmt(d["perturbed"])}</td>'
                    f'<td class="num {cls}">{d["delta"]:+.3f}</td><td>{_e(ex.get("perturbed"))}</td></tr>'
                )
        out.append("</tbody></table>")

    if report.comparison:
        c = report.comparison
        out.append(
            f'<h2>Against baseline {_e(c["base"].get("run_id"))}</h2><table id="comparison"><thead><tr>'
            "<th>metric</th><th>base</th><th>new</th><th>delta</th><th>rows base/new/both</th><th>status</th>"
            "</tr></thead><tbody>"
        )
        for m in c["metrics"]:
            rows = (
                ""
                if "n_base" not in m
                else f"{m['n_base']}/{m['n_new']}/{'-' if m.get('n_paired') is None else m['n_paired']}"
            )  # older reports have no counts
            cls = "bad" if m["status"] == "regressed" else "good" if m["status"] == "improved" else ""
            delta = "" if m["delta"] is None else f"{m['delta']:+.3f}"
            out.append(
                f'<tr><td>{_e(m["metric"])}</td><td class="num">{_fmt(m["base"])}</td>'
                f'<td class="num">{_fmt(m["new"])}</td><td class="num {cls}">{delta}</td>'
                f'<td class="num">{_e(rows)}</td><td class="{cls}">{_e(m["status"])}</td></tr>'
            )
        out.append("</tbody></table>")

    primary = report.primary_metric
    if primary:
        out.append(f"<h2>Worst questions by {_e(primary)}</h2><ol>")
        for r in report.worst(worst):
            out.append(f"<li>{_e(r.question)} <b>{_fmt(r.metrics.get(primary))}</b></li>")
        out.append("</ol>")

    if report.human_ratings:
        by_criterion: dict[str, list[dict]] = {}
        for h in report.human_ratings:
            by_criterion.setdefault(h["criterion"], []).append(h)
        out.append("<h2>Human ratings (1-5)</h2><table><tr><th>criterion</th><th>ratings</th><th>raters</th>")
        out.append("<th>mean</th><th>comments</th></tr>")
        for c, hs in sorted(by_criterion.items()):
            mean = sum(h["score"] for h in hs) / len(hs)
            comments = "; ".join(f"{h['rater']}: {h['comment']}" for h in hs if h.get("comment"))
            out.append(
                f'<tr><td>{_e(c)}</td><td class="num">{len(hs)}</td><td>{_e(len({h["rater"] for h in hs}))}</td>'
                f'<td class="num">{mean:.2f}</td><td>{_e(comments[:500])}</td></tr>'
            )
        out.append("</table>")

    if trend and len(trend) >= 2:
        from llmops_cli.core.eval.charts_svg import trend_svg

        out.append(f"<h2>Metric trends across runs ({len(trend)})</h2>{trend_svg(trend)}")
    out.append(f'<h2>Per question ({len(report.rows)})</h2><input id="filter" type="search" placeholder="filter rows">')
    out.append('<table id="rows"><thead><tr><th>id</th><th>question</th><th>answer</th><th>retrieved</th>')
    for m in metrics:
        out.append(f'<th data-num="1">{_e(m)}</th>')
    out.append("<th>errors</th></tr></thead><tbody>")
    for r in report.rows:
        retrieved = ", ".join(dict.fromkeys(h.get("source", "") for h in r.retrieved))
        out.append(
            f'<tr><td>{_e(r.id)}</td><td class="q">{_e(r.question)}</td><td class="a">{_e(r.answer)}</td>'
            f"<td>{_e(retrieved)}</td>"
        )
        for m in metrics:
            v = r.metrics.get(m)
            tip = f' title="{_e(r.reasons[m])}"' if m in r.reasons else ""
            out.append(f'<td class="num" data-v="{"" if v is None else v}"{tip}>{_fmt(v)}</td>')
        errs = "; ".join(f"{k}: {v}" for k, v in r.errors.items())
        out.append(f'<td class="err">{_e(errs)}</td></tr>')
    out.append("</tbody></table>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)
