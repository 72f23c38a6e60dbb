"""Chroma adapter: embedded PersistentClient by default, or a Chroma server. Our own vectors only:
collections are created with embedding_function=None, so Chroma's default model (a download) is never used.

The per-source manifest lives beside each collection in ``<name>__sources`` (1-d placeholder vectors), so
it travels with the store, embedded or server. It also holds the ledger generation (GENERATION_RECORD): a fresh
token written in the same Chroma call as every change of the records, so whatever indexes the collection (the
lexical index) can never miss a change the ledger has: there is no moment where one is written and not the other.

Writes to an embedded store happen only under its write lock (core/store_lock.py): a writing command takes it
up front; a write from anywhere else takes it at its first write and keeps it while the store object lives.
"""

from __future__ import annotations

import json
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmops_cli.core import write_steps
from llmops_cli.core.documents import Hit
from llmops_cli.core.ports import SourceRecord, VectorStore
from llmops_cli.errors import NotFoundError, StoreError, UnreachableError, UsageError

MANIFEST_SUFFIX = "__sources"
MAX_BATCH = 5000  # Chroma 1.5.9 raises over get_max_batch_size() = 5461
GENERATION_RECORD = (
    "//llmops/generation"  # the ledger generation's row in <name>__sources (no source id starts with //)
)


