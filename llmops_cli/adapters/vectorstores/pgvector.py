"""PostgreSQL with pgvector as the vector store (``store.url=postgresql://...``): psycopg 3 and the ``pgvector``
package, both imported when a store is opened, never at CLI start.

Layout (schema version SCHEMA_VERSION, recorded in ``llmops_schema``; created by the first write, under an advisory
lock so that two processes starting at once cannot race on CREATE):

- ``llmops_collections``: one row per collection: name, metadata (JSONB: the recorded embedder, the generation...),
  the vector dimension (fixed by the first upsert) and the ledger generation.
- ``llmops_chunks_<id>``: the chunks of one collection (a table each: an HNSW index needs one dimension, and two
  collections may come from two embedders). ``tsv`` is a generated column over heading + text (the same text the
  embedder and our BM25 index see), with a GIN index; ``embedding`` has an HNSW index (cosine).
- ``llmops_sources``: the per-source manifest (ledger). Every change of it moves the collection's ledger generation
  in the same transaction, so the two can never disagree.

Hybrid search runs inside the database (``hybrid_query``): the nearest chunks by vector distance and the best by
full-text rank (``ts_rank`` over ``tsv``) in one statement, fused by reciprocal rank fusion as in
core/retrieval/fusion.py, so no machine-local lexical index is needed. Full-text ranking is PostgreSQL's, not BM25:
it has no inverse document frequency, so its list can differ from the BM25 list of a Chroma store (measured in
tests/integration/test_store_contract.py).

Several processes may write at once (ingest shards on several Airflow workers): every write is one transaction,
chunks are upserted with ON CONFLICT, the manifest likewise; no file lock is needed or taken. Connection failures
are UnreachableError (exit 7) naming store.url with its password masked.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from llmops_cli.core import write_steps
from llmops_cli.core.documents import Hit
from llmops_cli.core.ports import SourceRecord, VectorStore
from llmops_cli.core.redaction import mask_url_password
from llmops_cli.errors import AuthError, NotFoundError, StoreError, UnreachableError

SCHEMA_VERSION = 1
TS_CONFIG = "english"  # full-text configuration of the tsv column and of queries (stemming, English stopwords)
_SCHEMA_LOCK = 0x6C6C6D6F7073  # pg_advisory_xact_lock key for schema and table creation ("llmops")
_PAGE = 5000
# A word in more than this share of a collection's chunks is left out of the text query: ts_rank has no inverse
# document frequency, so such a word only adds noise (BM25 weighs it little) and makes PostgreSQL rank most of the
# table. Measured on the airflow-docs questions (lexical hit@5, BM25: 15/16): no cut 13, 0.2 13, 0.1 15, 0.05 11;
# hybrid query at 20,000 synthetic chunks: 183 ms with 0.2, 22 ms with 0.1.
COMMON_SHARE = 0.1
BULK_ROWS = 1000  # an upsert of at least this many rows into an empty collection builds its vector index after
_STATS_TTL_S = 30.0
_MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS llmops_schema (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS llmops_collections (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    dimension integer,
    ledger_generation text,
    ts_config regconfig NOT NULL DEFAULT '{TS_CONFIG}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS llmops_sources (
    collection_id bigint NOT NULL REFERENCES llmops_collections(id) ON DELETE CASCADE,
    source_id text NOT NULL,
    content_hash text NOT NULL,
    chunk_ids jsonb NOT NULL,
    extra jsonb NOT NULL,
    PRIMARY KEY (collection_id, source_id)
);
"""


