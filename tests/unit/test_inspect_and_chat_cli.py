"""Looking into collections (`collections show|sources|export`, `chunks get`, chunk ids in `query`), questions from
stdin, `ask` in a pipe, and `llmops chat`, in-process on fakes (memory store, bag-of-words embedder, a scripted
LLM handed to the commands as a workspace of fakes). The real store and model: tests/integration/test_local_rag.py."""

from __future__ import annotations

import io
import json
import os

import pytest

from llmops_cli.core.ports import LLM, Completion
from llmops_cli.entry.ingest import ingest
from llmops_cli.errors import NotConfiguredError
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore, use_fake_workspaces
from tests.unit.test_feedback_cli import invoke, ok_json


class ChatLLM(LLM):
    """Answers by the kind of request (follow-up rewrite, rewording, answer) and remembers each request's messages."""

    model = "fake/chat"

    def __init__(self):
        self.calls: list[tuple[str, list[dict[str, str]]]] = []

    def complete(self, messages, **params) -> Completion:
        system = messages[0]["content"]
        kind = (
            "condense"
            if system.startswith("You rewrite the last question")
            else "reword"
            if system.startswith("You rewrite questions")
            else "answer"
        )
        self.calls.append((kind, list(messages)))
        text = {
            "condense": "How do I undo a frobnicator credential rotation?",
            "reword": "frobnicator credentials",
            "answer": f"Answer {sum(1 for k, _ in self.calls if k == 'answer')} [1].",
        }[kind]
        return Completion(text=text, model=self.model, input_tokens=5, output_tokens=2)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.calls]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/chat")
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "1")
    store, emb, llm = MemoryStore(), FakeEmbedder(), ChatLLM()
    use_fake_workspaces(monkeypatch, store=store, embedder=emb, llm=llm)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frob.md").write_text(
        "# Frobnicator\n\n## Credentials\n\nRotate them with frob rotate --all.\n\n"
        "## Undo\n\nfrob rollback undoes it.\n"
    )
    (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
    with FakeWorkspace(load_settings(None).settings, store=store, embedder=emb, llm=llm) as ws:
        ingest(ws, [str(docs)], collection="docs")
    return store, llm


def test_a_collection_can_be_looked_into_chunk_by_chunk(project, capsys, tmp_path):
    store, _ = project
    shown = ok_json(capsys, "collections", "show", "docs")
    assert shown["chunks"] == store.count("docs") >= 2 and shown["sources"] == 2
    assert shown["embedder"] == "fake:bow" and shown["embedder_config"]["model"]
    assert shown["size"]["text_bytes"] > 0 and 0 < shown["chunk_chars"]["min"] <= shown["chunk_chars"]["max"]
    # the ingest recorded how it cut the chunks and when it last changed the collection
    assert shown["chunking"]["size"] > 0 and shown["last_ingest"].startswith("20")
    code, out, _ = invoke(capsys, "collections", "show", "docs")
    assert code == 0 and "fake:bow" in out and "chunk length" in out
    code, out, _ = invoke(capsys, "collections", "show", "docs", "--chart")
    assert code == 0 and f"chunk lengths ({shown['chunks']} chunks)" in out
    assert "chunk length (characters)" in out and any(line.startswith("chunks") for line in out.splitlines())
    assert "█" in out  # the bars

    sources = ok_json(capsys, "collections", "sources", "docs")["sources"]
    assert [s["source"] for s in sources] == ["docs/frob.md", "docs/widgets.md"]
    assert sum(s["chunks"] for s in sources) == shown["chunks"]

    # query's text output shows each hit's id; its start is enough for chunks get
    code, out, _ = invoke(capsys, "query", "frob rollback", "--collection", "docs")
    first = ok_json(capsys, "query", "frob rollback", "--collection", "docs")["hits"][0]
    assert code == 0 and first["id"][:12] in out
    got = ok_json(capsys, "chunks", "get", first["id"][:12])
    assert (got["collection"], got["id"], got["text"]) == ("docs", first["id"], first["text"])
    code, out, _ = invoke(capsys, "chunks", "get", first["id"], "--collection", "docs")
    assert code == 0 and first["text"].split()[0] in out
    code, _, err = invoke(capsys, "chunks", "get", "ffffffffffff")
    assert code == 9 and "no chunk with id 'ffffffffffff'" in err

    # export: every chunk with its metadata, never over an existing file without --force
    target = tmp_path / "out" / "docs.jsonl"
    done = ok_json(capsys, "collections", "export", "docs", "-o", str(target))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert done["chunks"] == len(rows) == shown["chunks"]
    assert {r["id"] for r in rows} == set(store.ids("docs")) and all(r["metadata"]["source"] for r in rows)
    target.write_text("keep me\n")
    code, _, err = invoke(capsys, "collections", "export", "docs", "-o", str(target))
    assert code == 2 and "already exists" in err and target.read_text() == "keep me\n"
    assert ok_json(capsys, "collections", "export", "docs", "-o", str(target), "--force")["chunks"] == len(rows)
    parquet = tmp_path / "docs.parquet"
    assert ok_json(capsys, "collections", "export", "docs", "-o", str(parquet))["format"] == "parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.num_rows == len(rows) and table.column_names == ["id", "text", "metadata"]
    assert sorted(json.loads(m)["source"] for m in table.column("metadata").to_pylist())[0] == "docs/frob.md"
    code, _, err = invoke(capsys, "collections", "export", "docs", "-o", str(tmp_path / "x.csv"))
    assert code == 2 and "cannot tell the export format of 'x.csv'" in err and not (tmp_path / "x.csv").exists()
    # the help says so (it said "from the extension, else jsonl", which x.csv is not)
    from typing import get_type_hints

    from llmops_cli.cli.collections_cmd import collections_export

    fmt_help = get_type_hints(collections_export, include_extras=True)["fmt"].__metadata__[0].help
    assert "else jsonl" not in fmt_help and "jsonl without --output" in fmt_help
    # a folder as --output: a usage error before any work (it was an internal error, even with --force), and the
    # file written has the usual permissions (it was 0600, mkstemp's)
    code, _, err = invoke(capsys, "collections", "export", "docs", "-o", str(tmp_path), "--format", "jsonl", "--force")
    assert code == 2 and f"--output {tmp_path} is a folder" in err and "internal error" not in err
    # under a file where a folder should be: refused before the export too (it was an internal error after it)
    (tmp_path / "afile").write_text("x")
    code, _, err = invoke(capsys, "collections", "export", "docs", "-o", str(tmp_path / "afile" / "x.jsonl"))
    assert code == 2 and "cannot write in" in err and "(it is not a folder)" in err
    old_umask = os.umask(0o022)
    try:
        assert ok_json(capsys, "collections", "export", "docs", "-o", str(target), "--force")["chunks"] == len(rows)
    finally:
        os.umask(old_umask)
    assert target.stat().st_mode & 0o777 == 0o644

    # a name that is not there: the ones that are, closest first
    code, _, err = invoke(capsys, "collections", "show", "doc")
    assert code == 9 and "collection 'doc' does not exist" in err and "(collections: docs)" in err
    # the hint names the collection, not an option this command does not have (NAME is an argument here)
    from llmops_cli.entry.store import collection_not_found

    assert collection_not_found(store, "doc").hint.startswith("did you mean 'docs'? (store.collection sets")
    assert "--collection" not in collection_not_found(store, "zzz").hint


def test_questions_from_stdin_and_ask_in_a_pipe_prints_only_the_answer(project, capsys, monkeypatch):
    _, llm = project
    monkeypatch.setattr("sys.stdin", io.StringIO("frob rollback\n"))
    assert ok_json(capsys, "query", "-", "--collection", "docs")["query"] == "frob rollback"

    monkeypatch.setattr("sys.stdin", io.StringIO("How do I rotate the frobnicator credentials?\n"))
    code, out, err = invoke(capsys, "ask", "-", "--collection", "docs")
    assert code == 0 and out == "Answer 1 [1].\n", out  # stdout is not a terminal: the answer alone
    assert "Sources" in err and "docs/frob.md" in err and "answer id: " in err
    assert llm.kinds() == ["reword", "answer"]

    code, out, err = invoke(capsys, "ask", "rotate credentials", "--collection", "docs", "--retrieval-only")
    assert code == 0 and "docs/frob.md" in out and "LLM" not in err and "llm.model" not in err
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    code, _, err = invoke(capsys, "ask", "-", "--collection", "docs")
    assert code == 2 and "the question is empty" in err
    assert "llmops query" not in err  # the hint is not about another command than the one run


def test_the_steps_of_an_ask_are_announced_in_order(project):
    from llmops_cli.entry import ask as ask_entry

    store, llm = project
    phases: list[str] = []
    with FakeWorkspace(load_settings(None).settings, store=store, embedder=FakeEmbedder(), llm=llm) as ws:
        ask_entry.ask(ws, "rotate credentials", collection="docs", on_phase=phases.append)
    assert phases == ["opening the collection", "rewording", "retrieving", "answering"]


def test_chat_answers_follow_ups_with_the_conversation_and_logs_each_turn(project, capsys, monkeypatch):
    _, llm = project
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO("How do I rotate the frobnicator credentials?\n\nAnd how do I undo that?\nexit\nnot read\n"),
    )
    code, out, err = invoke(capsys, "chat", "--collection", "docs")
    assert code == 0 and out.splitlines() == ["Answer 1 [1].", "Answer 2 [1]."], (out, err)
    # the first question stands alone; the follow-up is rewritten with the turn before it, then answered with it
    assert llm.kinds() == ["reword", "answer", "condense", "reword", "answer"]
    condense = llm.calls[2][1][-1]["content"]
    assert "How do I rotate the frobnicator credentials?" in condense and "Answer 1 [1]." in condense
    assert "And how do I undo that?" in condense
    answer = llm.calls[4][1]
    assert [m["role"] for m in answer] == ["system", "user", "assistant", "user"]
    assert "How do I undo a frobnicator credential rotation?" in answer[-1]["content"]

    turns = ok_json(capsys, "history", "--kind", "chat", "--limit", "10")["answers"]
    assert [t["question"] for t in turns][::-1] == [
        "How do I rotate the frobnicator credentials?",
        "And how do I undo that?",
    ]
    assert all(t["kind"] == "chat" for t in turns)
    code, _, err = invoke(capsys, "history", "--kind", "chats")  # a typo is an error, not "no answers recorded yet"
    assert code == 2 and "--kind chats" in err

    # --json: one document at the end, every turn in it as ask's document
    monkeypatch.setattr("sys.stdin", io.StringIO("How do I rotate the frobnicator credentials?\nAnd undo it?\n"))
    doc = ok_json(capsys, "chat", "--collection", "docs")
    assert doc["collection"] == "docs" and len(doc["conversation"]) == 12
    assert [t["turn"] for t in doc["turns"]] == [1, 2] and all(t["answer_id"] for t in doc["turns"])
    assert doc["turns"][1]["standalone_question"] == "How do I undo a frobnicator credential rotation?"
    assert doc["turns"][1]["hits"][0]["source"] == "docs/frob.md"


