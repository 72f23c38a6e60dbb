"""A persistent cache of LLM completions: SQLite (WAL) at ``<data_dir>/cache/llm.sqlite``.

Key = sha256 of the model, the messages and the call parameters (canonical JSON), so a re-run with unchanged
inputs makes no new calls. Safe to share between threads of one process (one connection behind a lock) and
between processes (WAL + busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from llmops_cli.core.ports import Completion

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost REAL,
    created_at REAL NOT NULL
)
"""


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_cache_path(data_path: Path) -> Path:
    return Path(data_path) / "cache" / "llm.sqlite"


class LLMCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT model, text, input_tokens, output_tokens, cost FROM completions WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        model, text, tin, tout, cost = row
        return Completion(
            text=text, model=model, input_tokens=tin, output_tokens=tout, cost=cost, latency_s=0.0, raw={"cached": True}
        )

    def put(self, key: str, c: Completion) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, model, text, input_tokens, output_tokens, cost, created_at) VALUES (?,?,?,?,?,?,?)",
                (key, c.model, c.text, c.input_tokens, c.output_tokens, c.cost, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
