"""JSON/JSONL exports: GitHub issues (one Document per issue) and Slack exports (one Document per thread).

Which export a file is comes from its keys: objects with ``title`` and ``number`` are issues (the GitHub API
and ``gh issue list --json`` shapes), objects with ``ts`` are Slack messages (a channel's per-day file of a
Slack export, or any list of messages).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions, make_document
from llmops_cli.core.loaders.reading import read_text

NEITHER_EXPORT = "JSON is neither a GitHub issues nor a Slack export"
# Files at the top of a Slack export folder that describe it rather than hold messages.
SLACK_METADATA_FILES = frozenset(
    {"channels.json", "users.json", "groups.json", "dms.json", "mpims.json", "integration_logs.json", "canvases.json"}
)
# Slack system messages that are not conversation.
SLACK_NOISE_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_purpose",
        "channel_topic",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "group_join",
        "group_leave",
        "pinned_item",
        "unpinned_item",
        "bot_add",
        "bot_remove",
    }
)
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]+))?>")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^>|]+)(?:\|([^>]+))?>")


def parse_json_records(text: str, *, jsonl: bool) -> list[Any]:
    """The records of a JSON document (a list, or an object wrapping one) or of JSON Lines."""
    if not jsonl:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if len([line for line in text.splitlines() if line.strip()]) < 2:
                raise SkipSource(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
            return parse_json_records(text, jsonl=True)  # JSON Lines saved as .json
        if isinstance(data, dict):
            for key in ("issues", "items", "messages"):
                if isinstance(data.get(key), list):
                    return data[key]
            return [data]
        if isinstance(data, list):
            return data
        raise SkipSource(NEITHER_EXPORT)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SkipSource(f"invalid JSON on line {number}: {exc.msg}") from exc
    return records


def _person(value: Any) -> str | None:
    """A GitHub user/author field: {"login": ...}, {"name": ...} or a plain string."""
    if isinstance(value, dict):
        value = value.get("login") or value.get("name")
    return str(value) if value else None


def _labels(value: Any) -> str | None:
    if not isinstance(value, list):
        return None
    names = [str(label.get("name")) if isinstance(label, dict) else str(label) for label in value]
    return ", ".join(name for name in names if name and name != "None") or None


def github_issue_documents(sf: SourceFile, records: list[dict[str, Any]]) -> list[Document]:
    documents: list[Document] = []
    seen: set[str] = set()
    for issue in records:
        number = str(issue["number"]).strip()
        if not number or number in seen:  # a repeated issue keeps its first occurrence
            continue
        seen.add(number)
        title = str(issue.get("title") or "").strip()
        parts = [title, str(issue.get("body") or "").strip()]
        comments = issue.get("comments")
        if isinstance(comments, list):  # the REST API puts a comment COUNT here; exports put the comments
            for comment in comments:
                if not isinstance(comment, dict):
                    continue
                body = str(comment.get("body") or "").strip()
                author = _person(comment.get("user") or comment.get("author"))
                if body:
                    parts.append(f"{author}: {body}" if author else body)
        text = "\n\n".join(part for part in parts if part)
        if not text:
            continue
        state = issue.get("state")
        extra = {
            "number": int(number) if number.isdigit() else number,
            "state": str(state).lower() if state else None,
            "url": issue.get("html_url") or issue.get("url"),
            "author": _person(issue.get("user") or issue.get("author")),
            "labels": _labels(issue.get("labels")),
            "pull_request": True if issue.get("pull_request") or issue.get("isPullRequest") else None,
        }
        source_id = f"{sf.source_id}#{number}"
        documents.append(make_document(sf, text, "issue", source_id=source_id, title=title, extra=extra))
    return documents


@functools.lru_cache(maxsize=8)
def _slack_users_file(path: str, _mtime_ns: int) -> dict[str, str]:
    try:
        users = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    names: dict[str, str] = {}
    for user in users if isinstance(users, list) else []:
        if isinstance(user, dict) and user.get("id"):
            profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
            name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
            if name:
                names[str(user["id"])] = str(name)
    return names


def slack_user_names(path: Path) -> dict[str, str]:
    """User id -> name from the export's users.json (beside the file, or one folder up for per-day files)."""
    for folder in (path.parent, path.parent.parent):
        users_file = folder / "users.json"
        try:
            mtime = users_file.stat().st_mtime_ns
        except OSError:
            continue
        return _slack_users_file(str(users_file), mtime)
    return {}


