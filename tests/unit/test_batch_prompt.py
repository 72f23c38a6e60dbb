"""`llmops batch --prompt FILE` reads prompt files as `eval run --prompt` does, `--prompt-text` takes the prompt
itself, and a run records the prompt's name and content hash (core.prompts' hash) in its report and run.json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmops_cli.cli.batch_cmd import _prompt_choice
from llmops_cli.core.batch.inputs import write_rows
from llmops_cli.core.batch.requests import Template, load_batch_prompt
from llmops_cli.core.batch.run import BatchOptions, execute, prepare
from llmops_cli.core.ports import Completion
from llmops_cli.core.prompts import BATCH, PromptTemplate
from llmops_cli.errors import InputError, UsageError

SECTIONED = """---
name: sentiment
kind: batch
description: not hashed
---
[system]
You label sentiment.
[user]
Label: {text}
"""


def test_a_prompt_file_with_sections_is_read_as_eval_reads_prompts_and_hashed_like_the_same_text(tmp_path):
    f = tmp_path / "label.md"
    f.write_text(SECTIONED)
    template, ref = load_batch_prompt(str(f))
    assert template == Template(user="Label: {text}", system="You label sentiment.")
    want = PromptTemplate(name="sentiment", kind=BATCH, system="You label sentiment.", user="Label: {text}").sha256
    assert ref == {"name": "sentiment", "sha256": want, "source": str(f)}
    # the same prompt given as text: another name, the same content hash
    inline, iref = load_batch_prompt(None, "Label: {text}", "You label sentiment.")
    assert inline == template and (iref["name"], iref["sha256"], iref["source"]) == ("inline", want, "--prompt-text")
    # a plain text file is the user part, sent as it is (trailing newline included: earlier runs' hashes hold)
    plain = tmp_path / "plain.txt"
    plain.write_text("Label: {text}\n")
    t2, r2 = load_batch_prompt(str(plain), system="S")
    assert t2 == Template(user="Label: {text}\n", system="S") and r2["name"] == "plain"
    assert r2["sha256"] != want
    f.write_text(SECTIONED.replace("kind: batch", "kind: answer"))
    with pytest.raises(InputError, match="answer prompt, not a batch prompt"):
        load_batch_prompt(str(f))
    with pytest.raises(InputError, match="mutually exclusive"):
        load_batch_prompt(str(plain), "x {text}")
    with pytest.raises(InputError, match="does not exist"):
        load_batch_prompt(str(tmp_path / "nope.md"))


class EchoLLM:
    async def acomplete(self, messages, *, model=None, **params):
        return Completion(text="ok", model=model or "m", input_tokens=1, output_tokens=1, cost=0.0)

    def complete(self, messages, **kw):
        raise AssertionError("batch calls acomplete")

    async def aclose(self) -> None:
        pass


def test_a_run_records_its_prompt_name_and_hash_in_the_report_and_run_json(tmp_path):
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"text": "good"}, {"text": "bad"}])
    f = tmp_path / "label.md"
    f.write_text(SECTIONED)
    plan = prepare(src, BatchOptions(model="fake/m", template=str(f)), tmp_path / "data")
    rep = execute(plan, lambda m: EchoLLM())
    assert rep.answered == 2
    assert rep.to_dict()["prompt"] == load_batch_prompt(str(f))[1] and rep.prompt["name"] == "sentiment"
    assert json.loads((plan.run_dir / "run.json").read_text())["prompt"]["sha256"] == rep.prompt["sha256"]
    # OpenAI Batch request rows carry their own messages: no prompt to record
    rows = tmp_path / "req.jsonl"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    write_rows(rows, [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}])
    assert prepare(rows, BatchOptions(model="fake/m"), tmp_path / "data").prompt is None


def test_prompt_spellings_file_text_and_the_older_ones(tmp_path):
    f = tmp_path / "p.md"
    f.write_text("Label: {text}")
    assert _prompt_choice(str(f), None, None, None) == (str(f), None)
    assert _prompt_choice(None, "Label: {text}", None, None) == (None, "Label: {text}")
    assert _prompt_choice(None, None, str(f), None) == (str(f), None)  # --template FILE (hidden)
    assert _prompt_choice(None, None, None, "{q}") == (None, "{q}")  # -p TEXT (hidden)
    # --prompt with the text itself, as before --prompt took files
    assert _prompt_choice("Classify: {text}", None, None, None) == (None, "Classify: {text}")
    with pytest.raises(UsageError, match="no such prompt file"):
        _prompt_choice("prompts/lable.md", None, None, None)
    with pytest.raises(UsageError, match="one of --prompt FILE and --prompt-text"):
        _prompt_choice(str(f), "x", None, None)


def test_batch_dry_run_names_the_prompt_and_help_hides_the_old_spellings(tmp_path, monkeypatch):
    from llmops_cli.cli.app import app

    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLMOPS_LLM_INPUT_COST_PER_TOKEN", "0.000001")
    monkeypatch.setenv("LLMOPS_LLM_OUTPUT_COST_PER_TOKEN", "0.000002")
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"text": "good"}])
    f = tmp_path / "label.md"
    f.write_text(SECTIONED)
    r = CliRunner().invoke(app, ["batch", str(src), "--model", "fake/m", "--prompt", str(f), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["prompt"]["name"] == "sentiment"
    assert doc["first_prompts"][0]["messages"][-1]["content"] == "Label: good"
    help_text = CliRunner().invoke(app, ["batch", "--help"], env={"COLUMNS": "200"}).output
    assert "--prompt-text" in help_text and "--template" not in help_text and " -p " not in help_text


def test_the_dry_run_table_shows_an_output_path_with_brackets_as_it_is(tmp_path, monkeypatch):
    # before: rich read "[draft]" as a style: the output row said ".../.results.csv"
    from llmops_cli.cli.app import app

    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "[draft].jsonl"
    write_rows(src, [{"text": "good"}])
    r = CliRunner().invoke(
        app, ["batch", str(src), "--model", "fake/m", "--prompt-text", "{text}", "--dry-run"], env={"COLUMNS": "300"}
    )
    assert r.exit_code == 0, r.output
    assert "[draft].results.jsonl" in r.stdout


def test_the_report_lines_count_one_row_in_the_singular(capsys):
    # before: "1 rows ended as errors ...; re-run with --retry-failed to try them again", "the price of 1 answers"
    from types import SimpleNamespace

    from llmops_cli.cli.batch_cmd import _print_report
    from llmops_cli.cli.output import Output

    def report(n: int) -> SimpleNamespace:
        return SimpleNamespace(
            rows=3, requests=3, answered=3 - n, errors=n, from_checkpoint=0, cache_hits=0, via="provider", calls=3,
            retries=0, input_tokens=1, output_tokens=1, cost_usd=None, cost_total_usd=None, elapsed_s=1.0,
            requests_per_s=3.0, pending=n, cost_unknown=n, output=None, output_kept=None, jobs=[],
            errors_by_kind={"rejected": n}, errors_file="e.jsonl", error_samples=[], run_dir="rd",
        )  # fmt: skip

    _print_report(Output(), report(1))
    err = " ".join(capsys.readouterr().err.split())
    assert "1 row ended as errors" in err and "try it again" in err and "the price of 1 answer is" in err
    assert "1 request is still with the provider" in err
    _print_report(Output(), report(2))
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "2 rows ended" in err
        and "try them again" in err
        and "the price of 2 answers is" in err
        and "2 requests are" in err
    )


def test_quiet_prints_no_info_lines_and_the_run_still_writes_its_output(tmp_path, monkeypatch):
    from llmops_cli.cli.app import app
    from tests.support.fakes import ScriptedLLM, use_fake_workspaces

    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLMOPS_TRACING_ENABLED", "false")
    use_fake_workspaces(monkeypatch, llm=ScriptedLLM("fake/m"))
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"text": "good"}, {"text": "bad"}])
    args = ["batch", str(src), "--model", "fake/m", "--prompt-text", "Label: {text}", "--client", "litellm"]
    loud = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a.jsonl")])
    assert loud.exit_code == 0, loud.output
    assert "wrote" in loud.stderr
    quiet = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b.jsonl"), "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and (tmp_path / "b.jsonl").exists()