class ChromaStore(VectorStore):
    def __init__(self, client: Any, where: str, *, open_writer: Callable[[], Any] | None = None):
        self._client = client
        self.where = where
        self._cols: dict[str, Any] = {}
        # set while ``client`` is the fast read-only view of an embedded store: the first write opens the full client
        self._open_writer = open_writer
        self._upgrade = threading.Lock()
        self._lock_store: Path | None = None  # an embedded store's folder: writes need its write lock

    def _locked(self) -> None:
        """Hold the embedded store's write lock before any write (no-op when this process holds it already)."""
        from llmops_cli.core import store_lock

        if self._lock_store is None or store_lock.holds(self._lock_store):
            return
        store_lock.acquire(self._lock_store)
        weakref.finalize(self, store_lock.release, self._lock_store)

    @staticmethod
    def _persistent_client(path: Path) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        try:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - also a Rust panic (pyo3 PanicException) on a damaged database
            damaged = sqlite_problems(path)
            if damaged:
                raise StoreError(
                    f"cannot open the Chroma store at {path}: its database is damaged ({damaged[0]})",
                    hint="llmops collections verify NAME says what is lost; "
                    "ingest the sources again into a fresh store (store.path)",
                ) from None
            raise StoreError(
                f"cannot open the Chroma store at {path}: {e}",
                hint="check store.path (LLMOPS_STORE_PATH) and its permissions",
            ) from None

    @classmethod
    def embedded(cls, path: Path, *, read_only: bool = False) -> ChromaStore:
        """The embedded store. Reads go through the fast read-only view (chroma_reader.py) when it can be used;
        the full chromadb client (0.6-0.9 s to import) is opened by the first write, never with ``read_only``.
        An unchanged re-ingest or a query thus never imports chromadb."""
        from llmops_cli.adapters.vectorstores.chroma_reader import open_reader

        path = Path(path)
        reader = open_reader(path)
        if reader is None and not (path / "chroma.sqlite3").is_file():
            # nothing stored here yet: reads see an empty store and create nothing (a `collections list` or a query
            # in the wrong folder leaves no trace); the first write creates the store
            store = cls(
                EmptyStoreClient(path),
                str(path),
                open_writer=None if read_only else (lambda: cls._persistent_client(path)),
            )
        elif reader is None:
            store = cls(cls._persistent_client(path), str(path))
        else:
            store = cls(reader, str(path), open_writer=None if read_only else (lambda: cls._persistent_client(path)))
        store._lock_store = path
        return store

    @property
    def on_read_view(self) -> bool:
        """True while this store reads through the read-only view (its first write opens the full client, or fails
        when it was built ``read_only``)."""
        from llmops_cli.adapters.vectorstores.chroma_reader import RustReadClient

        return isinstance(self._client, RustReadClient)

    def _writable(self) -> None:
        self._locked()
        if self._open_writer is None:
            return
        with self._upgrade:  # ingest writes from a second thread
            if self._open_writer is not None:
                self._client = self._open_writer()
                self._open_writer = None
                self._cols.clear()

    @classmethod
    def server(cls, host: str, port: int, *, ssl: bool = False) -> ChromaStore:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        url = f"{'https' if ssl else 'http'}://{host}:{port}"
        _answers_in_time(url)
        try:
            client = chromadb.HttpClient(
                host=host, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
            )
            client.heartbeat()
        except Exception as e:  # noqa: BLE001
            raise UnreachableError(
                f"Chroma server at {url} is not reachable ({type(e).__name__})",
                hint=SERVER_HINT,
            ) from None
        _bound_requests(client)
        return cls(_ServerCalls(client, url), url)

    # --- collections ---
    def _col(self, name: str, create: bool = False, metadata: dict[str, Any] | None = None, write: bool = False):
        if create or write:
            self._writable()
        if name in self._cols:
            return self._cols[name]
        try:
            if create:
                col = self._client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    metadata=metadata or None,
                    configuration={"hnsw": {"space": "cosine"}},
                )
            else:
                col = self._client.get_collection(name, embedding_function=None)
        except UnreachableError:
            raise
        except Exception as e:  # noqa: BLE001
            if not create and (
                "does not exist" in str(e) or type(e).__name__ in ("NotFoundError", "InvalidCollectionException")
            ):
                raise NotFoundError(
                    f"collection {name!r} does not exist in the store at {self.where}",
                    hint="ingest into it first (llmops ingest PATH --collection NAME) "
                    "or list them with llmops collections",
                ) from None
            raise StoreError(f"Chroma failed on collection {name!r}: {e}") from None
        self._cols[name] = col
        return col

    def ensure_collection(self, name: str, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        existing = self.collection_metadata(name)  # no write (and no full client) when it exists
        if existing is not None:
            return existing
        col = self._col(name, create=True, metadata=metadata)
        write_steps.step("create collection")
        return dict(col.metadata or {})

    def collection_metadata(self, name: str) -> dict[str, Any] | None:
        try:
            col = self._col(name)
        except NotFoundError:
            return None
        return dict(col.metadata or {})

    def set_collection_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        col = self._col(name, write=True)
        merged = {**(col.metadata or {}), **metadata}
        merged.pop("hnsw:space", None)
        col.modify(metadata=merged)
        write_steps.step("collection metadata")

    def list_collections(self) -> list[str]:
        names = [c.name if hasattr(c, "name") else str(c) for c in self._client.list_collections()]
        return sorted(n for n in names if not n.endswith(MANIFEST_SUFFIX))

    def delete_collection(self, name: str) -> None:
        self._writable()
        for n in (name, name + MANIFEST_SUFFIX):
            try:
                self._client.delete_collection(n)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._cols.pop(n, None)
            write_steps.step("delete collection")

    # --- chunks ---
    def upsert(self, name, ids, embeddings, documents, metadatas) -> None:
        col = self._col(name, write=True)
        for i in range(0, len(ids), MAX_BATCH):
            sl = slice(i, i + MAX_BATCH)
            col.upsert(
                ids=list(ids[sl]),
                embeddings=np.asarray(embeddings[sl], dtype=np.float32),
                documents=list(documents[sl]),
                metadatas=list(metadatas[sl]),
            )
            write_steps.step("upsert chunks")

    def update_metadata(self, name: str, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        col = self._col(name, write=True)
        for i in range(0, len(ids), MAX_BATCH):
            col.update(ids=list(ids[i : i + MAX_BATCH]), metadatas=list(metadatas[i : i + MAX_BATCH]))
            write_steps.step("update chunk metadata")

    def delete(self, name, ids) -> None:
        if not ids:
            return
        col = self._col(name, write=True)
        ids = list(ids)
        for i in range(0, len(ids), MAX_BATCH):
            col.delete(ids=ids[i : i + MAX_BATCH])
            write_steps.step("delete chunks")

    def query(self, name, embedding, k, where=None) -> list[Hit]:
        col = self._col(name)
        # no count() first: Chroma 1.5 returns what it has when k exceeds it (an empty list for an empty collection)
        try:
            res = col.query(
                query_embeddings=[np.asarray(embedding, dtype=np.float32)],
                n_results=k,
                where=_where(where),
                include=["documents", "metadatas", "distances"],
            )
        except Exception as e:
            # a collection another tool made, with vectors of another size (it records no embedder to check first)
            if "expecting embedding with dimension" not in str(e):
                raise
            raise UsageError(
                f"collection {name!r} cannot be searched with these query vectors: {str(e).splitlines()[0]}",
                hint="it was made with another embedder (not recorded in it): --mode lexical still searches its text",
            ) from None
        hits = []
        for i, cid in enumerate(res["ids"][0]):
            hits.append(
                Hit(
                    id=cid,
                    text=res["documents"][0][i] or "",
                    score=1.0 - float(res["distances"][0][i]),
                    metadata=dict(res["metadatas"][0][i] or {}),
                )
            )
        return hits

    def get(self, name, *, ids=None, where=None, include_documents=True, limit=None, offset=0) -> list[Hit]:
        col = self._col(name)
        include = ["metadatas"] + (["documents"] if include_documents else [])
        out: list[Hit] = []
        if ids is not None:
            ids = list(ids)
            for i in range(0, len(ids), MAX_BATCH):
                res = col.get(ids=ids[i : i + MAX_BATCH], where=_where(where), include=include)
                out.extend(_hits(res, include_documents))
            order = {cid: i for i, cid in enumerate(ids)}
            out.sort(key=lambda h: order.get(h.id, 0))
            return out
        page = MAX_BATCH if limit is None else min(limit, MAX_BATCH)
        pos = offset
        while True:
            res = col.get(where=_where(where), include=include, limit=page, offset=pos)
            got = _hits(res, include_documents)
            out.extend(got)
            pos += len(got)
            if len(got) < page or (limit is not None and len(out) >= limit):
                break
        return out[:limit] if limit is not None else out

    def count(self, name) -> int:
        return self._col(name).count()

    def ids(self, name) -> list[str]:
        # ids only: reading 20,000 chunks' metadata takes ~3 s, their ids ~0.25 s
        col = self._col(name)
        out: list[str] = []
        while True:
            got = col.get(include=[], limit=MAX_BATCH, offset=len(out))["ids"]
            out.extend(got)
            if len(got) < MAX_BATCH:
                return out

    # --- vector index checks (collections verify) ---
    def read_embeddings(self, name: str, ids: Sequence[str]) -> dict[str, np.ndarray | None]:
        """Each chunk's stored vector, None where Chroma cannot read it (its vector index lost or damaged it: a
        batch then fails as a whole, so it is split until the failing ids are found)."""
        col = self._col(name)
        out: dict[str, np.ndarray | None] = {}

        def read(part: list[str]) -> None:
            try:
                res = col.get(ids=part, include=["embeddings"])
            except Exception:  # noqa: BLE001 - "Error finding id" / "Error getting embedding"
                if len(part) == 1:
                    out[part[0]] = None
                    return
                read(part[: len(part) // 2])
                read(part[len(part) // 2 :])
                return
            for cid, vec in zip(res["ids"], res["embeddings"], strict=False):
                out[cid] = None if vec is None else np.asarray(vec, dtype=np.float32)

        ids = list(ids)
        for i in range(0, len(ids), 500):
            read(ids[i : i + 500])
        return out

    def vector_search_ids(self, name: str, dimension: int, n: int) -> set[str]:
        """Every id vector search can reach: a query for n results (the chunk count) walks the whole index graph,
        so a chunk the index lost (or cannot reach) is not among them."""
        if n <= 0:
            return set()
        probe = np.full(dimension, 1.0 / np.sqrt(dimension), dtype=np.float32)
        res = self._col(name).query(query_embeddings=[probe], n_results=n, include=[])
        return set(res["ids"][0])

    def _embedded_path(self) -> Path | None:
        path = Path(self.where)
        return path if (path / "chroma.sqlite3").is_file() else None

    def vector_probe(self, name: str, ids: Sequence[str], dimension: int) -> dict[str, Any]:
        """core.verify.probe_vectors, run in a child process for an embedded store: Chroma's engine can crash the
        whole process (SIGSEGV) on a damaged HNSW file, and verify must report that, not die of it. Returns
        {"unreadable": [...], "unreachable": [...], "crashed": None | "why"}."""
        import subprocess
        import sys

        from llmops_cli.core.verify import probe_vectors

        path = self._embedded_path()
        if path is None:
            return probe_vectors(self, name, list(ids), dimension)
        args = json.dumps({"path": str(path), "name": name, "ids": list(ids), "dimension": dimension})
        code = "from llmops_cli.adapters.vectorstores.chroma import _vector_probe_child; _vector_probe_child()"
        proc = subprocess.run([sys.executable, "-c", code], input=args, capture_output=True, text=True)
        results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        out: dict[str, Any] = {"unreadable": [], "unreachable": [], "crashed": None}
        for part in results:
            out.update(part)
        if proc.returncode != 0:
            import signal

            how = (
                f"signal {signal.Signals(-proc.returncode).name}"
                if proc.returncode < 0
                else (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            )
            out["crashed"] = f"reading the vector index {'crashed Chroma' if proc.returncode < 0 else 'failed'} ({how})"
        return out

    def reset_vector_index(self, name: str) -> bool:
        """Drop an embedded collection's HNSW folder, so that Chroma starts an empty index for it (the rows stay;
        every vector must then be upserted again). False when this store cannot (a server)."""
        import shutil
        import sqlite3

        path = self._embedded_path()
        if path is None:
            return False
        db = sqlite3.connect(f"file:{path / 'chroma.sqlite3'}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
                "WHERE c.name = ? AND s.scope = 'VECTOR'",
                (name,),
            ).fetchall()
        finally:
            db.close()
        for (seg,) in rows:
            shutil.rmtree(path / str(seg), ignore_errors=True)
        self._cols.pop(name, None)
        return bool(rows)

    def storage_problems(self) -> list[str]:
        """SQLite's own page check of an embedded store's database (damaged pages), [] when fine or not embedded."""
        path = self._embedded_path()
        return [] if path is None else sqlite_problems(path)

    # --- manifest ---
    def _manifest(self, name: str):
        return self._col(name + MANIFEST_SUFFIX, create=True)

    def read_manifest(self, name) -> dict[str, SourceRecord]:
        try:
            col = self._col(name + MANIFEST_SUFFIX)
        except NotFoundError:
            return {}  # created by the first write_manifest
        out: dict[str, SourceRecord] = {}
        pos = 0
        while True:
            res = col.get(include=["metadatas"], limit=MAX_BATCH, offset=pos)
            for sid, md in zip(res["ids"], res["metadatas"], strict=False):
                if sid == GENERATION_RECORD:
                    continue
                md = dict(md or {})
                out[sid] = SourceRecord(
                    source_id=sid,
                    content_hash=str(md.pop("content_hash", "")),
                    chunk_ids=json.loads(str(md.pop("chunk_ids", "[]"))),
                    extra=md,
                )
            pos += len(res["ids"])
            if len(res["ids"]) < MAX_BATCH:
                break
        return out

    def write_manifest(self, name, records) -> None:
        if not records:
            return
        col = self._manifest(name)
        recs = list(records)
        for i in range(0, len(recs), MAX_BATCH - 1):
            part = recs[i : i + MAX_BATCH - 1]
            # each call carries a new ledger generation: one Chroma call, one transaction, so a kill can never
            # leave records written and the generation not (or the other way round)
            col.upsert(
                ids=[r.source_id for r in part] + [GENERATION_RECORD],
                embeddings=np.ones((len(part) + 1, 1), dtype=np.float32),
                metadatas=[
                    {
                        **{k: v for k, v in r.extra.items() if v is not None},
                        "content_hash": r.content_hash,
                        "chunk_ids": json.dumps(r.chunk_ids),
                    }
                    for r in part
                ]
                + [_generation_row()],
            )
            write_steps.step("write ledger")

    def delete_manifest(self, name, source_ids) -> None:
        ids = list(source_ids)
        if ids:
            col = self._manifest(name)
            # the generation moves first: killed between the two, the records are still there (the re-run removes
            # them again) and the lexical index already knows the store changed
            col.upsert(
                ids=[GENERATION_RECORD], embeddings=np.ones((1, 1), dtype=np.float32), metadatas=[_generation_row()]
            )
            write_steps.step("ledger generation")
            for i in range(0, len(ids), MAX_BATCH):
                col.delete(ids=ids[i : i + MAX_BATCH])
                write_steps.step("delete ledger records")

    def ledger_generation(self, name: str) -> str | None:
        try:
            col = self._col(name + MANIFEST_SUFFIX)
        except NotFoundError:
            return None
        res = col.get(ids=[GENERATION_RECORD], include=["metadatas"])
        if not res["ids"]:
            return None
        return str((res["metadatas"][0] or {}).get("generation", ""))


def content_stamp(path: Path) -> tuple | None:
    """A value that changes when anything in the embedded store at ``path`` is written (records, collections, their
    metadata) and not otherwise; None when there is no store. Not the file's mtime: Chroma records every client's
    start in the same file (its ``acquire_write`` table), so the mtime moves whenever any process opens the store,
    even to read. About a millisecond (a read-only SQLite connection)."""
    import hashlib
    import sqlite3

    db_file = Path(path) / "chroma.sqlite3"
    if not db_file.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
        try:
            # every record write goes through the queue with a new sequence number; the segments' consumed
            # positions move with compaction; collections and their metadata (our generations) are rows of their own
            log = db.execute(
                "SELECT (SELECT MAX(seq_id) FROM embeddings_queue), (SELECT COUNT(*) FROM embeddings_queue),"
                " (SELECT group_concat(segment_id || ':' || seq_id) FROM max_seq_id)"
            ).fetchone()
            rows = db.execute(
                "SELECT c.id, c.name, m.key, m.str_value, m.int_value, m.float_value, m.bool_value FROM collections c"
                " LEFT JOIN collection_metadata m ON m.collection_id = c.id ORDER BY 1, 3"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:  # another Chroma layout, or a file being replaced: the file's own stamp then
        st = db_file.stat()
        return ("file", st.st_mtime_ns, st.st_size)
    return (*log, hashlib.blake2b(repr(rows).encode(), digest_size=12).hexdigest())


def sqlite_problems(path: Path) -> list[str]:
    """``PRAGMA quick_check`` of the embedded store's chroma.sqlite3 (read-only): [] when fine or absent."""
    import sqlite3

    db_file = Path(path) / "chroma.sqlite3"
    if not db_file.is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        try:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        return [f"chroma.sqlite3: {e}"]
    return [] if rows == ["ok"] else [f"chroma.sqlite3: {r}" for r in rows[:5]]


def _vector_probe_child() -> None:
    """Entry point of ChromaStore.vector_probe's child process: arguments as JSON on stdin, one JSON line per step
    on stdout (what was found before a crash still reaches the parent)."""
    import sys

    from llmops_cli.core.verify import probe_vectors

    args = json.load(sys.stdin)
    store = ChromaStore.embedded(Path(args["path"]), read_only=True)
    probe_vectors(
        store, args["name"], args["ids"], int(args["dimension"]), emit=lambda part: print(json.dumps(part), flush=True)
    )


class EmptyStoreClient:
    """Stands in for the client of an embedded store that does not exist yet: no collections, and no writes
    (the store's first write replaces it with the full client)."""

    def __init__(self, path: Path):
        self._path = path

    def list_collections(self) -> list[str]:
        return []

    def get_collection(self, name: str, embedding_function: Any = None) -> Any:
        raise LookupError(f"collection {name} does not exist")

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise StoreError(
            f"there is no Chroma store at {self._path} and this command only reads",
            hint="ingest documents first (llmops ingest PATH), or point store.path / LLMOPS_STORE_PATH at the store",
        )


SERVER_HINT = "is the Chroma server running? check store.url (LLMOPS_STORE_URL), or store.host / store.port"
# chromadb's HTTP client waits forever (httpx timeout=None): a server, or anything else on that port, that accepts the
# connection and never answers hung the command. Its first request is made inside chromadb.HttpClient() itself.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 300.0  # one call: an upsert of MAX_BATCH chunks with their documents takes seconds, not minutes


def _answers_in_time(url: str) -> None:
    """UnreachableError (exit 7) when nothing answers the heartbeat within CONNECT_TIMEOUT_S; any other failure is
    left to chromadb's client, whose error the caller reports."""
    import httpx

    try:
        # certificates checked as usual: a TLS failure is left to chromadb's client (its settings, its error)
        r = httpx.get(f"{url}/api/v2/heartbeat", timeout=CONNECT_TIMEOUT_S)
    except httpx.TimeoutException:
        raise UnreachableError(
            f"Chroma server at {url} did not answer within {CONNECT_TIMEOUT_S:.0f} s", hint=SERVER_HINT
        ) from None
    except Exception:  # noqa: BLE001 - refused, TLS, not HTTP...: chromadb's client says it next
        return
    # another HTTP server on that port (llmops serve and Chroma both default to 8000, Airflow's 8080...): chromadb's
    # client said "not reachable (ValueError)" of a server that answered
    if r.status_code == 404 or (r.status_code == 200 and "heartbeat" not in r.text):
        raise UnreachableError(
            f"{url} answers, but not as a Chroma server (GET /api/v2/heartbeat: HTTP {r.status_code})",
            hint="check the port in store.url (LLMOPS_STORE_URL): a Chroma 1.x server answers /api/v2/heartbeat",
        )


def _bound_requests(client: Any) -> None:
    """Give chromadb's HTTP session a timeout, so a server that stops answering mid-command ends it (exit 7)."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)


class _ServerCalls:
    """A Chroma server's client (or one of its collections) whose calls turn a lost connection into
    UnreachableError (exit 7) naming the server, as the first connection does, instead of an HTTP library's
    traceback halfway through a command."""

    def __init__(self, target: Any, url: str):
        self._target = target
        self._url = url

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = value(*args, **kwargs)
            except Exception as e:
                if _connection_lost(e):
                    raise UnreachableError(
                        f"Chroma server at {self._url} is not reachable ({type(e).__name__})", hint=SERVER_HINT
                    ) from None
                raise
            # collections come back wrapped too: their calls are where a server goes away mid-command
            return _ServerCalls(result, self._url) if hasattr(result, "upsert") else result

        return call


def _connection_lost(e: Exception) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - chromadb's HTTP client depends on it
        return isinstance(e, ConnectionError)
    return isinstance(e, (httpx.TransportError, ConnectionError))


def _generation_row() -> dict[str, str]:
    return {"generation": uuid.uuid4().hex, "content_hash": "", "chunk_ids": "[]"}


def _where(where: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"a": 1, "b": "x"} -> Chroma's {"$and": [{"a": 1}, {"b": "x"}]} (a single key passes as is)."""
    if not where:
        return None
    if len(where) == 1 or any(k.startswith("$") for k in where):
        return dict(where)
    return {"$and": [{k: v} for k, v in where.items()]}


def _hits(res: dict[str, Any], with_docs: bool) -> list[Hit]:
    docs = res.get("documents") if with_docs else None
    return [
        Hit(id=cid, text=(docs[i] or "") if docs else "", score=0.0, metadata=dict(res["metadatas"][i] or {}))
        for i, cid in enumerate(res["ids"])
    ]
