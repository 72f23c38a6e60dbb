"""Verify a collection end to end, and repair exactly what is inconsistent.

Four records of one collection can drift apart without any command noticing (a killed process, two writers, a
deleted or damaged file): the ledger (per-source manifest: content hash + chunk ids), the store's chunks (ids,
texts, metadata), the vector index (a chunk the index lost is never found by vector search, though ``count`` and
``get`` still show it) and the lexical (BM25) index. ``verify`` compares them:

- ledger vs chunks: ids a record lists that the store lacks (missing), chunks no record owns (orphans), records of
  an interrupted write (incomplete);
- each chunk's text vs its id: ids are sha256(document, embedded text, ordinal), so a text that no longer hashes to
  its id was changed behind the ledger's back;
- vector index: every chunk's embedding readable and the chunk reachable by vector search;
- lexical index: readable, built at the collection's generation, over exactly the store's ids;
- with the source paths: each file's hash vs its record (what ingest would call changed, or a damaged record).

``repair`` then does only what the findings need: drops orphans, re-embeds the stored text of chunks the vector
index lost (or re-adds a readable embedding without embedding), re-ingests only the sources whose chunks are
missing or altered or whose hash disagrees (reusing every intact chunk: only the missing ones are embedded),
rebuilds the lexical index when it is stale or damaged or the store changed, and verifies again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from llmops_cli.core.collection_meta import DIMENSION_KEY, GENERATION_KEY
from llmops_cli.core.documents import Hit, indexed_text
from llmops_cli.core.ports import INCOMPLETE, SourceRecord, VectorStore
from llmops_cli.core.source_ids import id_source
from llmops_cli.errors import ExitCode, StoreError

REPAIR_MARK = (
    "repair:"  # prefix of a record's hash that makes the next ingest redo the source, reusing its listed chunks
)
EMBED_BATCH = 256


def chunk_id(doc_source: str, text: str, ordinal: int) -> str:
    """core.ingest.chunk_id (the same formula; kept importable without the loaders)."""
    return hashlib.sha256(f"{doc_source}\x00{ordinal}\x00{text}".encode()).hexdigest()[:32]


@dataclass
class LexicalState:
    state: str = "ok"  # ok | missing | stale | damaged | mismatch | unchecked
    detail: str = ""
    generation: int | str | None = None  # what the index was built at
    store_generation: int | str | None = None  # what the collection is at now
    missing_ids: int = 0  # store chunks the index lacks
    extra_ids: int = 0  # indexed ids the store lacks


@dataclass
class VerifyReport:
    collection: str
    sources: int = 0
    chunks: int = 0
    ledger_chunks: int = 0
    incomplete_sources: list[str] = field(default_factory=list)
    missing_chunks: dict[str, list[str]] = field(default_factory=dict)  # source -> ledger ids the store lacks
    altered_chunks: dict[str, list[str]] = field(
        default_factory=dict
    )  # source -> ids whose text no longer hashes to the id
    orphan_chunks: list[str] = field(default_factory=list)  # store ids no record owns
    unreadable_vectors: list[str] = field(default_factory=list)  # embedding cannot be read back
    unreachable_vectors: list[str] = field(default_factory=list)  # not found by vector search
    vector_checked: bool = True
    vector_index_error: str | None = None  # reading the vector index failed or crashed: it must be rebuilt
    storage: list[str] = field(default_factory=list)  # the store's own file checks (SQLite's damaged pages)
    lexical: LexicalState = field(default_factory=LexicalState)
    changed_files: list[str] = field(default_factory=list)  # sources whose file hash differs from the record
    new_files: list[str] = field(default_factory=list)  # files under the given paths with no record (informational)
    files_checked: bool = False
    errors: list[str] = field(default_factory=list)  # checks that could not run at all (damaged store files...)

    @property
    def clean(self) -> bool:
        return not (
            self.incomplete_sources
            or self.missing_chunks
            or self.altered_chunks
            or self.orphan_chunks
            or self.unreadable_vectors
            or self.unreachable_vectors
            or self.changed_files
            or self.errors
            or self.vector_index_error
            or self.storage
            or self.lexical.state not in ("ok", "unchecked")
        )

    @property
    def exit_code(self) -> ExitCode:
        """DAMAGED when the collection's records disagree (``clean`` is false), else OK."""
        return ExitCode.OK if self.clean else ExitCode.DAMAGED

    def sources_to_reingest(self) -> list[str]:
        """Sources only their files can repair.

        Those with chunks missing or altered, an interrupted write, or a hash that disagrees.
        """
        return sorted(
            set(self.missing_chunks) | set(self.altered_chunks) | set(self.incomplete_sources) | set(self.changed_files)
        )

    def problems(self) -> list[str]:
        """One line per kind of inconsistency (the CLI's report)."""
        out: list[str] = []

        def n_in(d: dict[str, list[str]]) -> int:
            return sum(len(v) for v in d.values())

        out += [f"check failed: {e}" for e in self.errors]
        out += [f"store file damaged: {e}" for e in self.storage]
        if self.vector_index_error:
            out.append(f"vector index damaged: {self.vector_index_error}")
        if self.incomplete_sources:
            out.append(
                f"{len(self.incomplete_sources)} source(s) with an interrupted write: {_few(self.incomplete_sources)}"
            )
        if self.missing_chunks:
            out.append(
                f"{n_in(self.missing_chunks)} chunk(s) listed in the ledger are missing from the store "
                f"({len(self.missing_chunks)} source(s): {_few(list(self.missing_chunks))})"
            )
        if self.altered_chunks:
            out.append(
                f"{n_in(self.altered_chunks)} chunk(s) whose text no longer matches their id "
                f"({len(self.altered_chunks)} source(s): {_few(list(self.altered_chunks))})"
            )
        if self.orphan_chunks:
            out.append(f"{len(self.orphan_chunks)} orphan chunk(s) no ledger entry owns: {_few(self.orphan_chunks)}")
        if self.unreadable_vectors and not self.vector_index_error:
            out.append(f"{len(self.unreadable_vectors)} chunk(s) whose embedding cannot be read (or is corrupt)")
        if self.unreachable_vectors:
            out.append(f"{len(self.unreachable_vectors)} of {self.chunks} chunk(s) unreachable by vector search")
        if self.changed_files:
            out.append(
                f"{len(self.changed_files)} source(s) whose file hash differs from the ledger "
                f"(changed since ingest, or a damaged record): {_few(self.changed_files)}"
            )
        lx = self.lexical
        if lx.state not in ("ok", "unchecked"):
            out.append(f"lexical index {lx.state}: {lx.detail}")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clean"] = self.clean
        d["problems"] = self.problems()
        d["sources_to_reingest"] = self.sources_to_reingest()
        return d