def _chunks_ddl(table: str, dimension: int) -> str:
    # the text searched is the text embedded and BM25-indexed (core.documents.indexed_text: heading, newline, text)
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    document text NOT NULL,
    metadata jsonb NOT NULL,
    embedding vector({dimension}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('{TS_CONFIG}'::regconfig,
        CASE WHEN coalesce(metadata->>'heading', '') <> '' THEN (metadata->>'heading') || E'\\n' || document
             ELSE document END)) STORED
);
{_hnsw_ddl(table)};
CREATE INDEX IF NOT EXISTS {table}_tsv ON {table} USING gin (tsv);
CREATE INDEX IF NOT EXISTS {table}_metadata ON {table} USING gin (metadata jsonb_path_ops);
CREATE INDEX IF NOT EXISTS {table}_seq ON {table} (seq);
"""


def _hnsw_ddl(table: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {table}_embedding ON {table} USING hnsw (embedding vector_cosine_ops)"


class PgVectorStore(VectorStore):
    """One connection per store object (psycopg 3, autocommit; multi-statement writes in explicit transactions),
    used by one thread at a time (ingest writes from a second thread)."""

    def __init__(self, url: str, *, connect_timeout: float = 10):
        self.url = url
        self.where = mask_url_password(url)  # what messages (and the lexical cache key, unused here) name
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._lock = threading.RLock()
        self._vector_ready = False
        self._schema_ready = False
        self._shares: dict[str, tuple[float, dict[str, float]]] = {}  # table -> (read at, lexeme -> share of rows)

    # --- connection and errors ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> PgVectorStore:
        """Connect now, so that a wrong URL is reported by the command's first step."""
        store = cls(url)
        with store._db():
            pass
        return store

    def _connect(self) -> Any:
        import psycopg

        from llmops_cli.adapters.state.postgres import libpq_url

        # psycopg logs a WARNING "error ignored terminating <psycopg.Copy [BAD] at 0x...>" when a COPY ends on a lost
        # connection; the error itself is raised and reported as one line (exit 7), and Python's last-resort handler
        # printed the warning above it as a stray line
        logging.getLogger("psycopg").setLevel(logging.ERROR)
        conn = psycopg.connect(libpq_url(self.url), autocommit=True, connect_timeout=int(self._connect_timeout))
        self._vector_ready = False
        self._register_vector(conn)
        return conn

    def _register_vector(self, conn: Any) -> None:
        if self._vector_ready:
            return
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
            return  # nothing stored here yet; the first write creates the extension, then registers
        import psycopg
        from pgvector.psycopg import register_vector

        try:
            register_vector(conn)
        except psycopg.ProgrammingError as e:  # "vector type not found in the database"
            schema = conn.execute(
                "SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace "
                "WHERE x.extname = 'vector'"
            ).fetchone()
            where = schema[0] if schema else "public"
            raise StoreError(
                f"PostgreSQL at {self.where}: pgvector is installed in schema {where!r}, "
                f"which the connection's search_path leaves out ({_first_line(str(e))})",
                hint=f"add it to the search_path in store.url, e.g. ?options=-csearch_path%3DYOURSCHEMA,{where}",
            ) from None
        self._vector_ready = True

    @contextmanager
    def _db(self) -> Iterator[Any]:
        """The connection (opened or re-opened as needed), with psycopg's errors turned into ours."""
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                yield self._conn
            except psycopg.OperationalError as e:
                broken = self._conn is None or self._conn.closed or self._conn.broken
                if broken:
                    self._conn = None
                raise self._translate(e) from None
            except psycopg.Error as e:
                denied = isinstance(e, psycopg.errors.InsufficientPrivilege)  # e.g. no CREATE on schema public
                raise StoreError(
                    f"PostgreSQL store at {self.where} failed: {_first_line(mask_url_password(str(e)))}",
                    hint="grant this user CREATE on that schema (PostgreSQL 15+ no longer grants CREATE on public to "
                    "everyone), or give llmops a database or schema it owns"
                    if denied
                    else None,
                ) from None

    def _translate(self, e: Exception) -> Exception:
        reason = _first_line(mask_url_password(str(e)))
        low = reason.lower()
        if (
            "password authentication failed" in low
            or "no password supplied" in low
            or "role" in low
            and ("does not exist" in low)
        ):
            return AuthError(
                f"PostgreSQL at {self.where} refused the login ({reason})",
                hint="check the user and password in store.url (LLMOPS_STORE_URL)",
            )
        if "database" in low and "does not exist" in low:
            return StoreError(
                f"PostgreSQL at {self.where}: {reason}", hint="create the database, or fix its name in store.url"
            )
        return UnreachableError(
            f"PostgreSQL store at {self.where} is not reachable ({reason})",
            hint="is the server running and is store.url (LLMOPS_STORE_URL) right?",
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- schema -----------------------------------------------------------------------------------------------

    def _has_schema(self, conn: Any) -> bool:
        if self._schema_ready:
            return True
        if conn.execute("SELECT to_regclass('llmops_collections')").fetchone()[0] is None:
            return False
        self._check_version(conn)
        self._schema_ready = conn.execute("SELECT 1 FROM llmops_schema").fetchone() is not None
        self._register_vector(conn)  # the tables exist, so the extension does (maybe created by another process)
        return True

    def _check_version(self, conn: Any) -> None:
        row = conn.execute("SELECT max(version) FROM llmops_schema").fetchone()
        if row and row[0] is not None and row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"the llmops tables at {self.where} have schema version {row[0]}; this llmops knows {SCHEMA_VERSION}",
                hint="upgrade llmops on this machine",
            )

    def _ensure_schema(self, conn: Any) -> None:
        """Create the extension and tables on first write (once per database: the advisory lock orders two
        processes doing it at the same moment)."""
        if self._schema_ready:
            # another process may have created the extension after this connection opened (two first writers at
            # once): register the vector type now, or numpy vectors cannot be sent
            self._register_vector(conn)
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except Exception as e:  # noqa: BLE001 - any failure here means: no pgvector to use
                    why = _first_line(mask_url_password(str(e)))  # the server's own HINT line is our hint
                    raise StoreError(
                        f"PostgreSQL at {self.where} has no pgvector extension and it cannot be created here ({why})",
                        hint="install pgvector on the server and run CREATE EXTENSION vector as a superuser",
                    ) from None
            conn.execute(_SCHEMA)
            self._check_version(conn)
            if conn.execute("SELECT 1 FROM llmops_schema").fetchone() is None:
                conn.execute("INSERT INTO llmops_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        self._register_vector(conn)
        self._schema_ready = True

    def schema_version(self) -> int | None:
        with self._db() as conn:
            if not self._has_schema(conn):
                return None
            return conn.execute("SELECT max(version) FROM llmops_schema").fetchone()[0]

    # --- collections ------------------------------------------------------------------------------------------

    def _row(self, conn: Any, name: str) -> tuple[int, dict[str, Any], int | None] | None:
        if not self._has_schema(conn):
            return None
        row = conn.execute("SELECT id, metadata, dimension FROM llmops_collections WHERE name = %s", (name,)).fetchone()
        return None if row is None else (row[0], dict(row[1] or {}), row[2])

    def _need(self, conn: Any, name: str) -> tuple[int, dict[str, Any], int | None]:
        row = self._row(conn, name)
        if row is None:
            raise NotFoundError(
                f"collection {name!r} does not exist in the store at {self.where}",
                hint="ingest into it first (llmops ingest PATH --collection NAME) or list them with llmops collections",
            )
        return row

    def ensure_collection(self, name: str, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._db() as conn:
            row = self._row(conn, name)
            if row is not None:
                return row[1]
            self._ensure_schema(conn)
            conn.execute(
                "INSERT INTO llmops_collections (name, metadata) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, _jsonb(metadata or {})),
            )
            write_steps.step("create collection")
            return self._need(conn, name)[1]

    def collection_metadata(self, name: str) -> dict[str, Any] | None:
        with self._db() as conn:
            row = self._row(conn, name)
            return None if row is None else row[1]

    def set_collection_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        with self._db() as conn:
            self._need(conn, name)
            # merged in the database: two writers setting different keys both keep theirs
            conn.execute(
                "UPDATE llmops_collections SET metadata = metadata || %s WHERE name = %s", (_jsonb(metadata), name)
            )
            write_steps.step("collection metadata")

    def vector_problem(self) -> str | None:
        """Why the first write would fail for want of pgvector or of the right to create llmops's tables (``llmops
        doctor`` reads, creates nothing), or None: the extension is enabled in this database, or this user may
        enable it (the first write does), and the tables exist or this user may create them."""
        with self._db() as conn:
            if not self._has_schema(conn):
                schema, may_create = conn.execute(
                    "SELECT current_schema(), coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
                ).fetchone()
                if not may_create:
                    return f"this user may not create llmops's tables in schema {schema or '(none on search_path)'}"
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None:
                return None
            available, superuser, may_create = conn.execute(
                "SELECT bool_or(trusted), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
                "has_database_privilege(current_database(), 'CREATE') "
                "FROM pg_available_extension_versions WHERE name = 'vector'"
            ).fetchone()
        if available is None:
            return "the pgvector extension is not installed on this PostgreSQL server"
        if superuser or (available and may_create):
            return None
        return "pgvector is not enabled in this database, and this user may not enable it"

    def list_collections(self) -> list[str]:
        with self._db() as conn:
            if not self._has_schema(conn):
                return []
            return [r[0] for r in conn.execute("SELECT name FROM llmops_collections ORDER BY name")]

    def delete_collection(self, name: str) -> None:
        with self._db() as conn:
            row = self._row(conn, name)
            if row is None:
                return
            with conn.transaction():
                conn.execute(f"DROP TABLE IF EXISTS {_table(row[0])}")
                conn.execute("DELETE FROM llmops_collections WHERE id = %s", (row[0],))  # its ledger cascades
            write_steps.step("delete collection")

    # --- chunks -----------------------------------------------------------------------------------------------

    def _chunks_table(self, conn: Any, name: str, dimension: int) -> str:
        """The collection's chunk table, created (with its indexes) by the first upsert, which fixes the dimension."""
        cid, _, dim = self._need(conn, name)
        if dim is None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                dim = conn.execute("SELECT dimension FROM llmops_collections WHERE id = %s", (cid,)).fetchone()[0]
                if dim is None:
                    conn.execute(_chunks_ddl(_table(cid), dimension))
                    conn.execute("UPDATE llmops_collections SET dimension = %s WHERE id = %s", (dimension, cid))
                    dim = dimension
        if dim != dimension:
            raise StoreError(
                f"collection {name!r} holds {dim}-d vectors; these are {dimension}-d",
                hint="use the embedder the collection was made with, or ingest into a new collection",
            )
        return _table(cid)

    def _table_if_any(self, conn: Any, name: str) -> str | None:
        """The chunk table to read, None while the collection has no chunks table yet (nothing upserted)."""
        cid, _, dim = self._need(conn, name)
        return None if dim is None else _table(cid)

    @contextmanager
    def _chunks(self, name: str) -> Iterator[tuple[Any, str | None]]:
        """The connection and the collection's chunk table (None while nothing was upserted)."""
        with self._db() as conn:
            yield conn, self._table_if_any(conn, name)

    def upsert(self, name, ids, embeddings, documents, metadatas) -> None:
        if not len(ids):
            return
        vecs = np.asarray(embeddings, dtype=np.float32)
        # one row per id, the last one winning (ON CONFLICT cannot touch a row twice in one statement)
        last = {cid: i for i, cid in enumerate(ids)}
        order = sorted(last.values())
        with self._db() as conn:
            self._ensure_schema(conn)
            table = self._chunks_table(conn, name, int(vecs.shape[1]))
            # a big first load builds the HNSW index once at the end: measured 7x faster than inserting into it row
            # by row; a load killed before that leaves no index, which the next upsert builds
            bulk = len(order) >= BULK_ROWS and conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})").fetchone()[0]
            if bulk:
                conn.execute(f"DROP INDEX IF EXISTS {table}_embedding")
            for start in range(0, len(order), _PAGE):
                part = order[start : start + _PAGE]
                with conn.transaction():
                    conn.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS llmops_incoming (id text, document text, metadata jsonb, "
                        "embedding vector) ON COMMIT DELETE ROWS"
                    )
                    with conn.cursor().copy(
                        "COPY llmops_incoming (id, document, metadata, embedding) FROM STDIN"
                    ) as copy:
                        for i in part:
                            copy.write_row((ids[i], documents[i], _jsonb(_clean(metadatas[i])), vecs[i]))
                    # Chroma's upsert merges the metadata of an existing chunk; so does this one
                    conn.execute(
                        f"INSERT INTO {table} (id, document, metadata, embedding) "
                        "SELECT id, document, metadata, embedding FROM llmops_incoming "
                        f"ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document, "
                        f"metadata = {table}.metadata || EXCLUDED.metadata, embedding = EXCLUDED.embedding"
                    )
                write_steps.step("upsert chunks")
            if bulk or conn.execute("SELECT to_regclass(%s)", (f"{table}_embedding",)).fetchone()[0] is None:
                conn.execute(_hnsw_ddl(table))
            self._keep_statistics(conn, table)

    def update_metadata(self, name: str, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        if not ids:
            return
        with self._chunks(name) as (conn, table):
            if table is None:
                return
            with conn.transaction():
                with conn.cursor() as cur:
                    # merged as Chroma's update does: keys given replace, a None value removes the key
                    cur.executemany(
                        f"UPDATE {table} SET metadata = (metadata || %s) - %s::text[] WHERE id = %s",
                        [
                            (_jsonb(_clean(md)), [k for k, v in md.items() if v is None], cid)
                            for cid, md in zip(ids, metadatas, strict=True)
                        ],
                    )
            write_steps.step("update chunk metadata")

    def delete(self, name, ids) -> None:
        ids = list(ids)
        if not ids:
            return
        with self._chunks(name) as (conn, table):
            if table is None:
                return
            for page in _pages(ids):
                conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (page,))
                write_steps.step("delete chunks")
            self._keep_statistics(conn, table)

    def query(self, name, embedding, k, where=None) -> list[Hit]:
        if k <= 0:
            return []
        with self._chunks(name) as (conn, table):
            if table is None:
                return []
            cond, params = _filter(where)
            vec = np.asarray(embedding, dtype=np.float32)
            with conn.transaction():
                self._search_settings(conn, k)
                rows = conn.execute(
                    f"SELECT id, document, metadata, embedding <=> %s AS d FROM {table} WHERE {cond} "
                    "ORDER BY d LIMIT %s",
                    (vec, *params, k),
                ).fetchall()
        return [Hit(id=r[0], text=r[1], score=1.0 - float(r[3]), metadata=dict(r[2])) for r in rows]

    def _keep_statistics(self, conn: Any, table: str) -> None:
        """ANALYZE the chunk table when it grew or shrank by a tenth since it was last analysed: the text query leaves
        out the words its statistics find in most chunks, and those must describe the collection as it is now (the
        server's autovacuum would do it too, but later and at a time of its choosing). The row count PostgreSQL last
        saw (reltuples) is not enough: CREATE INDEX sets it too, without statistics (a first bulk load builds its
        index, then came here with a table that looked analysed and was not: the text query kept its common words)."""
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        seen = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]
        analysed = conn.execute(
            "SELECT 1 FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s AND attname = 'tsv'",
            (table,),
        ).fetchone()
        if rows and (analysed is None or seen is None or seen < 0 or abs(rows - seen) > 0.1 * seen + 50):
            conn.execute(f"ANALYZE {table}")
            self._shares.pop(table, None)

    def _lexeme_shares(self, conn: Any, table: str) -> dict[str, float]:
        """The share of the table's rows that hold each common lexeme, from the statistics ANALYZE keeps for the
        tsvector column (its most common elements); read at most every _STATS_TTL_S seconds."""
        import time

        cached = self._shares.get(table)
        if cached is not None and time.monotonic() - cached[0] < _STATS_TTL_S:
            return cached[1]
        row = conn.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s AND attname = 'tsv'",
            (table,),
        ).fetchone()
        shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
        self._shares[table] = (time.monotonic(), shares)
        return shares

    def _text_query(self, conn: Any, table: str, text: str) -> str:
        """The tsquery of ``text``: its lexemes (the column's configuration: stemmed, stopwords out), OR-ed, less
        the common ones (see text_query)."""
        lexemes = [
            r[0] for r in conn.execute("SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))", (TS_CONFIG, text))
        ]
        return text_query(lexemes, self._lexeme_shares(conn, table) if lexemes else {})

    @staticmethod
    def _search_settings(conn: Any, k: int) -> None:
        # a filtered HNSW scan goes on until it has k rows that pass the filter (pgvector 0.8 iterative scans),
        # in exact distance order; ef_search at least k so that k rows can come back
        conn.execute(
            "SET LOCAL hnsw.iterative_scan = strict_order; "
            f"SET LOCAL hnsw.ef_search = {max(40, min(int(k), _MAX_EF_SEARCH))}"
        )

    def hybrid_query(
        self,
        name: str,
        text: str,
        embedding: np.ndarray | None,
        n: int,
        where: dict[str, Any] | None = None,
        *,
        rrf_k: int = 60,
    ) -> list[Hit]:
        """The ``n`` nearest chunks by vector (none when ``embedding`` is None) and the ``n`` best by full-text rank,
        in one statement, fused by reciprocal rank fusion: each hit's ``ranks`` says where it stood in each list
        ("vector", "lexical"), its score is the fused score (the lexical rank alone when there is no vector list)."""
        if n <= 0:
            return []
        with self._chunks(name) as (conn, table):
            if table is None:
                return []
            terms = self._text_query(conn, table, text)
            if embedding is None and not terms:
                return []
            cond, params = _filter(where)
            parts, args = [], []
            if embedding is not None:
                parts.append(
                    f"v AS (SELECT id, row_number() OVER (ORDER BY d, seq) AS r FROM ("
                    f"SELECT id, seq, embedding <=> %s AS d FROM {table} WHERE {cond} ORDER BY d LIMIT %s) s)"
                )
                args += [np.asarray(embedding, dtype=np.float32), *params, n]
            else:
                parts.append("v AS (SELECT NULL::text AS id, NULL::bigint AS r WHERE false)")
            if terms:
                parts.append(
                    "l AS (SELECT id, rank, row_number() OVER (ORDER BY rank DESC, seq) AS r FROM ("
                    f"SELECT id, seq, ts_rank(tsv, q) AS rank FROM {table}, CAST(%s AS tsquery) q "
                    f"WHERE tsv @@ q AND {cond} ORDER BY rank DESC, seq LIMIT %s) s)"
                )
                args += [terms, *params, n]
            else:
                parts.append("l AS (SELECT NULL::text AS id, NULL::real AS rank, NULL::bigint AS r WHERE false)")
            sql = (
                f"WITH {', '.join(parts)}, "
                "f AS (SELECT coalesce(v.id, l.id) AS id, v.r AS vr, l.r AS lr, l.rank AS text_rank, "
                "coalesce(1.0 / (%s + v.r), 0) + coalesce(1.0 / (%s + l.r), 0) AS score "
                "FROM v FULL OUTER JOIN l ON v.id = l.id) "
                f"SELECT f.id, c.document, c.metadata, f.vr, f.lr, f.score, f.text_rank FROM f "
                f"JOIN {table} c ON c.id = f.id "
                "ORDER BY f.score DESC, f.vr NULLS LAST, f.lr"
            )
            with conn.transaction():
                self._search_settings(conn, n)
                rows = conn.execute(sql, (*args, rrf_k, rrf_k)).fetchall()
        out = []
        for cid, doc, md, vr, lr, score, text_rank in rows:
            ranks = {}
            if vr is not None:
                ranks["vector"] = int(vr)
            if lr is not None:
                ranks["lexical"] = int(lr)
            # without a vector list a hit's score is its text rank (ts_rank), as BM25 hits carry their BM25 score
            shown = float(text_rank) if embedding is None else float(score)
            out.append(Hit(id=cid, text=doc, score=shown, metadata=dict(md), ranks=ranks))
        return out

    def get(self, name, *, ids=None, where=None, include_documents=True, limit=None, offset=0) -> list[Hit]:
        with self._chunks(name) as (conn, table):
            if table is None:
                return []
            cond, params = _filter(where)
            doc = "document" if include_documents else "''"
            if ids is not None:
                ids = list(ids)
                rows = []
                for page in _pages(ids):
                    rows += conn.execute(
                        f"SELECT id, {doc}, metadata FROM {table} WHERE id = ANY(%s) AND {cond}",
                        (page, *params),
                    ).fetchall()
                order = {cid: i for i, cid in enumerate(ids)}
                rows.sort(key=lambda r: order.get(r[0], 0))
            else:
                page = f" LIMIT {int(limit)}" if limit is not None else ""
                rows = conn.execute(
                    f"SELECT id, {doc}, metadata FROM {table} WHERE {cond} ORDER BY seq OFFSET %s{page}",
                    (*params, int(offset or 0)),
                ).fetchall()
        return [Hit(id=r[0], text=r[1] or "", score=0.0, metadata=dict(r[2])) for r in rows]

    def count(self, name) -> int:
        with self._chunks(name) as (conn, table):
            return 0 if table is None else conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def ids(self, name) -> list[str]:
        with self._chunks(name) as (conn, table):
            return [] if table is None else [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY seq")]

    # --- vector checks (collections verify): rows and their vectors are one record here --------------------------

    def read_embeddings(self, name: str, ids: Sequence[str]) -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {cid: None for cid in ids}
        with self._chunks(name) as (conn, table):
            if table is None:
                return out
            ids = list(ids)
            for page in _pages(ids):
                for cid, vec in conn.execute(f"SELECT id, embedding FROM {table} WHERE id = ANY(%s)", (page,)):
                    # pgvector's loader gives a Vector (to_numpy) in some versions, an array in others
                    out[cid] = np.asarray(vec.to_numpy() if hasattr(vec, "to_numpy") else vec, dtype=np.float32)
        return out

    def vector_search_ids(self, name: str, dimension: int, n: int) -> set[str]:
        """Every chunk with a vector: a row and its vector are one record, and PostgreSQL's HNSW index is rebuilt
        from the table (REINDEX), so there is no vector a search cannot reach without the table knowing."""
        with self._chunks(name) as (conn, table):
            if table is None:
                return set()
            return {r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE embedding IS NOT NULL")}

    # --- manifest (ledger) ------------------------------------------------------------------------------------

    def read_manifest(self, name) -> dict[str, SourceRecord]:
        with self._db() as conn:
            row = self._row(conn, name)
            if row is None:
                return {}
            rows = conn.execute(
                "SELECT source_id, content_hash, chunk_ids, extra FROM llmops_sources WHERE collection_id = %s",
                (row[0],),
            ).fetchall()
        return {
            sid: SourceRecord(source_id=sid, content_hash=h, chunk_ids=list(c), extra=dict(x)) for sid, h, c, x in rows
        }

    def write_manifest(self, name, records) -> None:
        records = list(records)
        if not records:
            return
        with self._ledger_change(name, "write ledger") as (conn, cid):
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO llmops_sources (collection_id, source_id, content_hash, chunk_ids, extra) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection_id, source_id) DO UPDATE SET "
                    "content_hash = EXCLUDED.content_hash, chunk_ids = EXCLUDED.chunk_ids, extra = EXCLUDED.extra",
                    [
                        (
                            cid,
                            r.source_id,
                            r.content_hash,
                            _jsonb(list(r.chunk_ids)),
                            _jsonb({k: v for k, v in r.extra.items() if v is not None}),
                        )
                        for r in records
                    ],
                )

    def delete_manifest(self, name, source_ids) -> None:
        ids = list(source_ids)
        if not ids:
            return
        with self._ledger_change(name, "delete ledger records") as (conn, cid):
            conn.execute("DELETE FROM llmops_sources WHERE collection_id = %s AND source_id = ANY(%s)", (cid, ids))

    @contextmanager
    def _ledger_change(self, name: str, step: str) -> Iterator[tuple[Any, int]]:
        """A transaction that changes the collection's ledger records (yields the connection and the collection's
        id). The generation moves in the same transaction as the records: never one without the other."""
        with self._db() as conn:
            cid = self._need(conn, name)[0]
            with conn.transaction():
                yield conn, cid
                conn.execute(
                    "UPDATE llmops_collections SET ledger_generation = %s WHERE id = %s", (uuid.uuid4().hex, cid)
                )
            write_steps.step(step)

    def ledger_generation(self, name: str) -> str | None:
        with self._db() as conn:
            if not self._has_schema(conn):
                return None
            row = conn.execute("SELECT ledger_generation FROM llmops_collections WHERE name = %s", (name,)).fetchone()
            return None if row is None else row[0]


