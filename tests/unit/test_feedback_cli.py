"""`llmops ask` recording and cache, `llmops history`, `llmops feedback` in-process, on fakes (memory store,
bag-of-words embedder, a scripted LLM, handed to the commands as a workspace of fakes): the command surface, JSON
shapes and exit codes, and how often one ask opens each resource."""

from __future__ import annotations

import json
import os

import pytest

from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.core.ports import LLM, Completion
from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry.ingest import ingest
from llmops_cli.errors import LlmopsError
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore, use_fake_workspaces

VERDICT = {
    "helpfulness": {"score": 5, "reason": "r"},
    "relevance": {"score": 5, "reason": "r"},
    "publicness": {"public": True, "reason": "r"},
}


class RoutingLLM(LLM):
    model = "fake/llm"

    def __init__(self):
        self.calls: list[str] = []
        self.verdict = json.dumps(VERDICT)

    def complete(self, messages, **params) -> Completion:
        system = messages[0]["content"]
        kind = (
            "judge" if system.startswith("You review") else "reword" if system.startswith("You rewrite") else "answer"
        )
        self.calls.append(kind)
        text = {
            "judge": self.verdict,
            "reword": "rotate secrets frobnicator",
            "answer": "Run `frob rotate --all` [1].",
        }[kind]
        return Completion(text=text, model=self.model, input_tokens=7, output_tokens=3, cost=0.0001)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/llm")
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "1")
    store, emb, llm = MemoryStore(), FakeEmbedder(), RoutingLLM()
    use_fake_workspaces(monkeypatch, store=store, embedder=emb, llm=llm)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frob.md").write_text("# Frobnicator\n\n## Credentials\n\nRotate them with frob rotate --all.\n")
    (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
    with FakeWorkspace(load_settings(None).settings, store=store, embedder=emb, llm=llm) as ws:
        ingest(ws, [str(docs)])
    return store, llm


def invoke(capsys, *args):
    """Run the CLI the way app.main() does: LlmopsError -> its exit code, click usage errors -> 2."""
    import typer

    from llmops_cli.cli.app import app
    from llmops_cli.cli.state import AppState, set_state

    set_state(AppState())
    code, message = 0, ""
    try:
        rv = typer.main.get_command(app).main(list(args), prog_name="llmops", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0  # typer.Exit(n) comes back as n without standalone mode
    except LlmopsError as e:
        code, message = int(e.exit_code), e.message
    except Exception as e:  # click's usage errors (typer may vendor its own click): exit_code 2 + a message
        if not hasattr(e, "format_message"):
            raise
        code, message = e.exit_code, e.format_message()
    out, err = capsys.readouterr()
    return code, out, err + message


def ok_json(capsys, *args):
    code, out, err = invoke(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


Q = "How do I rotate the frobnicator credentials?"


def test_ask_is_recorded_rated_reviewed_promoted_then_served_from_the_cache(project, capsys):
    store, llm = project
    first = ok_json(capsys, "ask", Q)
    aid = first["answer_id"]
    assert (
        first["cache"] is None
        and first["answer"] == "Run `frob rotate --all` [1]."
        and llm.calls == ["reword", "answer"]
    )

    code, out, err = invoke(capsys, "ask", "How do I add widgets?")
    assert code == 0 and "answer id: " in err and "answer id" not in out

    hist = ok_json(capsys, "history", "--limit", "10")["answers"]
    assert [a["id"] for a in hist][-1] == aid and hist[-1]["rewordings"] == ["rotate secrets frobnicator"]
    assert (
        hist[-1]["chunks"][0]["source"].endswith(".md") and hist[-1]["input_tokens"] == 14 and hist[-1]["rating"] == 0
    )
    code, out, _ = invoke(capsys, "history")
    assert code == 0 and aid in out and "Answer log" in out

    code, _, err = invoke(capsys, "feedback", aid[:5], "up", "--comment", "spot on")
    assert code == 0 and f"rated {aid} up" in err

    reviewed = ok_json(capsys, "feedback", "review")
    assert reviewed["reviewed"] == 2 and aid in reviewed["promotion"]["promoted"] and llm.calls.count("judge") == 2
    assert any(h.metadata.get("answer_id") == aid for h in store.get("docs", where={"kind": "promoted_answer"}))

    shown = ok_json(capsys, "history", "show", aid)
    assert shown["ratings"][0] == {**shown["ratings"][0], "rating": "up", "comment": "spot on"}
    assert shown["review"]["helpfulness"] == 1.0 and shown["promotion"]["active"] is True
    code, out, _ = invoke(capsys, "history", "show", aid)
    assert "review: helpfulness 1.00" in out and "promoted: in collection docs" in out

    n = len(llm.calls)
    cached = ok_json(capsys, "ask", Q)
    assert cached["cache"]["answer_id"] == aid and len(llm.calls) == n and cached["answer_id"] != aid
    assert cached["answer"].startswith("Run `frob rotate --all`") and "[1]" not in cached["answer"]
    assert ok_json(capsys, "ask", Q, "--no-cache")["cache"] is None and len(llm.calls) > n

    removed = ok_json(capsys, "feedback", cached["answer_id"], "down")
    assert removed["promoted_answer"] == aid and removed["promotion"]["removed"] == [
        {"id": aid, "reason": "rated down"}
    ]
    assert store.get("docs", where={"kind": "promoted_answer"}) == [] or all(
        h.metadata["answer_id"] != aid for h in store.get("docs", where={"kind": "promoted_answer"})
    )
    assert ok_json(capsys, "ask", Q)["cache"] is None


def test_review_exit_code_3_when_a_verdict_does_not_parse(project, capsys):
    _store, llm = project
    ok_json(capsys, "ask", Q)
    llm.verdict = "no idea"
    code, _, err = invoke(capsys, "feedback", "review")
    assert code == 3 and "review error" in err
    llm.verdict = json.dumps(VERDICT)
    assert ok_json(capsys, "feedback", "review")["reviewed"] == 0
    assert ok_json(capsys, "feedback", "review", "--retry-errors")["reviewed"] == 1


def test_promote_dry_run_and_export(project, capsys, tmp_path):
    store, _llm = project
    aid = ok_json(capsys, "ask", Q)["answer_id"]
    ok_json(capsys, "feedback", "review", "--no-promote")
    assert store.get("docs", where={"kind": "promoted_answer"}) == []
    dry = ok_json(capsys, "feedback", "promote", "--dry-run")
    assert dry["promoted"] == [aid] and dry["dry_run"] and store.get("docs", where={"kind": "promoted_answer"}) == []
    assert ok_json(capsys, "feedback", "promote")["promoted"] == [aid]

    # nothing good in a collection (or a typo'd name): an empty dataset, and a warning that says why
    code, out, err = invoke(capsys, "feedback", "export", "--collection", "dcos")
    assert (code, out) == (0, "") and "no answer in collection 'dcos' meets the promotion rule yet" in err

    code, out, err = invoke(capsys, "feedback", "export", "--format", "openai-chat")
    rows = [json.loads(line) for line in out.splitlines()]
    assert (
        code == 0
        and len(rows) == 1
        and rows[0]["messages"][1] == {"role": "user", "content": Q}
        and "1 example\n" in err
    )
    res = ok_json(capsys, "feedback", "export", "--output", str(tmp_path / "out" / "ft.jsonl"), "--system", "")
    assert (
        res["examples"] == 1
        and json.loads((tmp_path / "out" / "ft.jsonl").read_text())["messages"][0]["role"] == "user"
    )


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["feedback", "abcdef123456", "up"], 9, "no answer with id"),
        (["history", "show", "zz"], 9, "no answer with id"),
        (["feedback", "abcdef123456", "sideways"], 2, "sideways"),
        (["feedback", "export", "--format", "alpaca"], 2, "alpaca"),
        (["feedback", "export", "--json"], 2, "--json needs --output"),
        (["ask", "frob?", "--model", ""], 2, "Invalid value for '--model': is empty"),  # was "no LLM is configured"
    ],
)
def test_bad_input_is_one_line_and_a_documented_code(project, capsys, args, code, text):
    got, _out, err = invoke(capsys, *args)
    assert got == code and text in err