def _few(items: Sequence[str], n: int = 3) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


# --- verify ---


def verify(
    store: VectorStore, collection: str, *, lexical: Any | None = None, files: dict[str, bool] | None = None
) -> VerifyReport:
    """Compare ledger, chunks, vector index and lexical index of ``collection``.

    ``lexical``: the collection's LexicalIndex (None: not checked). ``files``: for each source found under the paths
    given, whether its file matches its record as ingest judges it (same bytes, same chunking and embedder); None
    when no paths were given."""
    rep = VerifyReport(collection=collection)
    meta = store.collection_metadata(collection) or {}
    storage = getattr(store, "storage_problems", None)
    if storage is not None:
        rep.storage = storage()
    try:
        ledger = store.read_manifest(collection)
    except Exception as e:  # noqa: BLE001 - a damaged store is a finding, not a crash
        rep.errors.append(f"reading the ledger: {_err(e)}")
        ledger = {}
    rep.sources = len(ledger)
    try:
        chunks = {h.id: h for h in store.get(collection, include_documents=True)}
    except Exception as e:  # noqa: BLE001
        rep.errors.append(f"reading the chunks: {_err(e)}")
        chunks = None
    owner: dict[str, str] = {}
    for sid, rec in sorted(ledger.items()):
        for cid in rec.chunk_ids:
            owner.setdefault(cid, sid)
        if rec.content_hash == INCOMPLETE:
            rep.incomplete_sources.append(sid)
    rep.ledger_chunks = sum(len(r.chunk_ids) for r in ledger.values() if r.content_hash != INCOMPLETE)
    if chunks is not None:
        rep.chunks = len(chunks)
        for sid, rec in sorted(ledger.items()):
            if rec.content_hash == INCOMPLETE:
                continue  # its ids are an intent (old + new); ingest redoes the source anyway
            missing = [cid for cid in rec.chunk_ids if cid not in chunks]
            if missing:
                rep.missing_chunks[sid] = missing
        rep.orphan_chunks = sorted(cid for cid in chunks if cid not in owner)
        for cid in _altered(chunks.values()):
            if cid in owner:
                rep.altered_chunks.setdefault(owner[cid], []).append(cid)
        _check_vectors(store, collection, meta, list(chunks), rep)
    if files is not None:
        rep.files_checked = True
        for sid, same in sorted(files.items()):
            rec = ledger.get(sid)
            if rec is None:
                rep.new_files.append(sid)
            elif rec.content_hash != INCOMPLETE and not same:
                rep.changed_files.append(sid)
    if lexical is None:
        rep.lexical = LexicalState(state="unchecked")
    else:
        rep.lexical = _check_lexical(lexical, set(chunks) if chunks is not None else None)
    return rep


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def _altered(hits: Any) -> list[str]:
    """Ids whose stored text (with its heading and document) no longer hashes to the id. A text repeated in one
    document gets ordinals 0, 1, ...: any ordinal below its count in the document matches."""
    hits = list(hits)
    texts = {h.id: indexed_text(str(h.metadata.get("heading") or ""), h.text) for h in hits}
    # id_source: a renamed source's chunks keep ids made from the old name
    counts = Counter((id_source(h.metadata), texts[h.id]) for h in hits)
    out = []
    for h in hits:
        key = (id_source(h.metadata), texts[h.id])
        if not any(chunk_id(key[0], key[1], o) == h.id for o in range(counts[key])):
            out.append(h.id)
    return sorted(out)