# --- helpers ------------------------------------------------------------------------------------------------------


def _pages(ids: list[str]) -> Iterator[list[str]]:
    """``ids`` in slices of ``_PAGE``: one statement's array parameter each."""
    for i in range(0, len(ids), _PAGE):
        yield ids[i : i + _PAGE]


def _table(collection_id: int) -> str:
    return f"llmops_chunks_{int(collection_id)}"


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _clean(md: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (md or {}).items() if v is not None}


def _filter(where: dict[str, Any] | None) -> tuple[str, tuple[Any, ...]]:
    """The SQL condition of a metadata filter: {"a": 1, "b": "x"} (every pair must match, as with Chroma) or Chroma's
    own {"$and": [{"a": 1}, ...]} / {"a": {"$eq": 1}}. Values compare with their JSON type, as in Chroma."""
    if not where:
        return "true", ()
    pairs: dict[str, Any] = {}

    def take(clause: dict[str, Any]) -> None:
        for key, value in clause.items():
            if key == "$and" and isinstance(value, list):
                for part in value:
                    take(part)
            elif key.startswith("$"):
                raise StoreError(f"metadata filter operator {key} is not supported by the PostgreSQL store")
            elif isinstance(value, dict):
                if set(value) != {"$eq"}:
                    raise StoreError(
                        f"metadata filter {key}: {value} is not supported by the PostgreSQL store (equality only)"
                    )
                pairs[key] = value["$eq"]
            else:
                pairs[key] = value

    take(where)
    return "metadata @> %s", (_jsonb(pairs),)


def text_query(lexemes: Sequence[str], shares: dict[str, float]) -> str:
    """``lexemes`` as an OR tsquery ('a' | 'b'): like BM25, a chunk matches on any word of the question and ranks
    higher the more it holds (plainto_tsquery would AND them: a long question would match nothing). Lexemes found in
    more than COMMON_SHARE of the chunks (``shares``, from the column's statistics) are left out, as BM25 all but
    ignores them; when every one is common, the rarest stays. Lexemes are written as tsquery literals (cast, not
    parsed again), so a quote cannot break out."""
    words = [w for w in dict.fromkeys(lexemes) if w]
    keep = [w for w in words if shares.get(w, 0.0) <= COMMON_SHARE]
    if not keep and words:
        keep = [min(words, key=lambda w: shares.get(w, 0.0))]
    return " | ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in keep)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())