def test_a_question_that_reads_like_rich_markup_is_shown_as_it_is(project, capsys, monkeypatch):
    # before: `llmops history` and the review table died with "internal error: MarkupError: closing tag '[/]'"
    monkeypatch.setenv("COLUMNS", "200")
    q = "what is [/] and [bold]x[/bold] in frob?"
    ok_json(capsys, "ask", q)
    code, out, err = invoke(capsys, "history")
    assert code == 0 and q in out, err
    code, out, err = invoke(capsys, "feedback", "review")
    assert code == 0 and q in out, err


def test_history_s_answers_are_documented_as_they_are_in_docs_json_md(project, capsys):
    # docs/json.md said "each answer as history show without the ratings": `review` is a status string there, not
    # show's object, and `rating` / `promoted` stand for show's `promotion`
    from pathlib import Path

    aid = ok_json(capsys, "ask", Q)["answer_id"]
    ok_json(capsys, "feedback", "review")
    listed = ok_json(capsys, "history")["answers"][0]
    shown = ok_json(capsys, "history", "show", aid)
    assert set(listed) == (set(shown) - {"schema_version", "ratings", "promotion"}) | {"rating", "promoted"}
    assert listed["review"] == "ok" and listed["promoted"] is True and isinstance(shown["review"], dict)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text()
    row = next(ln for ln in docs.splitlines() if ln.startswith("| `history` | `answers: [...]`"))
    assert all(f"`{k}`" in row for k in ("votes", "rating", "review", "promoted", "ratings", "promotion"))


