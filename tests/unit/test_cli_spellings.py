"""One spelling per concept: eval sweep spells its chunking and embedder flags as `llmops ingest` does, -m means
--comment (feedback) and -n --limit, --judge-model is the judge; the old spellings still parse (hidden) into the
same parameters and are not shown in help."""

from __future__ import annotations

import pytest
import typer

from llmops_cli.cli.app import app


def _command(*path: str):
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("llmops", ["--help"], resilient_parsing=True)
    for name in path:
        cmd = cmd.get_command(ctx, name)
        ctx = cmd.make_context(name, [], resilient_parsing=True, parent=ctx)
    return cmd, ctx


def _parse(path: tuple[str, ...], args: list[str]) -> dict:
    cmd, parent = _command(*path[:-1])
    sub = cmd.get_command(parent, path[-1])
    return sub.make_context(path[-1], args, parent=parent).params


def _help(path: tuple[str, ...]) -> str:
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output


NEW_AND_OLD = [
    (("eval", "sweep"), ["d.jsonl", "--sources", "docs"], "--chunker", "--strategy", "chunker", "strategy", "headings"),
    (("eval", "sweep"), ["d.jsonl", "--sources", "docs"], "--chunk-size", "--size", "chunk_size", "size", "128"),
    (
        ("eval", "sweep"),
        ["d.jsonl", "--sources", "docs"],
        "--chunk-overlap",
        "--overlap",
        "chunk_overlap",
        "overlap",
        "8",
    ),
    (
        ("eval", "sweep"),
        ["d.jsonl", "--sources", "docs"],
        "--embed-model",
        "--embedder",
        "embed_model",
        "embedder",
        "m",
    ),
    (("eval", "run"), ["d.jsonl"], "--metrics", "-m", "metrics", "metrics_m", "retrieval"),
    (("eval", "generate"), [], "--count", "-n", "n", "n_old", "5"),
    (("feedback", "review"), [], "--judge-model", "--model", "judge_model", "model", "judge/big"),
]


@pytest.mark.parametrize(("path", "base", "new", "old", "new_param", "old_param", "value"), NEW_AND_OLD)
def test_new_spelling_shown_old_one_hidden_but_parsed(path, base, new, old, new_param, old_param, value):
    text = _help(path)
    assert new in text
    assert f"{old} " not in text and f"{old}," not in text
    parsed_new = _parse(path, [*base, new, value])
    parsed_old = _parse(path, [*base, old, value])
    as_list = new_param not in ("n", "judge_model")
    expected = [type(parsed_new[new_param][0] if as_list else parsed_new[new_param])(value)]
    assert (parsed_new[new_param] if as_list else [parsed_new[new_param]]) == expected
    assert (parsed_old[old_param] if as_list else [parsed_old[old_param]]) == expected


def test_m_is_the_comment_on_feedback_and_quiet_is_everywhere_long_work_runs():
    assert _parse(("feedback", "rate"), ["a1", "up", "-m", "wrong page"])["comment"] == "wrong page"
    for path in [("ingest",), ("eval", "run"), ("eval", "sweep"), ("eval", "generate"), ("feedback", "review")]:
        assert "--quiet" in _help(path) and "-q" in _help(path), path
