"""The state database on PostgreSQL (``state.url=postgresql://...``): every machine of a team shares it.

psycopg 3, one connection per ``PostgresDB`` shared by the threads of a process behind a lock, in autocommit
mode (each statement commits) with explicit transactions where a store needs several statements at once. The
stores' SQL uses ``?`` placeholders; they become psycopg's ``%s`` here. ``transaction(lock=NAME)`` takes a
transaction-scoped advisory lock, so two processes migrating at once take turns. ``try_lock`` is a session
advisory lock (a batch checkpoint writer): it ends with the connection, so a killed writer never leaves one behind.

The URL's password never reaches a message: errors name the URL through ``mask_url_password``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from llmops_cli.adapters.state.connection import LockedConnection
from llmops_cli.core.redaction import mask_url_password
from llmops_cli.core.state.db import POSTGRESQL, StateError, split_script
from llmops_cli.errors import AuthError, UnreachableError

CONNECT_TIMEOUT_S = 10


class PgRow(tuple):
    """A row readable by position and by column name, as sqlite3.Row is."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    return _row_class(tuple(c.name for c in cursor.description or ()))


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    return type("Row", (PgRow,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as ``%s``; a literal ``%`` doubled (the stores' SQL has no ``?`` inside literals)."""
    return sql.replace("%", "%%").replace("?", "%s")


def libpq_url(url: str) -> str:
    """``url`` as libpq reads it: SQLAlchemy's ``postgresql+psycopg://`` (accepted by store.url and state.url) is
    ``postgresql://``; libpq rejects a scheme with a driver in it as a malformed connection string."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep and "+" in scheme else url


def describe_error(e: BaseException) -> str:
    """psycopg's message on one line, without a password."""
    text = " ".join(str(e).split())
    return mask_url_password(text) or type(e).__name__


def _connect_error(label: str, e: BaseException) -> Exception:
    """The project's error for a failed connection: credentials rejected (exit 8), no such database or role (1),
    otherwise unreachable (exit 7); one line, the URL without its password."""
    reason = describe_error(e)
    low = reason.lower()
    if "password" in low or "authentication" in low:
        return AuthError(
            # "(reason)", not "credentials: reason": the secret filter reads "credentials: WORD" as a key and its value
            f"the state database state.url={label} rejected the credentials ({reason})",
            hint="correct the user and password in state.url (LLMOPS_STATE_URL)",
        )
    if "does not exist" in low:
        return StateError(
            f"the state database state.url={label} refused the connection: {reason}",
            hint="create that database (or role), or correct state.url (LLMOPS_STATE_URL)",
        )
    return UnreachableError(
        f"the state database state.url={label} cannot be reached: {reason}",
        hint="start that PostgreSQL or correct state.url (LLMOPS_STATE_URL); unset it to keep the state in SQLite "
        "files under data_dir",
    )


class PostgresDB(LockedConnection):
    dialect = POSTGRESQL

    def __init__(self, url: str):
        import psycopg

        super().__init__()
        self.label = mask_url_password(url)
        self._held: set[str] = set()
        try:
            self._conn = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            raise _connect_error(self.label, e) from None
        self._conn.row_factory = _row_factory
        # the durability SQLite's synchronous=NORMAL gives the default files: a crash of the server machine may lose
        # the last fraction of a second of commits, never corrupts; an fsync per commit (~3 ms here) made each
        # recorded answer 5-15x slower. This session only; the server's setting stays as its owner chose.
        self.execute("SET synchronous_commit = off")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock, self._errors():
            return self._conn.execute(_pg_sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._errors(), self._conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), [tuple(r) for r in rows])

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock, self._errors():
            return self._conn.execute(_pg_sql(sql), tuple(args)).fetchall()

    def insert_id(self, sql: str, args: Sequence[Any] = (), id_column: str = "id") -> int:
        with self._lock, self._errors():
            return int(self._conn.execute(_pg_sql(f"{sql} RETURNING {id_column}"), tuple(args)).fetchone()[0])

    def script(self, sql: str) -> None:
        for stmt in split_script(sql):
            self.execute(self.dialect.ddl(stmt))

    @contextmanager
    def _outermost(self, lock: str | None) -> Iterator[None]:
        """A transaction; with ``lock``, a transaction-scoped advisory lock taken first."""
        import psycopg

        try:
            with self._conn.transaction():
                if lock is not None:
                    self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (lock,))
                yield
        except psycopg.Error as e:
            raise self._statement_error(e) from None

    def table_exists(self, name: str) -> bool:
        return self.query("SELECT to_regclass(?)", (name,))[0][0] is not None

    def try_lock(self, name: str) -> bool:
        with self._lock:
            if name in self._held:  # advisory locks are re-entrant within a session: not a second writer
                return False
            if not self.query("SELECT pg_try_advisory_lock(hashtext(?))", (name,))[0][0]:
                return False
            self._held.add(name)
            return True

    def unlock(self, name: str) -> None:
        with self._lock:
            if name in self._held:
                self._held.discard(name)
                self.execute("SELECT pg_advisory_unlock(hashtext(?))", (name,))

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            self._conn.close()

    def _translate(self, e: Exception) -> Exception | None:
        import psycopg

        if isinstance(e, psycopg.OperationalError) and (self._conn.closed or self._conn.broken):
            return UnreachableError(
                f"the state database state.url={self.label} went away: {describe_error(e)}",
                hint="check that PostgreSQL is up; the command can be run again",
            )
        return self._statement_error(e) if isinstance(e, psycopg.Error) else None

    def _statement_error(self, e: Exception) -> StateError:
        if getattr(e, "sqlstate", None) == "3F000":  # invalid_schema_name: search_path names no schema that exists
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            return StateError(
                f"the state database state.url={self.label} has no schema to create its tables in ({first})",
                hint="create the schema that state.url's search_path names (CREATE SCHEMA ...), or leave out "
                "its ?options=-csearch_path...",
            )
        if getattr(e, "sqlstate", None) == "42501":  # insufficient_privilege: e.g. no CREATE on schema public
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            return StateError(
                f"the state database state.url={self.label} refused this user ({first})",
                hint="grant it CREATE on that schema (PostgreSQL 15+ no longer grants CREATE on public to everyone), "
                "or give llmops a database or schema it owns",
            )
        return StateError(describe_error(e))