def test_history_on_an_empty_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "state"))
    assert ok_json(capsys, "history") == {"schema_version": 1, "answers": []}
    code, _, err = invoke(capsys, "history")
    assert code == 0 and "no answers recorded yet" in err
    # a filter that matches nothing says so (the log may hold other answers), not "none recorded yet"
    code, _, err = invoke(capsys, "history", "--kind", "batch", "--collection", "nope")
    assert code == 0 and "no answers of kind batch in collection 'nope'" in err
    code, _, err = invoke(capsys, "history", "--collection", "nope")
    assert "no answers in collection 'nope': llmops history without --kind/--collection" in err


def _no_llm_hint(tmp_path, monkeypatch, *args) -> str:
    """The hint of the 'no LLM is configured' error that ``llmops ARGS`` stops with."""
    import typer

    from llmops_cli.cli.app import app
    from llmops_cli.cli.state import AppState, set_state
    from llmops_cli.errors import NotConfiguredError

    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "state"))
    set_state(AppState())
    with pytest.raises(NotConfiguredError, match="no LLM is configured") as e:
        typer.main.get_command(app).main(list(args), prog_name="llmops", standalone_mode=False)
    assert int(e.value.exit_code) == 2
    return e.value.hint or ""


def test_review_without_an_llm_says_how_to_configure_the_judge(tmp_path, monkeypatch):
    hint = _no_llm_hint(tmp_path, monkeypatch, "feedback", "review")
    # its own settings and flag, not ask's --retrieval-only (which review does not have)
    assert "--retrieval-only" not in hint
    assert "feedback.judge_model" in hint and "LLMOPS_FEEDBACK_JUDGE_MODEL" in hint and "LLMOPS_LLM_MODEL" in hint
    assert "--judge-model" in hint


@pytest.mark.parametrize(
    "args, flags, not_flags",
    [
        (["ask", "what?"], ["--model", "--retrieval-only"], []),
        (["eval", "generate", "--output", "qs.jsonl"], ["--model"], ["--retrieval-only"]),
    ],
)
def test_every_no_llm_hint_names_only_flags_the_command_has(tmp_path, monkeypatch, args, flags, not_flags):
    hint = _no_llm_hint(tmp_path, monkeypatch, *args)
    assert "llm.model" in hint and "LLMOPS_LLM_MODEL" in hint
    assert all(f in hint for f in flags) and not any(f in hint for f in not_flags)


def test_the_judge_can_have_its_own_endpoint(project, capsys, monkeypatch):
    store, _llm = project
    judge = RoutingLLM()

    ok_json(capsys, "ask", Q)
    events = use_fake_workspaces(monkeypatch, store=store, embedder=FakeEmbedder(), llm=judge)
    monkeypatch.setenv("LLMOPS_FEEDBACK_JUDGE_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLMOPS_FEEDBACK_JUDGE_API_KEY", "sk-judge-key-000000000000")
    assert ok_json(capsys, "feedback", "review", "--model", "judge/big")["reviewed"] == 1
    seen = [e[1:] for e in events if e[0] == "llm"]
    assert seen == [("judge/big", "http://127.0.0.1:9/v1", "sk-judge-key-000000000000")] and judge.calls == ["judge"]


