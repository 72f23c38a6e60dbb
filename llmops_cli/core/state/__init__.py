"""The state-database layer: one connection interface, one dialect object, one migration mechanism.

- ``db``: ``StateDB`` (what a store talks to), ``Dialect`` (SQLite vs PostgreSQL spelling), ``StateError``;
- ``migrations``: named, recorded migrations (``_llmops_migrations``), transactional and taken under a lock.

The drivers are adapters (``llmops_cli/adapters/state``): ``open_state`` there picks SQLite files under
``data_dir`` or one shared PostgreSQL from ``state.url``. A store given a file path opens SQLite itself
(``sqlite_file``), which keeps ``AnswerLog(path)`` and friends working as before.
"""

from __future__ import annotations

from pathlib import Path

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

MEMORY = ":memory:"  # a throwaway SQLite database (read-only commands where no file exists yet)


def sqlite_file(path: str | Path) -> StateDB:
    """A SQLite state database at ``path`` (``":memory:"`` for a throwaway one): the default driver, stdlib only."""
    from llmops_cli.adapters.state.sqlite import SQLiteDB

    return SQLiteDB(path)


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
    "StateError",
    "applied",
    "migrate",
    "schema_version",
    "sqlite_file",
]