def test_chat_without_an_llm_or_collection_says_so_before_the_first_question(project, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("anything\n"))
    code, _, err = invoke(capsys, "chat", "--collection", "nope-docs")
    assert code == 9 and "(collections: docs)" in err
    monkeypatch.delenv("LLMOPS_LLM_MODEL")
    code, _, err = invoke(capsys, "chat", "--collection", "docs")
    assert code == int(NotConfiguredError.exit_code) and "no LLM is configured" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_at_a_terminal_a_failed_turn_is_reported_and_the_conversation_goes_on(project, capsys, monkeypatch):
    from llmops_cli.errors import LLMError

    _, llm = project
    real = llm.complete
    failures = iter([LLMError("LLM call failed: 503", hint="try again")])

    def flaky(messages, **params):
        err = next(failures, None)
        if err is not None:
            raise err
        return real(messages, **params)

    monkeypatch.setattr(llm, "complete", flaky)
    monkeypatch.setattr("sys.stdin", _Terminal("first question\nHow do I rotate the frobnicator credentials?\n"))
    code, out, err = invoke(capsys, "chat", "--collection", "docs")
    assert code == 0 and "error: LLM call failed: 503" in err and "hint: try again" in err
    assert "Answer 1 [1]." in out and llm.kinds() == ["reword", "answer"]  # the second question was answered


