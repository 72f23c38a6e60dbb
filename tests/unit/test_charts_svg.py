"""The hand-drawn SVG charts of the HTML reports: one line per metric in run order, bars in leaderboard order and
proportional to the value, labels escaped."""

from __future__ import annotations

import re

from llmops_cli.core.eval.charts_svg import leaderboard_svg, trend_metrics, trend_svg


def test_trend_lines_follow_the_runs_in_id_order_and_rise_where_the_metric_rises():
    runs = [
        {"id": 9, "metrics": {"hit@5": 0.9, "mrr": 0.2}},
        {"id": 3, "metrics": {"hit@5": 0.1, "mrr": 0.5, "rare": 1.0}},
        {"id": 5, "metrics": {"hit@5": 0.5, "mrr": 0.4}},
    ]
    assert trend_metrics(runs, limit=2) == ["hit@5", "mrr"]
    svg = trend_svg(runs, ["hit@5", "<b>"])
    assert re.findall(r'class="run-label"[^>]*>(\d+)<', svg) == ["3", "5", "9"]
    points = re.search(r'data-metric="hit@5" points="([^"]+)"', svg)[1].split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] > ys[1] > ys[2]  # SVG y grows downwards: a rising metric
    assert "<b>" not in svg  # a metric without values draws nothing, and its name would be escaped


def test_leaderboard_bars_are_proportional_and_labels_escaped():
    svg = leaderboard_svg(
        [
            {"label": "headings 254", "value": 0.8},
            {"label": "<tokens> 128", "value": 0.4},
            {"label": "x", "value": None},
        ],
        "ndcg@5",
    )
    widths = [float(w) for w in re.findall(r'<rect class="bar"[^>]* width="([\d.]+)"', svg)]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    assert "&lt;tokens&gt; 128" in svg and "<tokens>" not in svg and "n/a" in svg


def test_the_sweep_page_and_the_terminal_bar_chart_show_each_configuration():
    from llmops_cli.cli.charts import bar_chart
    from llmops_cli.core.eval.charts_svg import sweep_page

    bars = [
        {"label": "auto/254/0", "value": 0.81},
        {"label": "auto/200/30", "value": 0.74},
        {"label": "x", "value": None},
    ]
    report = {
        "dataset": "qs.jsonl",
        "rank_by": "hit@5",
        "leaderboard": [
            {
                "rank": 1,
                "strategy": "auto",
                "size": 254,
                "overlap": 0,
                "embedder": "m",
                "chunks": 9,
                "metrics": {"hit@5": 0.81},
            },
            {
                "rank": 2,
                "strategy": "auto",
                "size": 200,
                "overlap": 30,
                "embedder": "m",
                "chunks": 12,
                "metrics": {"hit@5": 0.74},
            },
        ],
    }
    page = sweep_page(report, bars)
    assert page.count('class="bar"') == 3 and "0.810" in page and "0.740" in page and "n/a" in page
    assert page.index("auto/254/0") < page.index("auto/200/30") and "<td>12</td>" in page
    text = bar_chart(bars, title="sweep leaderboard (hit@5)", width=80)
    assert "sweep leaderboard (hit@5)" in text and "auto/254/0" in text and "auto/200/30" in text
    assert "\x1b[" not in text  # plain text off a terminal
