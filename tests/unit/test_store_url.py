"""store.url picks the store (open_store); the PostgreSQL store's filters and text queries; the retriever uses a
store's own text search when it has one. No server here: unreachable addresses on loopback only."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from llmops_cli.adapters.vectorstores import open_store
from llmops_cli.core.documents import Hit
from llmops_cli.core.retrieval import Retriever, reciprocal_rank_fusion, searches_text_itself
from llmops_cli.errors import ExitCode, StoreError, UnreachableError
from llmops_cli.settings import StoreSettings
from tests.support.fakes import FakeEmbedder, MemoryStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_unset_url_is_the_embedded_store_and_creates_nothing(tmp_path):
    store = open_store(StoreSettings(), tmp_path / "chroma", read_only=True)
    assert type(store).__name__ == "ChromaStore" and store.where == str(tmp_path / "chroma")
    assert store.list_collections() == [] and not (tmp_path / "chroma").exists()


def test_a_chroma_server_url_that_nobody_answers_is_exit_7_naming_it(tmp_path):
    port = _closed_port()
    with pytest.raises(UnreachableError) as e:
        open_store(StoreSettings(url=f"http://127.0.0.1:{port}"), tmp_path / "chroma")
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert f"http://127.0.0.1:{port}" in str(e.value) and "store.url" in e.value.hint


def test_the_long_form_host_port_still_reaches_a_server(tmp_path):
    port = _closed_port()
    with pytest.raises(UnreachableError) as e:
        open_store(StoreSettings(host="127.0.0.1", port=port), tmp_path / "chroma")
    assert f"127.0.0.1:{port}" in str(e.value)


def test_an_unreachable_postgres_is_exit_7_and_never_shows_the_password(tmp_path):
    pytest.importorskip("psycopg")
    port = _closed_port()
    url = f"postgresql://llmops:s3cr%40t-pw@127.0.0.1:{port}/llmops"
    with pytest.raises(UnreachableError) as e:
        open_store(StoreSettings(url=url), tmp_path / "chroma")
    text = f"{e.value} {e.value.hint}"
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert "s3cr" not in text and f"postgresql://llmops:********@127.0.0.1:{port}/llmops" in text
    assert "LLMOPS_STORE_URL" in e.value.hint


def test_postgres_metadata_filters_are_json_containment_with_types_kept():
    from llmops_cli.adapters.vectorstores.pgvector import _filter

    assert _filter(None) == ("true", ())
    cond, (param,) = _filter({"source": "docs/a.md", "chunk_index": 2})
    assert cond == "metadata @> %s" and param.obj == {"source": "docs/a.md", "chunk_index": 2}
    # Chroma's own spelling, as core/ingest and the CLI's --where produce it, means the same
    assert _filter({"$and": [{"a": 1}, {"b": {"$eq": "x"}}]})[1][0].obj == {"a": 1, "b": "x"}
    with pytest.raises(StoreError, match=r"\$or"):
        _filter({"$or": [{"a": 1}, {"a": 2}]})
    with pytest.raises(StoreError, match="equality only"):
        _filter({"a": {"$gt": 1}})


def test_postgres_text_queries_or_the_lexemes_and_leave_out_the_common_ones():
    from llmops_cli.adapters.vectorstores.pgvector import COMMON_SHARE, text_query

    # any word may match, as with BM25 (plainto_tsquery would require all of them)
    assert text_query(["pool", "slot", "pool"], {}) == "'pool' | 'slot'"
    # a lexeme in most chunks adds nothing BM25 would weigh (and makes PostgreSQL rank most of the table)
    assert text_query(["dag", "pool"], {"dag": COMMON_SHARE + 0.1, "pool": 0.01}) == "'pool'"
    assert text_query(["dag", "task"], {"dag": 0.9, "task": 0.5}) == "'task'"  # all common: the rarest stays
    # written as tsquery literals: a quote or backslash cannot end the literal
    assert text_query(["it's", "a\\b"], {}) == "'it''s' | 'a\\\\b'"
    assert text_query([], {}) == ""


class TextRankingStore(MemoryStore):
    """A store with its own text search: hybrid_query answers from scripted lists, and records its calls."""

    def __init__(self, vector: list[str], lexical: list[str]):
        super().__init__()
        self.vector, self.lexical, self.calls = vector, lexical, []

    def hybrid_query(self, name, text, embedding, n, where=None, *, rrf_k=60):
        self.calls.append((text, embedding is not None, n, where))
        out: dict[str, Hit] = {}
        for side, ids in (("vector", self.vector if embedding is not None else []), ("lexical", self.lexical)):
            for r, cid in enumerate(ids[:n], 1):
                out.setdefault(cid, Hit(id=cid, text=cid, score=0.0, metadata={"source": cid})).ranks[side] = r
        return list(out.values())


class NoIndex:
    def search(self, *a, **k):
        raise AssertionError("the local BM25 index must not be used with a store that ranks text itself")


def test_the_retriever_fuses_the_stores_own_lists_by_rrf_and_never_reads_a_local_index():
    store = TextRankingStore(vector=["a", "b", "c"], lexical=["c", "d"])
    assert searches_text_itself(store) and not searches_text_itself(MemoryStore())
    r = Retriever(store, FakeEmbedder(), "docs", lexical=NoIndex(), candidates=10, rrf_k=60)
    hits = r.search("pool slots", 3, where={"format": "markdown"})
    want = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d"]], k=60)[:3]
    assert [(h.id, pytest.approx(s)) for h, (_, s) in zip(hits, want, strict=True)] == [
        (cid, pytest.approx(s)) for cid, s in want
    ]
    assert hits[0].id == "c" and hits[0].ranks == {"vector": 3, "lexical": 1}
    assert store.calls == [("pool slots", True, 10, {"format": "markdown"})]  # one call gives both lists

    lexical_only = r.search("pool slots", 2, mode="lexical")
    assert [h.id for h in lexical_only] == ["c", "d"] and store.calls[-1][1] is False  # no vector asked for
    # several wordings: each gives its two lists, all fused together
    many = r.search_many(["pool slots", "slots of pools"], 4)
    assert {"vector#0", "lexical#1"} <= set(many[0].ranks) and len(store.calls) == 4


def test_vector_mode_does_not_ask_for_text_ranking():
    store = TextRankingStore(vector=["a"], lexical=["b"])
    store.ensure_collection("docs")
    vec = np.ones(FakeEmbedder().dimension, dtype=np.float32)
    store.upsert("docs", ["a"], vec[None, :], ["a"], [{"source": "a"}])
    r = Retriever(store, FakeEmbedder(), "docs", lexical=NoIndex())
    assert [h.id for h in r.search("anything", 1, mode="vector")] == ["a"] and store.calls == []


def test_a_postgresql_plus_driver_url_reaches_the_server_as_postgresql(tmp_path):
    # store.url and state.url accept SQLAlchemy's postgresql+psycopg://; libpq rejected it as 'missing "=" after
    # ... in connection info string' (exit 1 for the store, a wrong "cannot be reached" for the state database)
    pytest.importorskip("psycopg")
    from llmops_cli.adapters.state import open_state
    from llmops_cli.adapters.state.postgres import libpq_url

    assert libpq_url("postgresql+psycopg://u:p@h/db") == "postgresql://u:p@h/db"
    assert libpq_url("postgres://u:p+q@h/db") == "postgres://u:p+q@h/db"
    port = _closed_port()
    url = f"postgresql+psycopg://llmops:pw@127.0.0.1:{port}/llmops"
    with pytest.raises(UnreachableError) as e:
        open_store(StoreSettings(url=url), tmp_path / "chroma")
    assert "refused" in str(e.value).lower() and "missing" not in str(e.value)
    with pytest.raises(UnreachableError) as e:
        open_state(url, tmp_path).describe()
    assert "refused" in str(e.value).lower() and "missing" not in str(e.value)


def test_a_rejected_state_database_login_keeps_the_drivers_reason_readable_through_the_secret_filter():
    # the CLI printed "rejected the credentials: [REDACTED_SECRET] failed: ..." ("credentials: connection" looked like
    # a secret assignment to the filter every error line passes)
    from llmops_cli.adapters.state.postgres import _connect_error
    from llmops_cli.core.redaction import redact_secrets
    from llmops_cli.errors import AuthError

    e = _connect_error(
        "postgresql://u:********@h/db", Exception('connection failed: FATAL: password authentication failed for "u"')
    )
    assert isinstance(e, AuthError) and e.exit_code == ExitCode.AUTH
    assert "rejected the credentials (connection failed: FATAL: password authentication failed" in redact_secrets(
        e.message
    )


def test_a_copy_ended_by_a_lost_connection_leaves_no_stray_driver_warning_on_stderr(tmp_path):
    # a server killed mid-ingest printed "error ignored terminating <psycopg.Copy [BAD] at 0x...>: the connection is
    # lost" (psycopg's WARNING, through Python's last-resort handler) above the one error line
    pytest.importorskip("psycopg")
    import logging

    port = _closed_port()
    try:
        with pytest.raises(UnreachableError):
            open_store(StoreSettings(url=f"postgresql://u@127.0.0.1:{port}/db"), tmp_path / "chroma")
        assert not logging.getLogger("psycopg").isEnabledFor(logging.WARNING)
    finally:
        logging.getLogger("psycopg").setLevel(logging.NOTSET)


def test_no_pgvector_extension_is_one_error_line_with_the_fix_in_the_hint():
    # the server's two-line message (its "HINT:  Must be superuser..." line) ended up inside the error line
    from contextlib import nullcontext

    from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore

    class Conn:
        def transaction(self):
            return nullcontext()

        def execute(self, sql, args=()):
            if sql.startswith("CREATE EXTENSION"):
                raise RuntimeError(
                    'permission denied to create extension "vector"\nHINT:  Must be superuser to create it.'
                )
            return type("R", (), {"fetchone": lambda self: None})()

    store = PgVectorStore("postgresql://app:pw-secret@db/app")
    with pytest.raises(StoreError) as e:
        store._ensure_schema(Conn())
    assert "\n" not in e.value.message and 'permission denied to create extension "vector"' in e.value.message
    assert "pw-secret" not in e.value.message and "superuser" in e.value.hint


@pytest.mark.parametrize(
    "row, problem",
    [
        ((None, None, None), "not installed on this PostgreSQL server"),
        ((False, False, True), "this user may not enable it"),  # pgvector is not a trusted extension
        ((False, True, False), None),  # a superuser: the first write enables it
        ((True, False, True), None),  # trusted, and CREATE on the database
    ],
)
def test_doctor_learns_that_the_first_ingest_would_fail_for_want_of_pgvector(row, problem):
    # doctor said "ok store ...: 0 collection(s)" and the first ingest failed: no pgvector to enable
    from contextlib import contextmanager

    from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore

    class Conn:
        def execute(self, sql, args=()):
            one = {"pg_extension": None, "to_regclass": (None,), "current_schema": ("public", True)}
            one = next((v for k, v in one.items() if k in sql), row)
            return type("R", (), {"fetchone": lambda self: one})()

    store = PgVectorStore("postgresql://app:pw@db/app")
    store._db = contextmanager(lambda: (yield Conn()))
    found = store.vector_problem()
    assert found is None if problem is None else problem in found


def test_doctor_learns_that_the_first_ingest_would_fail_for_want_of_create_on_the_schema():
    # PostgreSQL 15+ grants no CREATE on schema public to everyone: doctor said "ok", ingest failed with
    # "permission denied for schema public" and no hint, the state database likewise
    from contextlib import contextmanager

    psycopg = pytest.importorskip("psycopg")
    from llmops_cli.adapters.state.postgres import PostgresDB
    from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore

    class Conn:
        def execute(self, sql, args=()):
            one = (None,) if "to_regclass" in sql else ("public", False)
            return type("R", (), {"fetchone": lambda self: one})()

    store = PgVectorStore("postgresql://app:pw@db/app")
    store._db = contextmanager(lambda: (yield Conn()))
    assert store.vector_problem() == "this user may not create llmops's tables in schema public"
    db = PostgresDB.__new__(PostgresDB)
    db.label = "postgresql://app:********@db/app"
    e = db._statement_error(psycopg.errors.InsufficientPrivilege("permission denied for schema public\nLINE 1: ..."))
    assert "state.url=" in e.message and "permission denied for schema public" in e.message
    assert "LINE 1" not in e.message and "CREATE" in e.hint
    store._conn = type("C", (), {"closed": False})()
    del store._db  # the real one: psycopg's error turned into ours
    with pytest.raises(StoreError) as se, store._db():
        raise psycopg.errors.InsufficientPrivilege("permission denied for schema public")
    assert "permission denied for schema public" in se.value.message and "CREATE on that schema" in se.value.hint


def test_doctor_fails_the_store_check_when_pgvector_cannot_be_enabled(monkeypatch, capsys):
    import json

    from tests.support.fakes import MemoryStore, use_fake_workspaces
    from tests.unit.test_machine_contract import run

    use_fake_workspaces(monkeypatch)
    monkeypatch.setattr(MemoryStore, "vector_problem", lambda self: "pgvector is not enabled", raising=False)
    env = {"LLMOPS_STORE_URL": "postgresql://app:pw-secret@db/app"}
    code, out, _ = run(monkeypatch, capsys, "doctor", "--timeout", "1", "--json", env=env)
    store = {c["name"]: c for c in json.loads(out)["checks"]}["store"]
    assert code == 1 and store["status"] == "fail" and "pgvector is not enabled" in store["detail"]
    assert "CREATE EXTENSION vector" in store["fix"] and "pw-secret" not in out


def test_a_state_url_whose_search_path_names_no_schema_says_so_with_the_fix():
    # before: "error: no schema has been selected to create in LINE 1: CREATE TABLE IF NOT EXISTS ..." with no
    # hint and no mention of state.url (docs/state-database.md suggests ?options=-csearch_path%3Dllmops)
    psycopg = pytest.importorskip("psycopg")
    from llmops_cli.adapters.state.postgres import PostgresDB

    db = PostgresDB.__new__(PostgresDB)
    db.label = "postgresql://u:********@db/x?options=-csearch_path%3Dllmops"
    e = db._statement_error(psycopg.errors.InvalidSchemaName("no schema has been selected to create in\nLINE 1: ..."))
    assert "state.url=" in e.message and "has no schema" in e.message and "LINE 1" not in e.message
    assert "CREATE SCHEMA" in e.hint
    other = db._statement_error(psycopg.errors.UndefinedTable('relation "x" does not exist'))
    assert other.message == 'relation "x" does not exist'


def test_pgvector_outside_the_search_path_is_named_with_the_fix(monkeypatch):
    # store.url with ?options=-csearch_path%3Dteam (the form state-database.md shows) on a database whose pgvector
    # lives in public: "PostgreSQL store at ... failed: vector type not found in the database", no hint
    psycopg = pytest.importorskip("psycopg")
    import pgvector.psycopg

    from llmops_cli.adapters.vectorstores.pgvector import PgVectorStore

    def missing(conn):
        raise psycopg.ProgrammingError("vector type not found in the database")

    monkeypatch.setattr(pgvector.psycopg, "register_vector", missing)

    class Conn:
        def execute(self, sql, args=()):
            one = ("public",) if "nspname" in sql else (1,)
            return type("R", (), {"fetchone": lambda self: one})()

    store = PgVectorStore("postgresql://u:pw-secret@db/x?options=-csearch_path%3Dteam")
    with pytest.raises(StoreError) as e:
        store._register_vector(Conn())
    assert "schema 'public'" in e.value.message and "search_path" in e.value.message
    assert "csearch_path%3DYOURSCHEMA,public" in e.value.hint and "pw-secret" not in e.value.message


def test_a_chroma_server_that_accepts_and_never_answers_is_exit_7_in_time(tmp_path, monkeypatch):
    # chromadb's HTTP client has no timeout: `llmops query` hung for good on a port that accepts and stays silent
    import time
    from types import SimpleNamespace

    import httpx

    from llmops_cli.adapters.vectorstores import chroma

    monkeypatch.setattr(chroma, "CONNECT_TIMEOUT_S", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nothing ever reads or answers
    try:
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="did not answer within") as e:
            open_store(StoreSettings(url=f"http://127.0.0.1:{silent.getsockname()[1]}"), tmp_path / "chroma")
        assert e.value.exit_code == ExitCode.UNREACHABLE and time.monotonic() - started < 5
    finally:
        silent.close()
    # and every later call of the command is bounded too (a server that stops answering mid-ingest)
    session = httpx.Client(timeout=None)
    chroma._bound_requests(SimpleNamespace(_server=SimpleNamespace(_session=session)))
    assert session.timeout.read == chroma.REQUEST_TIMEOUT_S and session.timeout.connect == 0.5


def test_another_http_server_on_the_chroma_port_is_named_as_such(tmp_path):
    # llmops serve and Chroma both default to port 8000: a store.url at the wrong server said "Chroma server at ...
    # is not reachable (ValueError)" of a server that answered
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotChroma(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), NotChroma)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UnreachableError) as e:
            open_store(StoreSettings(url=f"http://127.0.0.1:{srv.server_port}"), tmp_path / "chroma")
        assert "not as a Chroma server" in e.value.message and "HTTP 404" in e.value.message
        assert e.value.exit_code == ExitCode.UNREACHABLE and "store.url" in e.value.hint
    finally:
        srv.shutdown()
        srv.server_close()