def probe_vectors(
    store: VectorStore,
    collection: str,
    ids: list[str],
    dimension: int,
    emit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Which chunks' vectors cannot be read back (or are not what an embedder writes: wrong size, not finite, not
    unit length: a damaged file), and which vector search does not reach. ``emit`` gets each part as soon as it is
    known (a child process reports what it found before the engine crashes on a damaged index)."""
    vecs = store.read_embeddings(collection, ids)  # type: ignore[attr-defined]

    def sane(vec: Any) -> bool:
        if vec is None or len(vec) != dimension or not np.all(np.isfinite(vec)):
            return False
        return abs(float(np.linalg.norm(vec)) - 1.0) < 1e-3  # embedders write L2-normalised rows

    out: dict[str, Any] = {"unreadable": sorted(cid for cid in ids if not sane(vecs.get(cid)))}
    if emit:
        emit(out)
    found = store.vector_search_ids(collection, dimension, len(ids))  # type: ignore[attr-defined]
    out["unreachable"] = sorted(set(ids) - found)
    if emit:
        emit({"unreachable": out["unreachable"]})
    return out


def _check_vectors(
    store: VectorStore, collection: str, meta: dict[str, Any], ids: list[str], rep: VerifyReport
) -> None:
    probe = getattr(store, "vector_probe", None)
    if probe is None and not (hasattr(store, "read_embeddings") and hasattr(store, "vector_search_ids")):
        rep.vector_checked = False
        return
    if not ids:
        return
    dim = meta.get(DIMENSION_KEY)
    if not dim:
        rep.errors.append("the collection records no vector dimension; the vector index was not checked")
        return
    try:
        res = probe(collection, ids, int(dim)) if probe else probe_vectors(store, collection, ids, int(dim))
    except Exception as e:  # noqa: BLE001
        res = {"crashed": f"reading the vector index: {_err(e)}"}
    rep.unreadable_vectors = list(res.get("unreadable") or [])
    rep.unreachable_vectors = list(res.get("unreachable") or [])
    if res.get("crashed"):
        rep.vector_index_error = res["crashed"]
        # nothing it holds can be trusted: every chunk needs its vector again
        rep.unreachable_vectors = sorted(ids)


def _check_lexical(lexical: Any, store_ids: set[str] | None) -> LexicalState:
    st = LexicalState()
    try:
        disk = lexical.on_disk()
    except Exception as e:  # noqa: BLE001 - unreadable files: the index is damaged
        return LexicalState(state="damaged", detail=f"its files cannot be read ({_err(e)})")
    if disk is None:
        st.state, st.detail = "missing", "no index on disk (built by the next ingest or hybrid/lexical query)"
        return st
    # the index's own rule for what generation it must be at (LexicalIndex decides when it rebuilds)
    generation = st.store_generation = disk.get("expected_generation")
    st.generation = disk.get("generation")
    if not disk.get("current_format", True):
        st.state, st.detail = "stale", "written in an older format"
        return st
    if st.generation != generation:
        st.state, st.detail = "stale", f"built at generation {st.generation}, the collection is at {generation}"
        return st
    if store_ids is not None:
        indexed = set(disk.get("ids") or [])
        st.missing_ids, st.extra_ids = len(store_ids - indexed), len(indexed - store_ids)
        if st.missing_ids or st.extra_ids:
            st.state = "mismatch"
            st.detail = f"{st.missing_ids} stored chunk(s) not indexed, {st.extra_ids} indexed id(s) not in the store"
    return st


# --- repair ---


@dataclass
class RepairReport:
    orphans_deleted: int = 0
    vector_index_rebuilt: bool = False  # the damaged index was dropped and every vector upserted again
    vectors_reembedded: int = 0  # chunks whose stored text was embedded again
    vectors_readded: int = 0  # chunks re-added to the vector index with their readable embedding (no embedding)
    sources_reingested: list[str] = field(default_factory=list)
    sources_need_files: list[str] = field(default_factory=list)  # only their files can repair them: no paths given
    lexical_rebuilt: bool = False
    embedded_texts: int = 0  # every text the embedder was called on (vector repair + re-ingest)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repair(
    store: VectorStore,
    collection: str,
    rep: VerifyReport,
    *,
    embed: Callable[[list[str]], np.ndarray],
    lexical: Any | None = None,
    reingest: Callable[[list[str]], int] | None = None,
    available: set[str] | None = None,
) -> RepairReport:
    """Fix what ``rep`` found, and nothing else.

    ``embed``: texts -> vectors with the collection's embedder. ``reingest(source_ids)``: re-run ingest restricted to
    those sources, which are among ``available`` (the source ids found under the paths given; None: no paths);
    returns how many chunks it embedded."""
    out = RepairReport()
    changed = False
    if rep.orphan_chunks:
        store.delete(collection, rep.orphan_chunks)
        out.orphans_deleted = len(rep.orphan_chunks)
        changed = True

    if rep.vector_index_error:
        reset = getattr(store, "reset_vector_index", None)
        if reset is None or not reset(collection):
            raise StoreError(
                f"the vector index of collection {collection!r} is damaged and this store cannot rebuild it",
                hint=f"delete the collection (llmops collections delete {collection}) and ingest it again",
            )
        out.vector_index_rebuilt = True
    redo = set(rep.sources_to_reingest())
    altered = {cid for ids in rep.altered_chunks.values() for cid in ids}
    lost = (set(rep.unreadable_vectors) | set(rep.unreachable_vectors)) - altered - set(rep.orphan_chunks)
    if lost:
        # after a rebuild nothing is read back from the old index (reading it is what crashed)
        readable = set() if rep.vector_index_error else set(rep.unreachable_vectors) - set(rep.unreadable_vectors)
        hits = store.get(collection, ids=sorted(lost), include_documents=True)
        known = getattr(store, "read_embeddings", None)
        vecs = known(collection, sorted(readable & lost)) if known and readable & lost else {}
        reuse = [h for h in hits if vecs.get(h.id) is not None]
        fresh = [h for h in hits if vecs.get(h.id) is None]
        if reuse:
            _upsert(store, collection, reuse, np.asarray([vecs[h.id] for h in reuse], dtype=np.float32))
            out.vectors_readded = len(reuse)
        for i in range(0, len(fresh), EMBED_BATCH):
            part = fresh[i : i + EMBED_BATCH]
            texts = [indexed_text(str(h.metadata.get("heading") or ""), h.text) for h in part]
            _upsert(store, collection, part, np.asarray(embed(texts), dtype=np.float32))
            out.embedded_texts += len(texts)
        out.vectors_reembedded = len(fresh)
        # same ids, texts and metadata: neither the generation nor the lexical index has a reason to move

    if altered:
        # wrong text under a right id: drop it, so that the source's re-ingest re-adds it (or it is gone for good)
        store.delete(collection, sorted(altered))
        changed = True
    can = sorted(redo & available) if (reingest is not None and available is not None) else []
    out.sources_need_files = sorted(redo - set(can))
    if can:
        _mark_for_reingest(store, collection, rep, can)
        out.embedded_texts += reingest(can)
        out.sources_reingested = can
        changed = True

    if changed:
        # other copies of the lexical index (another data dir) rebuild when the generation moves
        md = store.collection_metadata(collection) or {}
        store.set_collection_metadata(collection, {GENERATION_KEY: int(md.get(GENERATION_KEY, 0)) + 1})
    if lexical is not None and (changed or rep.lexical.state not in ("ok", "unchecked")):
        # update() applies only the difference since the generation it was built at (and rebuilds a damaged or
        # old-format index by itself); ids that differ at the same generation leave no difference to apply
        update = getattr(lexical, "update", None)
        (lexical.build if update is None or rep.lexical.state == "mismatch" else update)()
        out.lexical_rebuilt = True
    return out


def _upsert(store: VectorStore, collection: str, hits: list[Hit], vecs: np.ndarray) -> None:
    # an upsert of an id the vector index lost puts it back (Chroma 1.5.9: the record stays, the vector returns)
    store.upsert(collection, [h.id for h in hits], vecs, [h.text for h in hits], [h.metadata for h in hits])


def _mark_for_reingest(store: VectorStore, collection: str, rep: VerifyReport, sources: list[str]) -> None:
    """Rewrite each record so that the next ingest redoes the source but reuses (does not embed) the chunks that are
    intact: the record lists only those, and its hash no longer matches any file. An interrupted write's record is
    left as it is (ingest already redoes it, trusting none of its ids)."""
    ledger = store.read_manifest(collection)
    # chunks the vector repair re-added are intact again; missing and altered ones (deleted above) are not
    bad = {cid for ids in rep.missing_chunks.values() for cid in ids} | {
        cid for ids in rep.altered_chunks.values() for cid in ids
    }
    records = []
    for sid in sources:
        rec = ledger.get(sid)
        if rec is None or rec.content_hash == INCOMPLETE:
            continue
        records.append(
            SourceRecord(
                source_id=sid,
                content_hash=REPAIR_MARK + rec.content_hash,
                chunk_ids=[c for c in rec.chunk_ids if c not in bad],
                extra=rec.extra,
            )
        )
    store.write_manifest(collection, records)
