"""A persistent cache of LLM completions, in the state database (by default the SQLite file
``<data_dir>/cache/llm.sqlite``; with ``state.url`` the shared PostgreSQL, so every worker reuses every answer).

Key = sha256 of the model, the messages and the call parameters (canonical JSON), so a re-run with unchanged
inputs makes no new calls. Safe to share between threads of one process and between processes (the state
database's transactions; a later ``put`` of the same key replaces the earlier one).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from llmops_cli.core.ports import Completion
from llmops_cli.core.state import Migrations, StateDB, StateError, StateStore
from llmops_cli.errors import StoreError

migrations = Migrations("llm_cache")

# IF NOT EXISTS: caches written before the migration record have this table and no record; they are adopted as-is
migrations.sql(
    "m001_completions",
    """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost REAL,
    created_at REAL NOT NULL
)
""",
)


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_cache_path(data_path: Path) -> Path:
    return Path(data_path) / "cache" / "llm.sqlite"


class LLMCache(StateStore):
    """``LLMCache(path)``: a SQLite file; ``LLMCache(db)``: the shared state database (``StateStore``)."""

    def __init__(self, target: str | Path | StateDB):
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="the LLM cache {where} cannot be opened",
            file_hint=_HINT,
            db_hint=_HINT,
        )

    def get(self, key: str) -> Completion | None:
        rows = self._run(
            "reading", "SELECT model, text, input_tokens, output_tokens, cost FROM completions WHERE key = ?", (key,)
        )
        if not rows:
            return None
        model, text, tin, tout, cost = tuple(rows[0])
        return Completion(
            text=text, model=model, input_tokens=tin, output_tokens=tout, cost=cost, latency_s=0.0, raw={"cached": True}
        )

    def put(self, key: str, c: Completion) -> None:
        self._run(
            "writing",
            "INSERT INTO completions (key, model, text, input_tokens, output_tokens, cost, created_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET model = excluded.model, text = excluded.text, "
            "input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, cost = excluded.cost, "
            "created_at = excluded.created_at",
            (key, c.model, c.text, c.input_tokens, c.output_tokens, c.cost, time.time()),
            write=True,
        )

    def __len__(self) -> int:
        return int(self._run("reading", "SELECT COUNT(*) FROM completions")[0][0])

    def _run(self, doing: str, sql: str, args: tuple = (), *, write: bool = False) -> list[Any]:
        try:
            if write:
                self._db.execute(sql, args)
                return []
            return self._db.query(sql, args)
        except StateError as e:
            raise StoreError(f"{doing} the LLM cache {self._db.label} failed: {e.message}", hint=_HINT) from None


_HINT = "check data_dir (LLMOPS_DATA_DIR) or state.url (LLMOPS_STATE_URL); --no-cache runs without it"
