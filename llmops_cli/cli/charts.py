"""Charts in the terminal (plotext, imported only when a chart is asked for): metric trends across evaluation
runs, and a collection's chunk-length histogram. Each returns the chart as text for Output.print."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmops_cli.core.eval.charts_svg import trend_metrics
from llmops_cli.errors import UsageError

# the clear theme still ends each line with a reset code: taken out, so that a chart is plain text off a terminal
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _built(plt, color: bool) -> str:
    text = plt.build()
    return text if color else _ANSI.sub("", text)


def _plt(width: int | None, height: int | None, color: bool):
    """plotext's one global figure, cleared and sized (plotext 5.3's API: pinned)."""
    try:
        import plotext as plt
    except ImportError:  # an optional dependency: the hint says how to get it
        raise UsageError("charts need plotext", hint="pip install plotext") from None
    plt.clear_figure()
    cols = width or min(os.get_terminal_size(1).columns if os.isatty(1) else 100, 120)
    plt.plotsize(cols, height or 20)
    if not color:
        plt.theme("clear")
    return plt


def trend_chart(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    color: bool = False,
) -> str:
    """A line per metric across ``runs`` (dicts with "id" and "metrics"), oldest first; x ticks are run ids."""
    runs = sorted(runs, key=lambda r: r["id"])
    names = list(metrics) if metrics else trend_metrics(runs)
    plt = _plt(width, height, color)
    xs = list(range(len(runs)))
    for m in names:
        pts = [
            (i, r["metrics"][m]) for i, r in zip(xs, runs, strict=True) if isinstance(r["metrics"].get(m), (int, float))
        ]
        if pts:
            plt.plot([p[0] for p in pts], [p[1] for p in pts], label=m, marker="dot")
    plt.xticks(xs, [str(r["id"]) for r in runs])
    plt.title("metric trends across runs")
    plt.xlabel("run")
    plt.ylabel("score")
    return _built(plt, color)


def histogram_chart(
    lengths: Sequence[int], *, bins: int = 20, width: int | None = None, height: int | None = None, color: bool = False
) -> str:
    """How many chunks have each length (characters)."""
    plt = _plt(width, height, color)
    plt.hist(list(lengths), bins=bins)
    plt.title(f"chunk lengths ({len(lengths)} chunks)")
    plt.xlabel("chunk length (characters)")
    plt.ylabel("chunks")
    return _built(plt, color)


def bar_chart(bars: Sequence[Mapping[str, Any]], *, title: str, width: int | None = None, color: bool = False) -> str:
    """A horizontal bar per entry ({"label", "value"}), in the order given; entries without a value are left out."""
    shown = [b for b in bars if isinstance(b.get("value"), (int, float))]
    plt = _plt(width, max(4, 2 * len(shown) + 4), color)
    plt.bar([str(b["label"]) for b in shown], [float(b["value"]) for b in shown], orientation="horizontal", width=0.3)
    plt.title(title)
    return _built(plt, color)
