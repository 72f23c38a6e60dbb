"""The state-database layer: one connection interface, one dialect object, one migration mechanism.

- ``db``: ``StateDB`` (what a store talks to), ``Dialect`` (SQLite vs PostgreSQL spelling), ``StateError``;
- ``migrations``: named, recorded migrations (``_llmops_migrations``), transactional and taken under a lock.

The drivers are adapters (``llmops_cli/adapters/state``): ``open_state`` there picks SQLite files under
``data_dir`` or one shared PostgreSQL from ``state.url``. A store given a file path opens SQLite itself
(``sqlite_file``), which keeps ``AnswerLog(path)`` and friends working as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from llmops_cli.core.state.db import POSTGRESQL, SQLITE, Dialect, StateDB, StateError
from llmops_cli.core.state.migrations import (
    MIGRATIONS_TABLE,
    Migration,
    Migrations,
    SchemaTooNew,
    applied,
    migrate,
    schema_version,
)
from llmops_cli.errors import LlmopsError

MEMORY = ":memory:"  # a throwaway SQLite database (read-only commands where no file exists yet)


def sqlite_file(path: str | Path) -> StateDB:
    """A SQLite state database at ``path`` (``":memory:"`` for a throwaway one): the default driver, stdlib only."""
    from llmops_cli.adapters.state.sqlite import SQLiteDB

    return SQLiteDB(path)


def open_store(
    target: str | Path | StateDB,
    store: Migrations,
    *,
    error: type[LlmopsError],
    cannot_open: str,
    file_hint: str,
    db_hint: str,
    schema_name: str | None = None,
) -> tuple[StateDB, bool]:
    """A store's database, migrated, and whether the store owns it (then the store closes it): a path is opened here
    as a SQLite file, an open ``StateDB`` (the shared one of ``open_state``) is used as it is.

    A failure closes what was opened here and raises ``error``: ``cannot_open`` (``{where}``: the path or the
    database's label) with the driver's message, hinted ``file_hint`` for a file and ``db_hint`` for a given
    database. A database migrated by a newer llmops says so in the store's ``schema_name`` (without one, the
    ``SchemaTooNew`` itself is raised)."""
    owned = isinstance(target, str | Path)
    try:
        db = sqlite_file(target) if isinstance(target, str | Path) else target
    except StateError as e:
        raise error(f"{cannot_open.format(where=target)}: {e.message}", hint=file_hint) from None
    try:
        migrate(db, store)
    except (SchemaTooNew, StateError) as e:
        if owned:
            db.close()
        if isinstance(e, StateError):
            message = f"{cannot_open.format(where=db.label)}: {e.message}"
            raise error(message, hint=file_hint if owned else db_hint) from None
        if schema_name is None:
            raise
        raise error(e.message.replace("the state database", schema_name), hint=e.hint) from None
    return db, owned


class StateStore:
    """A store kept in the state database. ``Store(path)`` opens (or creates) a SQLite file and closes it with the
    store; ``Store(db)`` uses an open ``StateDB`` (the shared one of ``open_state``), which its owner closes.
    A subclass's ``__init__`` calls ``_open`` with its migrations and how its errors read (``open_store``)."""

    path: Path | None
    _db: StateDB
    _owns_db: bool

    def _open(self, target: str | Path | StateDB, store: Migrations, **errors: Any) -> None:
        self.path = Path(target) if isinstance(target, str | Path) else None
        self._db, self._owns_db = open_store(target, store, **errors)

    def close(self) -> None:
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = [
    "MEMORY",
    "MIGRATIONS_TABLE",
    "POSTGRESQL",
    "SQLITE",
    "Dialect",
    "Migration",
    "Migrations",
    "SchemaTooNew",
    "StateDB",
    "StateStore",
    "StateError",
    "applied",
    "migrate",
    "open_store",
    "schema_version",
    "sqlite_file",
]