def test_a_judge_on_its_own_endpoint_that_fails_names_the_judge_s_settings_in_the_hint(project, capsys, monkeypatch):
    # before: "check llm.api_base (LLMOPS_LLM_API_BASE)": the answering model's setting, which was fine
    from llmops_cli.core.ports import LLMAuthError, LLMUnreachableError

    store, _llm = project
    ok_json(capsys, "ask", Q)
    for error, code, words in (
        (
            LLMUnreachableError(
                "down", retryable=True, hint="is the server running? check llm.api_base (LLMOPS_LLM_API_BASE)"
            ),
            7,
            "check feedback.judge_api_base (LLMOPS_FEEDBACK_JUDGE_API_BASE)",
        ),
        (
            LLMAuthError("rejected", hint="set the API key (llm.api_key, LLMOPS_LLM_API_KEY, or OPENAI_API_KEY)"),
            8,
            "set the API key (feedback.judge_api_key, LLMOPS_FEEDBACK_JUDGE_API_KEY, or OPENAI_API_KEY)",
        ),
    ):

        class Failing(RoutingLLM):
            def complete(self, messages, error=error, **params):
                raise error

        use_fake_workspaces(monkeypatch, store=store, embedder=FakeEmbedder(), llm=Failing())
        monkeypatch.setenv("LLMOPS_FEEDBACK_JUDGE_API_BASE", "http://127.0.0.1:9/v1")
        monkeypatch.setenv("LLMOPS_FEEDBACK_JUDGE_API_KEY", "sk-judge-key-000000000000")
        got, _, _ = invoke(capsys, "feedback", "review")
        assert got == code and words in error.hint and "llm.api" not in error.hint


def test_cache_lookup_opens_the_log_once_and_touches_nothing_else_when_nothing_is_promoted(
    project, capsys, monkeypatch
):
    store, llm = project
    settings = load_settings(None).settings
    meta = store.collection_metadata("docs")

    def lookup():
        ws = FakeWorkspace(settings, store=store, llm=llm)
        return ws, ask_entry._cached_answer(ws, ws.answer_log(), Q, "docs", meta, None)

    ws, res = lookup()
    assert res is None
    assert ws.events == [("answer_log",)]  # no store opened, no embedder loaded
    ws.close()

    aid = ok_json(capsys, "ask", Q)["answer_id"]
    ok_json(capsys, "feedback", aid, "up")
    assert aid in ok_json(capsys, "feedback", "review")["promotion"]["promoted"]
    ws, res = lookup()
    ws.close()
    assert res.cache_hit["answer_id"] == aid and res.answer_id not in (None, aid) and res.record_error is None
    assert ws.count("answer_log") == 1  # the lookup and the recording of the served copy share one open
    with AnswerLog.for_data_dir(settings.data_path) as log:
        assert log.get(res.answer_id).cached_from == aid


def test_one_ask_opens_each_resource_once(project, capsys, monkeypatch):
    """One `llmops ask`, cache miss then cache hit: the store opened once, the collection looked up once, the
    answer log opened once and the LLM stack built once (the CLI's fail-fast check and the answer share it)."""
    store, llm = project
    events = use_fake_workspaces(monkeypatch, store=store, embedder=FakeEmbedder(), llm=llm)

    def one_ask() -> dict:
        events.clear()
        reads = store.metadata_reads
        doc = ok_json(capsys, "ask", Q, "--mode", "vector")  # vector: the BM25 index reads its generation too
        built = {kind: sum(1 for e in events if e[0] == kind) for kind in ("store", "answer_log", "llm")}
        assert built == {"store": 1, "answer_log": 1, "llm": 1}, events
        assert store.metadata_reads - reads == 1
        return doc

    miss = one_ask()
    assert miss["cache"] is None and llm.calls[-1] == "answer"
    ok_json(capsys, "feedback", miss["answer_id"], "up")
    assert miss["answer_id"] in ok_json(capsys, "feedback", "review")["promotion"]["promoted"]
    calls = len(llm.calls)
    hit = one_ask()
    assert hit["cache"]["answer_id"] == miss["answer_id"] and len(llm.calls) == calls


def test_history_shows_one_vote_per_rater_and_the_latest_wins(project, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the feedback column in full
    flip = ok_json(capsys, "ask", Q)["answer_id"]
    twice = ok_json(capsys, "ask", "How do I add widgets?")["answer_id"]
    for args in [(flip, "up"), (flip, "down"), (twice, "up"), (twice, "up"), (twice, "down", "--by", "bob")]:
        code, _, err = invoke(capsys, "feedback", *args)
        assert code == 0, err
    hist = {a["id"]: a for a in ok_json(capsys, "history")["answers"]}
    assert hist[flip]["votes"] == {"up": 0, "down": 1} and hist[twice]["votes"] == {"up": 1, "down": 1}
    _, out, _ = invoke(capsys, "history")
    row = {i: line for line in out.splitlines() for i in (flip, twice) if i in line}
    assert "0 up / 1 down" in row[flip] and "1 up / 1 down" in row[twice]
    shown = ok_json(capsys, "history", "show", flip)
    assert shown["votes"] == {"up": 0, "down": 1} and [r["rating"] for r in shown["ratings"]] == ["up", "down"]
    _, out, _ = invoke(capsys, "history", "show", flip)
    assert "rated up" in out and "(replaced by a later vote)" in out
