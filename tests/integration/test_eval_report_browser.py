"""The HTML report in a real headless browser (Debian's chromium): charts and table render, no console output."""

import re
import subprocess
from pathlib import Path

import pytest

from llmops_cli.core.eval.html_report import render_html
from llmops_cli.core.eval.report import EvalReport, RowResult, mean_metrics

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the DOM after scripts ran, console lines) for a local file."""
    if not CHROMIUM.exists():
        pytest.skip("headless chromium is not installed (apt-get install -y chromium)")
    proc = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def _report() -> EvalReport:
    rows = []
    for i in range(25):
        rows.append(
            RowResult(
                id=f"q{i}",
                question=f"question {i} <script>window.pwned=1</script>",
                answer=f"answer {i} & more",
                retrieved=[{"id": f"c{i}", "source": f"doc{i % 4}.md", "score": 0.5}],
                metrics={"hit@5": float(i % 2), "mrr": 1 / (1 + i % 5), "toxicity": (i % 7) / 10},
                reasons={"toxicity": "fine"},
                errors={"correctness": "judge reply is not JSON"} if i == 3 else {},
            )
        )
    means, counts = mean_metrics(rows)
    rep = EvalReport(
        dataset={"path": "/x/qs.jsonl", "sha256": "ab" * 32, "rows": len(rows)},
        config={"k": 5, "mode": "hybrid", "collection": "docs"},
        config_hash="f" * 16,
        metrics=means,
        counts=counts,
        rows=rows,
        usage={"calls": 3, "cached": 1, "failed": 0},
        robustness={
            "typos": {
                "metrics": {"mrr": {"original": 0.5, "perturbed": 0.4, "delta": -0.1, "rows": 25}},
                "example": {"original": "a", "perturbed": "b"},
            }
        },
        created_at="2026-01-01T00:00:00+00:00",
        run_id=7,
    )
    rep.gates = [{"metric": "mrr", "threshold": 0.9, "value": means["mrr"], "passed": False, "check": "x"}]
    rep.comparison = {
        "base": {"run_id": 6},
        "metrics": [{"metric": "mrr", "base": 0.6, "new": means["mrr"], "delta": -0.1, "status": "regressed"}],
    }
    return rep


# recorded runs planted for the trend chart: hit@5 rises, mrr falls
TREND = [
    {"id": 5, "metrics": {"hit@5": 0.40, "mrr": 0.70}},
    {"id": 6, "metrics": {"hit@5": 0.55, "mrr": 0.60}},
    {"id": 7, "metrics": {"hit@5": 0.80, "mrr": 0.45}},
]
# appended to the page by the test only: the laid-out size of the trend chart and of each series, as the browser
# computed them, written where --dump-dom shows them
_MEASURE = """<script>
var svg = document.querySelector('svg.trend-chart'), r = svg.getBoundingClientRect();
document.body.setAttribute('data-trend-box', Math.round(r.width) + 'x' + Math.round(r.height));
var sizes = [];
svg.querySelectorAll('polyline.series').forEach(function (p) {
  var b = p.getBBox(), s = getComputedStyle(p);
  sizes.push(p.getAttribute('data-metric') + ':' + Math.round(b.width) + 'x' + Math.round(b.height) + ':' +
             s.visibility + ':' + s.display);
});
document.body.setAttribute('data-trend-series', sizes.join(' '));
</script></body>"""


def test_report_renders_charts_and_table_without_console_errors(tmp_path):
    rep = _report()
    page = tmp_path / "report.html"
    page.write_text(render_html(rep, trend=TREND).replace("</body>", _MEASURE), encoding="utf-8")
    dom, console = open_in_chromium(page, tmp_path / "profile")
    assert console == []
    # the trend chart: laid out at its size, one visible, non-flat line per planted metric, the planted values
    assert re.search(r'data-trend-box="640x260"', dom), dom[:500]
    series = dict(
        (m, rest) for m, rest in (s.split(":", 1) for s in re.search(r'data-trend-series="([^"]*)"', dom)[1].split())
    )
    assert set(series) == {"hit@5", "mrr"}
    for rest in series.values():
        size, visibility, display = rest.split(":")
        w, h = map(int, size.split("x"))
        assert w > 400 and h > 40 and visibility == "visible" and display != "none", rest
    points = re.findall(r'<circle class="point" data-metric="([^"]+)" data-value="([^"]+)"', dom)
    assert [(m, float(v)) for m, v in points if m == "hit@5"] == [("hit@5", 0.4), ("hit@5", 0.55), ("hit@5", 0.8)]
    assert re.findall(r'class="run-label"[^>]*>(\d+)<', dom) == ["5", "6", "7"]
    assert re.search(r'<body[^>]*data-ready="3"', dom), "the report's script did not finish"
    assert dom.count('class="metric-chart"') == 3
    assert len(re.findall(r'<rect class="bar"', dom)) == 30  # 10 bins per chart
    table = dom.split('id="rows"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr") == 1 + 25
    assert "window.pwned" not in dom.split("<script>")[0].replace("&lt;script&gt;window.pwned", "")  # escaped text only
    assert "judge reply is not JSON" in table
    assert "http://" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_console_errors_are_detected(tmp_path):
    """The check above can fail: a report whose script breaks is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        render_html(_report()).replace("var table = document.getElementById('rows');", "var table = missingThing.x;")
    )
    dom, console = open_in_chromium(page, tmp_path / "profile")
    assert any("Uncaught" in c for c in console)
    assert not re.search(r"<body[^>]*data-ready", dom)