def _ts_key(ts: str) -> tuple[float, str]:
    try:
        return float(ts), ts
    except ValueError:
        return float("inf"), ts


def _slack_author(message: dict[str, Any], users: dict[str, str]) -> str:
    profile = message.get("user_profile") if isinstance(message.get("user_profile"), dict) else {}
    user_id = str(message.get("user") or "")
    return str(
        profile.get("display_name")
        or profile.get("real_name")
        or users.get(user_id)
        or message.get("user_name")
        or message.get("username")
        or user_id
        or message.get("bot_id")
        or "unknown"
    )


def _slack_text(text: str, users: dict[str, str]) -> str:
    text = _SLACK_MENTION.sub(lambda m: "@" + (users.get(m.group(1)) or m.group(2) or m.group(1)), text)
    text = _SLACK_LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def slack_thread_documents(sf: SourceFile, records: list[dict[str, Any]]) -> list[Document]:
    users = slack_user_names(sf.path)
    # A per-day file of a folder export lives in <export>/<channel>/<YYYY-MM-DD>.json.
    default_channel = sf.path.parent.name if _DAY_FILE.match(sf.path.stem) else sf.path.stem
    threads: dict[str, list[dict[str, Any]]] = {}
    for message in records:
        if message.get("subtype") in SLACK_NOISE_SUBTYPES:
            continue
        thread_ts = str(message.get("thread_ts") or message["ts"])
        threads.setdefault(thread_ts, []).append(message)
    documents: list[Document] = []
    for thread_ts in sorted(threads, key=_ts_key):
        messages = sorted(threads[thread_ts], key=lambda m: _ts_key(str(m["ts"])))
        lines = []
        for message in messages:
            text = _slack_text(str(message.get("text") or ""), users)
            if text:
                lines.append(f"{_slack_author(message, users)}: {text}")
        if not lines:
            continue
        channel = messages[0].get("channel") or default_channel
        extra = {"channel": channel, "thread_ts": thread_ts, "messages": len(lines)}
        source_id = f"{sf.source_id}#{thread_ts}"
        documents.append(make_document(sf, "\n".join(lines), "slack", source_id=source_id, extra=extra))
    return documents


def load_json_export(sf: SourceFile, _options: TableOptions) -> list[Document]:
    text = read_text(sf)
    records = parse_json_records(text, jsonl=sf.path.suffix.lower() in (".jsonl", ".ndjson"))
    if not records:
        raise SkipSource("empty")
    objects = [record for record in records if isinstance(record, dict)]
    documents = None
    if len(objects) == len(records):
        if all("title" in obj and "number" in obj for obj in objects):
            documents = github_issue_documents(sf, objects)
        elif all("ts" in obj for obj in objects):
            documents = slack_thread_documents(sf, objects)
    if documents is None:
        if sf.path.name in SLACK_METADATA_FILES:
            raise SkipSource(f"Slack export metadata ({sf.path.name}), not messages")
        if objects and len(objects) < len(records):  # an export with a stray entry: name it, not "neither"
            at = next(n for n, record in enumerate(records, 1) if not isinstance(record, dict))
            raise SkipSource(
                f"entry {at} is a JSON {type(records[at - 1]).__name__}, not an object like the other "
                f"{len(objects)} (an issue or a message each)"
            )
        raise SkipSource(NEITHER_EXPORT)
    if not documents:
        raise SkipSource("empty: no issue or message has text")
    return documents