def test_verify_with_paths_judges_a_table_with_the_columns_it_was_ingested_with(project, capsys, tmp_path):
    # the table options are part of every source's signature: verify had no --text-column / --id-column, so a table
    # ingested with them was always "changed since ingest" (exit 11), and --repair re-ingested it without them
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "t.csv").write_text("key,content,tag\nk1,alpha row,x\nk2,beta row,y\n", encoding="utf-8")
    cols = ["--text-column", "content", "--id-column", "key"]
    assert ok_json(capsys, "ingest", str(rows), "--collection", "tables", *cols)["sources"]["new"] == 1
    code, _, _ = invoke(capsys, "collections", "verify", "tables", str(rows), "--json")
    assert code == 11  # judged without the columns: every source differs, as it would for ingest without them
    done = ok_json(capsys, "collections", "verify", "tables", str(rows), *cols)
    assert done["clean"] and done["changed_files"] == [] and done["files_checked"]


def test_verify_and_repair_keep_the_privacy_policy_the_collection_was_ingested_with(project, capsys, tmp_path):
    # `ingest --privacy redact` then `collections verify NAME PATH --repair` (config: privacy off): every source read
    # as changed (exit 11) and the repair re-ingested it unredacted, putting the e-mail address into the store
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n.md").write_text("# Notes\n\nWrite to jane.roe@corp.example about the rollout.\n", encoding="utf-8")
    assert ok_json(capsys, "ingest", str(notes), "--collection", "private", "--privacy", "redact")["privacy"]["found"]
    done = ok_json(capsys, "collections", "verify", "private", str(notes))
    assert done["clean"] and done["changed_files"] == []
    ok_json(capsys, "collections", "verify", "private", str(notes), "--repair")
    texts = [h[0] for h in store_snapshot(project[0], "private")]
    assert texts and not any("jane.roe" in t for t in texts)


def store_snapshot(store, name):
    return list(store.snapshot(name).values())
