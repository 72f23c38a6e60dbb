"""The state database as a SQLite file (the default: one file per store under ``data_dir``).

WAL (readers never wait for the writer), ``synchronous=NORMAL`` (a power cut may lose the last commits, never
corrupt), foreign keys on, and a 30 s busy timeout so that writers of several processes take turns instead of
failing. One connection per ``SQLiteDB``, shared by threads behind a lock; ``:memory:`` for a throwaway one.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from llmops_cli.adapters.state.connection import LockedConnection
from llmops_cli.core.state import MEMORY
from llmops_cli.core.state.db import SQLITE, StateError, split_script

BUSY_TIMEOUT_S = 30


class SQLiteDB(LockedConnection):
    dialect = SQLITE

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.label = str(path)
        self._held: dict[str, IO[str]] = {}
        try:
            if str(path) != MEMORY:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as e:
            raise StateError(f"cannot open {self.label}: {e}") from None

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock, self._errors():
            return self._db.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._errors():
            self._db.executemany(sql, [tuple(r) for r in rows])

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._errors():
            return self._db.execute(sql, tuple(args)).fetchall()

    def insert_id(self, sql: str, args: Sequence[Any] = (), id_column: str = "id") -> int:
        with self._lock, self._errors():
            return int(self._db.execute(sql, tuple(args)).lastrowid)

    def script(self, sql: str) -> None:
        for stmt in split_script(sql):
            self.execute(stmt)

    @contextmanager
    def _outermost(self, lock: str | None) -> Iterator[None]:
        """BEGIN IMMEDIATE: this connection is the file's one writer until COMMIT (``lock`` adds nothing: no two
        writers run at once already)."""
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK")
            raise StateError(str(e)) from None

    def table_exists(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def try_lock(self, name: str) -> bool:
        """An exclusive lock held until ``unlock`` (or the process ends): a lock file beside the database."""
        import fcntl

        if name in self._held:
            return False
        if str(self.path) == MEMORY:
            self._held[name] = None  # type: ignore[assignment]  # one process only: the set is the lock
            return True
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        fh = self.path.with_name(f"{self.path.name}.lock-{digest}").open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._held[name] = fh
        return True

    def unlock(self, name: str) -> None:
        fh = self._held.pop(name, None)
        if fh is not None:
            fh.close()

    def close(self) -> None:
        with self._lock:
            for name in list(self._held):
                self.unlock(name)
            self._db.close()

    def _translate(self, e: Exception) -> Exception | None:
        return StateError(str(e)) if isinstance(e, sqlite3.Error) else None
