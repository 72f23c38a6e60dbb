"""One workspace per serve process, shared by concurrent requests.

What is safe to share and what is not (checked in the code each part comes from):

- the answer log, LLM cache and the shared state database: one connection behind a lock (``LockedConnection``), and
  SQLite/PostgreSQL transactions across processes: safe from any thread;
- the embedder (onnxruntime sessions run concurrently), the read-only store (Chroma's Rust reader, pgvector's pool,
  a Chroma server's HTTP client) and the LLM client (litellm's blocking calls): safe to call from several threads;
- the BM25 index of a collection: read from its files on each search, brought up to date under a file lock
  (``fcntl.flock`` on its own open file, which also orders threads of one process);
- ``Workspace`` itself builds each part on first use with unguarded check-then-set: two first requests at once could
  build a part twice. So the first use of a collection (store, embedder, BM25 index, LLM stack) runs under
  ``_first_use``, and afterwards requests only read what was built;
- ratings reconcile promotions, which may write the store (under the store's own write lock): one at a time per
  process (``_rating``), as the CLI does one per invocation.

A workspace opened on an embedded Chroma keeps seeing the store as it was when it opened it (the reader's vector
segment and the collection's metadata, so the BM25 index's generation too): a CLI command's workspace lives one
command, a server's would serve stale chunks after the next ``llmops ingest``. So the service stamps the store's
database file and, when another process (or its own promotion) wrote it, answers from a fresh workspace; the one it
replaces is closed a few replacements later, once requests still on it are done. Server stores (a Chroma server,
PostgreSQL) are read fresh on every query and need none of this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.entry.store import collection_name, embedded_store_stamp
from llmops_cli.errors import LlmopsError, UsageError

if TYPE_CHECKING:
    from llmops_cli.settings import Settings
    from llmops_cli.wiring import Workspace

RECENT_SCAN = 500  # how many of the latest answers the homepage looks through for promoted ones
RETIRED_KEPT = 4  # replaced workspaces left open for the requests still on them


class Service:
    """The API's operations over one workspace; every method is blocking (the app runs them in worker threads)."""

    def __init__(self, settings: Settings, workspace_factory: Callable[[Settings], Workspace]):
        self.settings = settings
        self._factory = lambda s: workspace_factory(s).for_serving()
        self._files: tuple | None = None
        self._content: tuple | None = None
        # resolved once: resolving the path per request (realpath's lstat per component) cost ~0.4 ms of CPU
        db = Path(settings.store_path) / "chroma.sqlite3"
        self._store_files = (db, db.with_name(db.name + "-wal"))
        self._stamp = self._store_stamp()
        self.ws = self._factory(settings)
        self.collection = collection_name(settings, None)
        self._first_use = threading.Lock()
        self._rating = threading.Lock()
        self._warm: set[tuple[int, str, bool]] = set()
        self._retired: list[Workspace] = []
        self.ready_error: LlmopsError | None = None

    def close(self) -> None:
        for ws in [*self._retired, self.ws]:
            ws.close()
        self._retired.clear()

    # --- the workspace, fresh after another process wrote the embedded store ---
    def _store_stamp(self) -> tuple | None:
        """The embedded store's content stamp (entry.store.embedded_store_stamp), read again only when its files
        moved: most requests pay two stat() calls, and a process that merely opened the store (which touches the
        file) does not make every worker open it again."""
        if self.settings.store.backend != "chroma":  # a server store: read fresh by every query
            return None
        files = []
        for f in self._store_files:
            try:
                st = f.stat()
                files.append((st.st_mtime_ns, st.st_size))
            except OSError:
                files.append(None)
        if tuple(files) != self._files:
            self._files, self._content = tuple(files), embedded_store_stamp(self.settings)
        return self._content

    def workspace(self) -> Workspace:
        """The workspace to answer from: the current one, or a fresh one when the embedded store changed."""
        stamp = self._store_stamp()
        if stamp == self._stamp:
            return self.ws
        with self._first_use:
            if stamp != self._stamp:
                fresh = self._factory(self.settings)
                fresh.answer_log()  # opened before any request can race to open it
                self._retired.append(self.ws)
                self.ws, self._stamp = fresh, stamp
                if len(self._retired) > RETIRED_KEPT:
                    self._retired.pop(0).close()
        return self.ws

    # --- readiness ---
    def warm_up(self) -> None:
        """Open what the default collection needs (store, embedder, BM25 index, LLM stack, answer log), so the first
        request is not the slow one; what fails is kept as the readiness error (``/readyz`` answers 503 with it)."""
        try:
            ws = self.workspace()
            with self._first_use:
                ws.answer_log()  # every ask records in it: opened once, before requests race to open it
            self._warmed(ws, self.collection, with_llm=bool(self.settings.llm.model))
            self.ready_error = None
        except LlmopsError as e:
            self.ready_error = e

    def _warmed(self, ws: Workspace, collection: str, *, with_llm: bool) -> None:
        from llmops_cli.entry import ask as ask_entry

        key = (id(ws), collection, with_llm)
        if key in self._warm:
            return
        with self._first_use:
            if key in self._warm:
                return
            ask_entry.retriever(ws, collection)
            snapshot = getattr(ws.store(read_only=True), "warm", None)  # the replica's (Workspace.for_serving)
            if snapshot is not None:
                snapshot(collection)
            if with_llm:
                _load_client(ask_entry.answer_llm(ws))
            self._warm.add(key)
            if with_llm:
                self._warm.add((id(ws), collection, False))

    def _collection(self, collection: str | None) -> str:
        return collection_name(self.settings, collection)

    # --- the operations (the CLI's entry points) ---
    def query(self, text: str, *, collection: str | None, k: int | None, mode: str | None, where: dict | None):
        from llmops_cli.entry import ask as ask_entry

        name = self._collection(collection)
        self._check_search(text, where)
        ws = self.workspace()
        self._warmed(ws, name, with_llm=False)
        return name, ask_entry.query(ws, text, collection=name, k=k, mode=mode, where=where)

    def ask(
        self,
        question: str,
        *,
        collection: str | None,
        k: int | None,
        mode: str | None,
        where: dict | None,
        use_cache: bool,
        on_token: Callable[[str], None] | None = None,
        on_retrieved: Callable[[list[str], list], None] | None = None,
    ):
        from llmops_cli.entry import ask as ask_entry

        ws = self.workspace()
        name = self.prepare_ask(question, collection, where, ws)
        res = ask_entry.ask(
            ws,
            question,
            collection=name,
            k=k,
            mode=mode,
            where=where,
            use_cache=use_cache,
            on_token=on_token,
            on_retrieved=on_retrieved,
        )
        return name, res

    def prepare_ask(
        self, question: str, collection: str | None, where: dict | None, ws: Workspace | None = None
    ) -> str:
        """What can refuse an ask before any answer is written (an empty question, an unknown collection, no LLM
        configured), so a streamed ask still gets an HTTP error status for it; returns the collection's name."""
        name = self._collection(collection)
        self._check_search(question, where)
        self._warmed(ws or self.workspace(), name, with_llm=True)
        return name

    def _check_search(self, text: str, where: dict | None) -> None:
        from llmops_cli.entry import ask as ask_entry

        ask_entry.check_search(text, where)  # before the first-use lock: an empty question costs nothing

    def rate(self, answer_id: str, rating: str, comment: str | None, rater: str | None) -> dict[str, Any]:
        from llmops_cli.entry import feedback as feedback_entry

        if rating not in ("up", "down"):
            raise UsageError(f"rating must be up or down, not {rating!r}")
        with self._rating:
            return feedback_entry.rate(self.workspace(), answer_id, rating, comment, rater=rater)

    def answer(self, answer_id: str) -> dict[str, Any]:
        log = self.workspace().answer_log(read_only=True)
        a = log.get(answer_id)
        d = a.to_dict()
        d.update(log.summary_flags([a.id])[a.id])
        return d

    def recent_good(self, *, limit: int, collection: str | None) -> list[dict[str, Any]]:
        """The latest answers with an active promotion (reviewed good and promoted by the feedback loop), newest
        first: what the homepage shows. A collection that does not exist is not found, as in a search of it."""
        ws = self.workspace()
        if collection is not None:
            from llmops_cli.entry.store import collection_meta

            with self._first_use:  # may open the store for the first time
                collection_meta(ws.store(read_only=True), collection_name(self.settings, collection))
        log = ws.answer_log(read_only=True)
        recent = [a for a in log.recent(limit=RECENT_SCAN, kind="ask", collection=collection) if not a.cached_from]
        flags = log.summary_flags([a.id for a in recent])
        out = []
        for a in recent:
            f = flags[a.id]
            if not f["promoted"]:
                continue
            sources = []
            for c in a.chunks:
                if c.get("source") and c["source"] not in sources:
                    sources.append(c["source"])
            out.append(
                {
                    "id": a.id,
                    "question": a.question,
                    "answer": a.answer,
                    "collection": a.collection,
                    "created_at": a.to_dict()["created_at"],
                    "sources": sources,
                    "votes": f["votes"],
                }
            )
            if len(out) >= limit:
                break
        return out

    def collections(self) -> list[dict[str, Any]]:
        from llmops_cli.entry import store as store_entry

        ws = self.workspace()
        with self._first_use:  # may open the store for the first time
            return store_entry.collections(ws)


def _load_client(llm: Any) -> None:
    """Import litellm now (seconds) when the answers go through it, not in the first request."""
    from llmops_cli.adapters.llm.litellm_llm import LiteLLM, import_litellm

    while hasattr(llm, "inner"):  # the wrappers of the LLM stack (tracing...): the client is innermost
        llm = llm.inner
    if isinstance(llm, LiteLLM):
        import_litellm()
    prepare = getattr(llm, "prepare", None)
    if prepare is not None:  # the lean HTTP client resolves its prices (litellm's table: ~2 s) now, not in an ask
        prepare()
