"""GitHub issue and Slack exports (JSON / JSONL): one Document per issue or per thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_cli.core.loaders import SkipSource, discover, load_source

MAX = 1 << 20

ISSUES = [
    {
        "number": 12,
        "title": "Scheduler hangs",
        "body": "It stops after an hour.",
        "state": "open",
        "html_url": "https://github.com/o/r/issues/12",
        "user": {"login": "alice"},
        "labels": [{"name": "bug"}, {"name": "scheduler"}],
        "comments": [{"body": "Same here.", "user": {"login": "bob"}}, {"body": "Fixed in 3.1", "user": "carol"}],
    },
    {
        "number": 7,
        "title": "Docs typo",
        "body": None,
        "state": "CLOSED",
        "url": "https://github.com/o/r/issues/7",
        "comments": 3,
        "author": {"login": "dave"},
    },
]


def load(path: Path):
    files, _ = discover([path], None, [])
    return load_source(files[0], max_bytes=MAX)


def test_github_issues_json(tmp_path: Path):
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(ISSUES))
    first, second = load(path)
    assert first.source_id == "issues.json#12" and first.format == "issue"
    assert first.text == "Scheduler hangs\n\nIt stops after an hour.\n\nbob: Same here.\n\ncarol: Fixed in 3.1"
    assert first.metadata == {
        "source": "issues.json#12",
        "path": str(path),
        "format": "issue",
        "title": "Scheduler hangs",
        "number": 12,
        "state": "open",
        "url": "https://github.com/o/r/issues/12",
        "author": "alice",
        "labels": "bug, scheduler",
    }
    # a comment COUNT (REST API shape) is not text; the state is normalised
    assert second.text == "Docs typo" and second.metadata["state"] == "closed" and second.metadata["author"] == "dave"


def test_github_issues_jsonl(tmp_path: Path):
    path = tmp_path / "issues.jsonl"
    path.write_text("\n".join(json.dumps(issue) for issue in ISSUES) + "\n\n")
    assert [doc.source_id for doc in load(path)] == ["issues.jsonl#12", "issues.jsonl#7"]


SLACK_DAY = [
    {
        "type": "message",
        "user": "U1",
        "text": "How do I retry a task?",
        "ts": "1700000000.000100",
        "thread_ts": "1700000000.000100",
    },
    {
        "type": "message",
        "subtype": "channel_join",
        "user": "U3",
        "text": "<@U3> has joined the channel",
        "ts": "1700000001.000000",
    },
    {
        "type": "message",
        "user": "U2",
        "text": "Set <@U1|ann> `retries=3`, see <https://airflow.apache.org|the docs>",
        "ts": "1700000100.000200",
        "thread_ts": "1700000000.000100",
    },
    {"type": "message", "user": "U2", "text": "Unrelated note &amp; more", "ts": "1700000050.000000"},
    {"type": "message", "user": "U1", "text": "Thanks!", "ts": "1700000200.000300", "thread_ts": "1700000000.000100"},
]


def test_slack_folder_export_groups_messages_by_thread(tmp_path: Path):
    export = tmp_path / "slack-export"
    (export / "airflow-help").mkdir(parents=True)
    (export / "users.json").write_text(
        json.dumps(
            [
                {"id": "U1", "name": "ann", "profile": {"display_name": "Ann"}},
                {"id": "U2", "name": "ben", "profile": {"real_name": "Ben B"}},
            ]
        )
    )
    (export / "airflow-help" / "2023-11-14.json").write_text(json.dumps(SLACK_DAY))
    files, _ = discover([export], None, [])
    # the export's metadata files are not sources (not even skipped ones): an export folder ingests with exit 0
    assert [f.source_id for f in files] == ["slack-export/airflow-help/2023-11-14.json"]
    metadata, _ = discover(
        [export / "users.json"], None, []
    )  # named on its own, it is a source and says why it is skipped
    files.append(metadata[0])
    thread, note = load_source(files[0], max_bytes=MAX)
    assert thread.source_id == "slack-export/airflow-help/2023-11-14.json#1700000000.000100"
    assert thread.format == "slack"
    assert thread.text == (
        "Ann: How do I retry a task?\n"
        "Ben B: Set @Ann `retries=3`, see the docs (https://airflow.apache.org)\n"
        "Ann: Thanks!"
    )
    assert thread.metadata["channel"] == "airflow-help" and thread.metadata["thread_ts"] == "1700000000.000100"
    assert thread.metadata["messages"] == 3
    assert note.text == "Ben B: Unrelated note & more" and note.metadata["thread_ts"] == "1700000050.000000"
    with pytest.raises(SkipSource, match="Slack export metadata"):
        load_source(files[1], max_bytes=MAX)


def test_slack_list_without_users_file_uses_user_ids(tmp_path: Path):
    path = tmp_path / "general.json"
    path.write_text(json.dumps(SLACK_DAY[:1]))
    [doc] = load(path)
    assert doc.text == "U1: How do I retry a task?" and doc.metadata["channel"] == "general"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"name": "package", "version": "1.0"}', "JSON is neither a GitHub issues nor a Slack export"),
        ('[{"title": "x", "number": 1}, {"ts": "1"}]', "JSON is neither a GitHub issues nor a Slack export"),
        ("[1, 2, 3]", "JSON is neither a GitHub issues nor a Slack export"),
        ('"just a string"', "JSON is neither a GitHub issues nor a Slack export"),
        # a Slack day file with one stray entry: it was "neither a GitHub issues nor a Slack export"
        ('[{"ts": "1", "text": "a"}, 7, {"ts": "2", "text": "b"}]', "entry 2 is a JSON int, not an object like the"),
        ("[]", "empty"),
        ('{"title": "x", "number": ', "invalid JSON at line 1 column"),
        ('[{"number": 1, "title": "", "body": ""}]', "empty: no issue or message has text"),
    ],
)
def test_json_that_is_not_an_export_is_skipped(tmp_path: Path, content: str, reason: str):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(SkipSource) as raised:
        load(path)
    assert raised.value.reason.startswith(reason)


def test_invalid_jsonl_line_is_named(tmp_path: Path):
    path = tmp_path / "issues.jsonl"
    path.write_text(json.dumps(ISSUES[0]) + "\n{broken\n")
    with pytest.raises(SkipSource, match="invalid JSON on line 2"):
        load(path)
