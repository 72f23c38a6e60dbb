"""cli.output.Output's diagnostics: user text is printed as it is (never read as rich markup) and one message stays
one line off a terminal (rich would otherwise wrap it at 80 columns, cutting paths in two)."""

from __future__ import annotations

import pytest

from llmops_cli.cli.output import Output


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch):
    # rich takes its width from COLUMNS when set; off a terminal it otherwise assumes 80
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def test_a_warning_about_a_bracketed_path_prints_the_path_on_one_line(capsys):
    source = "kb/[draft] notes.pdf"
    reason = "the PDF is encrypted and no password was given; decrypt it or leave it out with --exclude " + "x" * 40
    Output().warn(f"skipped {source}: {reason}")
    err = capsys.readouterr().err
    assert err == f"warning: skipped {source}: {reason}\n"


def test_info_prints_markup_like_text_literally_and_takes_a_style(capsys):
    out = Output()
    out.info("[bold]not bold[/bold] and [link=x]no link[/link] in kb/[draft]/a.md")
    out.info("a note in a style", style="dim")
    assert capsys.readouterr().err.splitlines() == [
        "[bold]not bold[/bold] and [link=x]no link[/link] in kb/[draft]/a.md",
        "a note in a style",
    ]


def test_control_characters_are_still_neutralised(capsys):
    Output().warn("evil \x1b]0;pwned\x07 name")
    assert capsys.readouterr().err == "warning: evil \\x1b]0;pwned\\x07 name\n"


def test_quiet_prints_no_info_and_no_progress_but_still_warnings(capsys, monkeypatch):
    out = Output(quiet=True)
    # even on a terminal, quiet means no progress bar
    monkeypatch.setattr(type(out.err), "is_terminal", property(lambda self: True))
    assert not out.interactive
    out.info("ingested 3 chunks")
    with out.progress("embed", total=3) as bar:
        bar.advance(3)
    out.warn("skipped a.pdf")
    out.print("data")
    captured = capsys.readouterr()
    assert captured.err == "warning: skipped a.pdf\n"
    assert captured.out == "data\n"
    assert Output().interactive  # the same terminal without quiet does show progress


def test_phases_show_the_count_and_an_eta_only_once_the_total_is_final():
    import io
    import re

    from rich.console import Console

    from llmops_cli.cli.eval_cmd import _stage_progress

    def frames(steps) -> str:
        out = Output()
        buf = io.StringIO()
        out.err = Console(file=buf, force_terminal=True, width=160, color_system=None)
        with out.phases("chunks") as bar:
            for step in steps:
                step(bar)
                bar.p.refresh()
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())

    growing = frames([lambda b: b.show("embed", 4, 8), lambda b: b.show("embed", 6, 9)])
    assert "embed" in growing and "6/9 chunks" in growing and "ETA" not in growing
    final = frames([lambda b: b.show("embed", 2, 9, final=True), lambda b: b.show("embed", 6, 9, final=True)])
    assert "6/9 chunks" in final and "ETA" in final
    # eval's stages: a stage with a total is final; one without shows its name only
    stages = frames([lambda b: _stage_progress(b)("retrieving", 0, 0), lambda b: _stage_progress(b)("judging", 3, 5)])
    assert "retrieving" in stages and "3/5 chunks" in stages and "ETA" in stages.split("judging", 1)[1]


def test_every_phase_is_drawn_even_one_shorter_than_a_refresh_tick():
    # before: a fast "plan" phase could start and end between two of rich's ticks and never be on screen
    import io
    import re

    from rich.console import Console

    out = Output()
    buf = io.StringIO()
    out.err = Console(file=buf, force_terminal=True, width=160, color_system=None)
    with out.phases("chunks") as bar:
        for phase in ("plan", "parse", "embed", "index"):
            bar.show(phase, 1, 2)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert all(re.search(rf"\b{phase}\b", shown) for phase in ("plan", "parse", "embed", "index")), shown


def test_table_cells_are_text_not_markup_unless_styled():
    import io

    from rich.console import Console

    from llmops_cli.cli.output import styled

    out = Output()
    buf = io.StringIO()
    out.out = Console(file=buf, width=160, color_system=None)
    # a source named "[draft] notes.md" lost "[draft]"; a question with "[/]" crashed the table (MarkupError)
    out.table(["source", "question", "gate"], [("kb/[draft] notes.md", "what does [/] do?", styled("[red]FAIL[/red]"))])
    shown = buf.getvalue()
    assert "kb/[draft] notes.md" in shown and "what does [/] do?" in shown
    assert "FAIL" in shown and "[red]" not in shown  # a styled cell is still read as markup


def test_the_live_run_view_labels_mapped_tasks(monkeypatch):
    # "work [mapped]" was read as rich markup (an unknown style): the live view showed "work" alone
    import io

    import rich.live
    from rich.console import Console

    import llmops_cli.cli.airflow_watch as watch
    from llmops_cli.core.orchestration import TaskSummary, WaitUpdate

    shown = []

    class FakeLive:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, renderable):
            buf = io.StringIO()
            Console(file=buf, width=120, color_system=None).print(renderable)
            shown.append(buf.getvalue())

        def refresh(self):
            pass

    def fake_wait(client, dag_id, run_id, *, timeout_s, on_update):
        on_update(WaitUpdate(1.0, {"state": "running"}, [TaskSummary("work", True, {"success": 2, "running": 1})]))
        return "done"

    monkeypatch.setattr(rich.live, "Live", FakeLive)
    monkeypatch.setattr(watch, "wait_for_run", fake_wait)
    assert watch._watch_live(None, Output(), "d", "r1", None) == "done"
    assert "work [mapped]" in shown[0] and "2/3 success" in shown[0]
