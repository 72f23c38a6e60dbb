"""Named, recorded migrations (the model is simonw/llm's ``migrations.py``).

Each store declares its ``Migrations``: functions registered in order, named ``<store>/<function name>``. The
table ``_llmops_migrations`` records each applied migration's name and time. Migrations run in ONE transaction
together with their records, under a lock every process takes before migrating, so two processes opening a
database at once migrate it once, and a process killed mid-migration leaves the database as it was (the next
open applies the migration again).

A database whose record names a migration of a known store that this llmops does not have was made by a newer
llmops: it is refused rather than written with an older schema's assumptions.

Stores that predate this record kept their own (``schema_migrations``: integer versions); ``legacy`` maps those
versions to the migrations' names, and the first migration adopts them (their times kept) and drops that table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from llmops_cli.core.state.db import StateDB, StateError
from llmops_cli.errors import LlmopsError

MIGRATIONS_TABLE = "_llmops_migrations"
LEGACY_TABLE = "schema_migrations"
_LOCK = "llmops-migrations"


class SchemaTooNew(LlmopsError):
    """The database was migrated by a newer llmops."""


@dataclass(frozen=True)
class Migration:
    name: str  # "<store>/<function name>"
    apply: Callable[[StateDB], None]


@dataclass
class Migrations:
    """The ordered migrations of one store. Register with the decorator (``@migrations``) or ``sql(name, script)``;
    append only: a migration that has shipped is never edited or renamed."""

    store: str
    legacy: dict[int, str] = field(default_factory=dict)  # schema_migrations version -> function name
    items: list[Migration] = field(default_factory=list)

    def __call__(self, fn: Callable[[StateDB], None]) -> Callable[[StateDB], None]:
        self._add(Migration(f"{self.store}/{fn.__name__}", fn))
        return fn

    def sql(self, name: str, script: str) -> None:
        """A migration that runs ``script`` (DDL in SQLite's spelling, translated for the database)."""
        self._add(Migration(f"{self.store}/{name}", lambda db: db.script(script)))

    def _add(self, m: Migration) -> None:
        if any(x.name == m.name for x in self.items):
            raise ValueError(f"migration {m.name} registered twice")
        self.items.append(m)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.items]


def applied(db: StateDB, store: str | None = None) -> list[str]:
    """Names of the applied migrations (of ``store``, or all), in the order they were applied."""
    if not db.table_exists(MIGRATIONS_TABLE):
        return []
    rows = db.query(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_at, name")
    names = [r[0] for r in rows]
    return [n for n in names if store is None or n.startswith(store + "/")]


def schema_version(db: StateDB) -> int:
    """The database's schema version: how many migrations it has had (every store's, in a shared database)."""
    return len(applied(db))


def migrate(db: StateDB, *stores: Migrations) -> list[str]:
    """Apply what is missing of ``stores``' migrations; returns the names applied now (empty when up to date).

    Cheap when nothing is missing (one read, no lock); otherwise one transaction under the migrations lock."""
    if not _pending(db, stores, applied(db)):
        return []
    done_now: list[str] = []
    with db.transaction(lock=_LOCK):
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at {_real(db)} NOT NULL)"
        )
        for m in stores:
            _adopt_legacy(db, m)
        have = applied(db)  # again, under the lock: another process may have just migrated
        for m in _pending(db, stores, have):
            m.apply(db)
            db.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", (m.name, time.time()))
            done_now.append(m.name)
    return done_now


def _real(db: StateDB) -> str:
    return db.dialect.ddl("REAL")


def _pending(db: StateDB, stores: tuple[Migrations, ...], have: list[str]) -> list[Migration]:
    have_set = set(have)
    for m in stores:
        unknown = [n for n in have if n.startswith(m.store + "/") and n not in set(m.names)]
        if unknown:
            raise SchemaTooNew(
                f"the state database {db.label} has migration {unknown[-1]}, newer than this llmops knows",
                hint="upgrade llmops (every machine sharing this database), or point it at another database",
            )
    return [x for m in stores for x in m.items if x.name not in have_set]


def _adopt_legacy(db: StateDB, m: Migrations) -> None:
    """Carry a pre-record ``schema_migrations`` table of ``m``'s store into the record (inside the migration
    transaction), then drop it: one record, and nothing applied twice."""
    if not m.legacy or not db.table_exists(LEGACY_TABLE) or applied(db, m.store):
        return
    cols = [c.lower() for c in _columns(db, LEGACY_TABLE)]
    if "version" not in cols:
        return
    sel = "version, applied_at" if "applied_at" in cols else "version, NULL"
    for version, at in db.query(f"SELECT {sel} FROM {LEGACY_TABLE} ORDER BY version"):
        name = m.legacy.get(int(version))
        if name is None:
            raise SchemaTooNew(
                f"the state database {db.label} has {m.store} schema version {version}, newer than this llmops "
                f"knows ({max(m.legacy)})",
                hint="upgrade llmops, or point data_dir elsewhere",
            )
        db.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
            (f"{m.store}/{name}", _epoch(at, version)),
        )
    db.execute(f"DROP TABLE {LEGACY_TABLE}")


def _columns(db: StateDB, table: str) -> list[str]:
    if db.dialect.name == "sqlite":
        return [r[1] for r in db.query(f"PRAGMA table_info({table})")]
    rows = db.query("SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,))
    return [r[0] for r in rows]


def _epoch(at: object, version: int) -> float:
    """A legacy ``applied_at`` (epoch seconds, or SQLite's CURRENT_TIMESTAMP text) as epoch seconds; unknown times
    keep the versions' order."""
    if isinstance(at, int | float):
        return float(at)
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.replace(" ", "T") + "+00:00").timestamp()
        except ValueError:
            pass
    return float(version) * 1e-6


__all__ = ["MIGRATIONS_TABLE", "Migration", "Migrations", "SchemaTooNew", "StateError", "applied", "migrate"]
