"""Ingest: discover sources, plan what changed, load -> chunk -> embed -> write, and keep the store exact.

Idempotent and crash-safe:
- chunk ids are deterministic: sha256(document id, embedded text, ordinal of that text in the document);
- each source file has a manifest record (content hash + chunk ids), written only AFTER its chunks are in
  the store and its stale chunks deleted. A run killed at any point leaves those sources without a new
  record, so a re-run redoes exactly them (upserts replace, deletes are idempotent): no duplicates,
  nothing missing;
- unchanged sources (same bytes, same chunking, same embedder) are neither loaded nor embedded; in a
  changed source, chunks whose text did not change keep their id and vector (only metadata is updated).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from llmops_cli.core import write_steps
from llmops_cli.core.chunking.select import ChunkerSet, embed_text
from llmops_cli.core.collection_meta import (
    CHUNKING_KEY,
    DIMENSION_KEY,
    EMBEDDER_CONFIG_KEY,
    EMBEDDER_KEY,
    GENERATION_KEY,
    INGESTED_AT_KEY,
    PRIVACY_KEY,
    check_embedder,
    check_unrecorded_dimension,
    chunking_record,
)
from llmops_cli.core.documents import Chunk, indexed_text
from llmops_cli.core.loaders import SkipSource, SourceFile, TableOptions, content_hash, discover, load_source_hashed
from llmops_cli.core.loaders.discovery import resolve_source_root, source_id_for
from llmops_cli.core.ports import INCOMPLETE, Embedder, SourceRecord, VectorStore
from llmops_cli.core.privacy import INJECTION_KEY, PrivacyTally, apply_policy, describe, injection_spans
from llmops_cli.core.source_ids import SOURCE_IDS_KEY, SOURCE_IDS_RULE, migrate_source_ids
from llmops_cli.errors import ExitCode, InputError

LOADER_VERSION = "2"  # bump when loaders change what text they produce: every source is then re-read
EMBED_BATCH = 256  # chunks per embed call (the embedder batches further; larger calls sort better by length)

Cleanup = Literal["incremental", "full"]


@dataclass
class IngestOptions:
    collection: str
    strategy: str = "auto"
    chunk_size: int = 200
    chunk_overlap: int = 30
    globs: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    cleanup: Cleanup = "incremental"
    dry_run: bool = False
    strict: bool = False
    max_bytes: int = 20 * 1024 * 1024
    table: TableOptions | None = None
    only: set[str] | None = None  # restrict to these source ids (Airflow shards)
    source_root: str | None = None  # source ids are paths relative to it (default: discovery.resolve_source_root())
    embedder_config: str | None = None  # recorded with a new collection (collection_meta.EMBEDDER_CONFIG_KEY)
    privacy: str = "off"  # off | redact | skip: secrets and personal data before anything is stored (core.privacy)


@dataclass
class IngestReport:
    collection: str
    dry_run: bool = False
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)  # old source ids brought to the current rule (core.source_ids)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"source", "reason"}
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    privacy: PrivacyTally = field(default_factory=PrivacyTally)
    # promoted answers taken out because a source they were built on changed or went ({"id", "reason"})
    stale_answers: list[dict[str, str]] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> ExitCode:
        """PARTIAL when any input was skipped (the run finished; the summary lists what it left out), else OK."""
        return ExitCode.PARTIAL if self.skipped else ExitCode.OK

    @property
    def changed_anything(self) -> bool:
        return bool(
            self.new or self.changed or self.removed or self.renamed or self.chunks_added or self.chunks_removed
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = {
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "skipped": len(self.skipped),
            "renamed": len(self.renamed),
        }
        d["chunks_per_second"] = round(self.chunks_per_second, 2)
        d["seconds"] = round(self.seconds, 3)
        d["embed_seconds"] = round(self.embed_seconds, 3)
        d["privacy"] = self.privacy.to_dict()
        return d


# (phase, done, total): "plan" (0, 0) while files are listed and compared with the ledger; "parse" (sources read,
# sources to read); "embed" and "write" (chunks embedded / written, new chunks found so far: the total grows until
# the last source is parsed); the entry point adds "load model" and "index" (0, 0: no count). Called from the
# writer thread too.
ProgressFn = Callable[[str, int, int], None]
PROGRESS_SLICE = 64  # chunks per embed call while a progress line is shown (EMBED_BATCH otherwise)


def signature(opts: IngestOptions, embedder: Embedder) -> str:
    """What, besides a file's bytes, decides its chunks and vectors."""
    parts = {
        "chunking": [opts.strategy, opts.chunk_size, opts.chunk_overlap],
        "embedder": embedder.identity,
        "loader": LOADER_VERSION,
        "table": asdict(opts.table) if opts.table else None,
    }
    if opts.privacy != "off":  # only then: the chunks of a collection ingested before the policy existed stay valid
        parts["privacy"] = opts.privacy
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def chunk_id(doc_source: str, text: str, ordinal: int) -> str:
    h = hashlib.sha256(f"{doc_source}\x00{ordinal}\x00{text}".encode()).hexdigest()
    return h[:32]


@dataclass
class Plan:
    to_process: list[tuple[SourceFile, str, bool]]  # (file, content hash, is_new)
    unchanged: int
    removed: list[str]
    skipped: list[dict[str, str]]


def plan_changes(
    files: Sequence[SourceFile],
    manifest: dict[str, SourceRecord],
    sig: str,
    opts: IngestOptions,
    full_source_ids: set[str] | None = None,
    skipped_paths: Sequence[str] = (),
) -> Plan:
    """Compare files with the manifest: which are new, changed, unchanged, and (cleanup=full) removed; nothing
    under ``skipped_paths`` (inputs that could not be read) counts as removed."""
    to_process: list[tuple[SourceFile, str, bool]] = []
    skipped: list[dict[str, str]] = []
    unchanged = 0
    for sf in files:
        if sf.size > opts.max_bytes:
            reason = f"over the {opts.max_bytes / 1e6:g} MB size limit ({sf.size / 1e6:.1f} MB)"
            if opts.strict:
                raise InputError(
                    f"{sf.source_id}: {reason}",
                    hint="raise ingest.max_file_mb or leave the file out (--strict stops at the first bad input)",
                )
            skipped.append({"source": sf.source_id, "reason": reason})
            continue
        try:
            h = f"{content_hash(sf)}:{sig}"
        except (SkipSource, OSError) as e:  # a dangling link, a loop, EIO, no permission: skip this file, not the run
            reason = e.reason if isinstance(e, SkipSource) else f"unreadable: {e.strerror or e}"
            if opts.strict:
                raise InputError(
                    f"{sf.source_id}: {reason}",
                    hint="fix the file (its link target, its permissions) or leave it out (--strict stops at the first "
                    "bad input)",
                ) from None
            skipped.append({"source": sf.source_id, "reason": reason})
            continue
        rec = manifest.get(sf.source_id)
        if rec is not None and rec.content_hash == h:
            unchanged += 1
        else:
            to_process.append((sf, h, rec is None))
    removed: list[str] = []
    if opts.cleanup == "full":
        present = full_source_ids if full_source_ids is not None else {sf.source_id for sf in files}
        removed = sorted(
            sid for sid in manifest if sid not in present and not _behind_skipped(manifest[sid], skipped_paths)
        )
    return Plan(to_process, unchanged, removed, skipped)


PATH_KEY = "path"  # a source record's absolute file path: tells cleanup which records a skipped folder hides


def _behind_skipped(rec: SourceRecord, skipped_paths: Sequence[str]) -> bool:
    """Whether ``rec``'s file may lie under an input that was skipped (a missing or unreadable path): cleanup=full
    must not take its absence as the file being gone. A record without its path (written before paths were
    recorded) could be anywhere: kept whenever anything was skipped."""
    if not skipped_paths:
        return False
    path = rec.extra.get(PATH_KEY)
    if not path:
        return True
    return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in skipped_paths)


def ingest(
    paths: Sequence[str],
    *,
    embedder: Embedder,
    store: VectorStore,
    opts: IngestOptions,
    progress: ProgressFn | None = None,
) -> IngestReport:
    t0 = time.perf_counter()
    report = IngestReport(collection=opts.collection, dry_run=opts.dry_run, privacy=PrivacyTally(opts.privacy))
    if progress:
        progress("plan", 0, 0)
    root = str(opts.source_root or resolve_source_root())
    files, missing = discover(paths, opts.globs, opts.exclude, root=root)
    # nothing given exists: a typo, not a partial run (an unreadable folder inside a given one is a skipped input)
    if missing and not any(os.path.lexists(p) for p in paths):
        raise InputError(
            f"{', '.join(str(p) for p, _ in missing)}: {missing[0][1]}", hint="check the path(s) to ingest"
        )
    for path, reason in missing:
        if opts.strict:
            raise InputError(f"{path}: {reason}", hint="check the path")
        # a path found inside a folder (an archive, a FIFO, an unreadable subfolder) is absolute: named by its id,
        # as every other source is; a path given on the command line is shown as given
        given = str(path) in {str(p) for p in paths}
        shown = str(path) if given or not os.path.isabs(path) else source_id_for(str(path), os.path.abspath(root))
        report.skipped.append({"source": shown, "reason": reason})
    all_ids = {sf.source_id for sf in files}
    if opts.only is not None:
        files = [sf for sf in files if sf.source_id in opts.only]
    if not files and not missing and opts.cleanup != "full":
        raise InputError(
            f"no files to ingest under {', '.join(map(str, paths))}"
            + (f" matching {opts.globs}" if opts.globs else ""),
            hint="check the path and --glob (default: every supported file type)",
        )

    chunkers = ChunkerSet(opts.strategy, embedder.tokens, opts.chunk_size, opts.chunk_overlap)
    sig = signature(opts, embedder)
    meta = store.collection_metadata(opts.collection)
    check_embedder(meta, embedder, opts.collection)
    check_unrecorded_dimension(store, meta, embedder, opts.collection)
    manifest = store.read_manifest(opts.collection) if meta is not None else {}
    # a collection whose ids follow an older rule is migrated first (renames, no re-embedding), so that planning
    # compares like with like: otherwise every file would look new and its old chunks linger
    manifest, report.renamed = migrate_source_ids(store, opts.collection, meta, manifest, root, dry_run=opts.dry_run)
    plan = plan_changes(
        files,
        manifest,
        sig,
        opts,
        full_source_ids=all_ids if opts.only is None else None,
        skipped_paths=[os.path.abspath(p) for p, _ in missing],
    )
    report.skipped.extend(plan.skipped)
    report.unchanged = plan.unchanged

    created = {
        EMBEDDER_KEY: embedder.identity,
        DIMENSION_KEY: embedder.dimension,
        GENERATION_KEY: 0,
        SOURCE_IDS_KEY: SOURCE_IDS_RULE,
    }
    if opts.embedder_config:
        created[EMBEDDER_CONFIG_KEY] = opts.embedder_config

    def ensure() -> None:
        store.ensure_collection(opts.collection, metadata=created)

    # A new collection is created by the first write, not before: a --strict run that stops at its first bad
    # input leaves no empty collection behind.
    writer = _Writer(store, opts.collection, embedder, report, dry_run=opts.dry_run, ensure=ensure, progress=progress)
    total = len(plan.to_process)
    if progress:
        progress("parse", 0, total)
    try:
        for n, (sf, h, is_new) in enumerate(plan.to_process, 1):
            try:
                docs, read_hash = load_source_hashed(sf, max_bytes=opts.max_bytes, table=opts.table)
                # the record gets the hash of the bytes parsed, not the planning hash: a file changed in between
                # is then seen as changed by the next run instead of "unchanged" with the other version stored
                h = f"{read_hash}:{sig}"
            except SkipSource as e:
                if opts.strict:
                    raise InputError(
                        f"{sf.source_id}: {e.reason}",
                        hint="fix or leave out the file (without --strict bad inputs are skipped and listed)",
                    ) from None
                report.skipped.append({"source": sf.source_id, "reason": e.reason})
                if progress:
                    progress("parse", n, total)
                continue
            docs, reason = _private_data(docs, opts.privacy, report.privacy, sf.source_id)
            if reason:
                if opts.strict:
                    raise InputError(f"{sf.source_id}: {reason}", hint="leave the file out, or set ingest.privacy")
                report.skipped.append({"source": sf.source_id, "reason": reason})
                if progress:
                    progress("parse", n, total)
                continue
            chunks = _chunks_for(sf, docs, chunkers)
            report.privacy.injection += sum(1 for c in chunks if c.metadata.get(INJECTION_KEY))
            if not chunks:
                reason = "no text after parsing"
                if opts.strict:
                    raise InputError(f"{sf.source_id}: {reason}", hint="leave the file out")
                report.skipped.append({"source": sf.source_id, "reason": reason})
                if progress:
                    progress("parse", n, total)
                continue
            (report.new if is_new else report.changed).append(sf.source_id)
            old = manifest.get(sf.source_id)
            writer.add_source(
                sf.source_id,
                h,
                chunks,
                old.chunk_ids if old else [],
                complete=old is not None and old.content_hash != INCOMPLETE,
                path=os.path.abspath(sf.path),
            )
            if progress:
                progress("parse", n, total)
        writer.flush()
    finally:
        writer.close()
    if not opts.dry_run:
        ensure()  # a run that got to the end leaves its collection, even when every input was skipped

    # cleanup=full: chunks of sources that are gone, then their manifest records
    if plan.removed:
        for sid in plan.removed:
            ids = manifest[sid].chunk_ids
            report.chunks_removed += len(ids)
            if not opts.dry_run:
                store.delete(opts.collection, ids)
        if not opts.dry_run:
            store.delete_manifest(opts.collection, plan.removed)
        report.removed = plan.removed

    if not opts.dry_run and report.changed_anything:
        md = store.collection_metadata(opts.collection) or {}
        store.set_collection_metadata(
            opts.collection,
            {
                GENERATION_KEY: int(md.get(GENERATION_KEY, 0)) + 1,
                # what `collections show` reports: how the chunks were cut, when the collection last changed
                CHUNKING_KEY: chunking_record(opts.strategy, opts.chunk_size, opts.chunk_overlap),
                INGESTED_AT_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
                PRIVACY_KEY: opts.privacy,
            },
        )
    # a dry run into a new collection created nothing to count
    report.chunks_total = store.count(opts.collection) if (meta is not None or not opts.dry_run) else 0
    write_steps.step("ingest done")
    report.seconds = time.perf_counter() - t0
    return report


def remove_sources(
    store: VectorStore, collection: str, keep: set[str], *, skipped_paths: Sequence[str] = ()
) -> list[str]:
    """Delete the chunks and records of every source not in ``keep`` (cleanup=full for sharded runs), except those
    that may lie behind ``skipped_paths`` (inputs that could not be read)."""
    if store.collection_metadata(collection) is None:
        return []
    manifest = store.read_manifest(collection)
    gone = sorted(sid for sid in manifest if sid not in keep and not _behind_skipped(manifest[sid], skipped_paths))
    for sid in gone:
        store.delete(collection, manifest[sid].chunk_ids)
    store.delete_manifest(collection, gone)
    if gone:
        md = store.collection_metadata(collection) or {}
        store.set_collection_metadata(collection, {GENERATION_KEY: int(md.get(GENERATION_KEY, 0)) + 1})
    return gone


_SOURCE_KEYS = frozenset({"source", "path", "format", "source_file"})


def _private_row_id(doc_id: str, file_id: str | None, policy: str) -> tuple[str, dict[str, int]]:
    """A document id ``FILE#ROW`` whose row part (a table's --id-column value, say an e-mail address) holds private
    data, as the policy leaves it: redacted, with a hash of the value kept so that rows stay apart and the id stays
    the same from run to run."""
    if not file_id or not doc_id.startswith(f"{file_id}#"):
        return doc_id, {}
    row = doc_id[len(file_id) + 1 :]
    cleaned, kinds = apply_policy(row, policy)
    if not kinds or cleaned is None:
        return doc_id, kinds
    return f"{file_id}#{cleaned}-{hashlib.sha256(row.encode()).hexdigest()[:8]}", kinds


def _private_data(docs: list, policy: str, tally: PrivacyTally, file_id: str | None = None) -> tuple[list, str | None]:
    """The source's documents as the privacy policy leaves them, or the reason to skip the source (kinds and counts
    found, never the values). ``file_id``: the source file's id, whose documents' ids are ``file_id#ROW``."""
    if policy == "off":
        return docs, None
    out, found = [], Counter()
    for doc in docs:
        text, counts = apply_policy(doc.text, policy)
        found.update(counts)
        # metadata is stored with every chunk (an issue's title, a table's other columns, a PDF's author): the
        # policy applies to it as to the text; the keys that name the source (its id and path) are left as they are
        metadata = dict(doc.metadata)
        for key, value in doc.metadata.items():
            if key in _SOURCE_KEYS or not isinstance(value, str):
                continue
            cleaned, kinds = apply_policy(value, policy)
            found.update(kinds)
            if cleaned is not None:
                metadata[key] = cleaned
        doc_id, kinds = _private_row_id(doc.source_id, file_id, policy)
        found.update(kinds)
        if doc_id != doc.source_id and "source" in metadata:
            metadata["source"] = doc_id
        if text is None or (text is doc.text and metadata == doc.metadata and doc_id == doc.source_id):
            out.append(doc)
        else:
            out.append(replace(doc, source_id=doc_id, text=text, metadata=metadata))
    if found:
        tally.found.update(found)
        tally.sources += 1
        if policy == "skip":
            return docs, f"private data found ({describe(found)}); ingest.privacy is skip"
    return out, None


def _chunks_for(sf: SourceFile, docs, chunkers: ChunkerSet) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in docs:
        seen: dict[str, int] = {}
        pieces = chunkers.split(doc)
        for i, p in enumerate(pieces):
            text = embed_text(p)
            ordinal = seen.get(text, 0)
            seen[text] = ordinal + 1
            md = {k: v for k, v in doc.metadata.items() if isinstance(v, (str, int, float, bool))}
            md.update({"source": doc.source_id, "source_file": sf.source_id, "chunk_index": i, "heading": p.heading})
            if injection_spans(p.text):  # visible with `chunks get`; a caller can filter on it
                md[INJECTION_KEY] = True
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source_id, text, ordinal),
                    text=p.text,
                    source_id=doc.source_id,
                    index=i,
                    metadata=md,
                )
            )
    return chunks


class _Writer:
    """Batches chunks across sources: a batch is embedded (one embedding thread) while the next sources are
    read and chunked and the previous batch is written (one writer thread, writes in batch order); a source's
    manifest record is written after the batch holding its last chunk is in the store."""

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        embedder: Embedder,
        report: IngestReport,
        dry_run: bool,
        ensure: Callable[[], None] | None = None,
        progress: ProgressFn | None = None,
    ):
        self.progress = progress
        self.embedded = 0  # chunks embedded so far (progress)
        self.written = 0  # chunks written so far (progress; the writer thread's)
        self.store, self.collection, self.embedder, self.report, self.dry_run = (
            store,
            collection,
            embedder,
            report,
            dry_run,
        )
        self._ensure = ensure  # creates the collection; called once, before the first write
        self.pending: list[tuple[str, Chunk]] = []  # (source file id, chunk) awaiting embedding
        self.sources: dict[str, dict[str, Any]] = {}  # source id -> {hash, ids, stale, left}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-writer")
        self.inflight: Future | None = None  # the write in flight (set by the embedding thread)
        # chunking the next sources is not left waiting on the embedder: 3.5 s of the Airflow docs' cold ingest
        self.embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self.embedding: Future | None = None  # the batch being embedded

    def add_source(
        self, sid: str, h: str, chunks: list[Chunk], old_ids: list[str], complete: bool, path: str | None = None
    ) -> None:
        """``old_ids``: the source's record. Only a complete record's chunks are known to be in the store
        (reusable); an incomplete one lists ids that may or may not have been written (deleted if stale)."""
        new_ids = [c.id for c in chunks]
        old = set(old_ids)
        trusted = old if complete else set()
        reuse = [c for c in chunks if c.id in trusted]
        fresh = [c for c in chunks if c.id not in trusted]
        # duplicate ids within one source cannot happen (ordinal), but guard anyway
        stale = sorted(old - set(new_ids))
        self.report.chunks_reused += len(reuse)
        self.report.chunks_added += len(fresh)
        self.report.chunks_removed += len(stale)
        self.sources[sid] = {
            "hash": h,
            "ids": new_ids,
            "stale": stale,
            "reuse": reuse,
            "left": len(fresh),
            "intent": sorted(old | set(new_ids)),
            "intent_written": False,
            "extra": {PATH_KEY: path} if path else {},
        }
        if not fresh:
            self._finish_now(sid)
            return
        self.pending.extend((sid, c) for c in fresh)
        if len(self.pending) >= EMBED_BATCH:
            self._embed_and_submit(self.pending[:EMBED_BATCH])
            self.pending = self.pending[EMBED_BATCH:]

    def _finish_now(self, sid: str) -> None:
        self._wait()
        if not self.dry_run:
            self._created()
            self._finalize([sid])

    def _created(self) -> None:
        if self._ensure is not None:
            self._ensure()
            self._ensure = None

    def _embed_and_submit(self, batch: list[tuple[str, Chunk]]) -> None:
        if self.dry_run:
            done = self._count_down(batch)
            for sid in done:
                self.sources.pop(sid, None)
            return
        done = self._count_down(batch)
        self._wait_embedding()  # at most one batch embedding (bounded memory), batches in order
        # in this thread's context: the embedding's span belongs to the ingest's trace, not to one of its own
        self.embedding = self.embed_pool.submit(contextvars.copy_context().run, self._embed_then_write, batch, done)

    def _embed_then_write(self, batch: list[tuple[str, Chunk]], done: list[str]) -> None:
        t = time.perf_counter()
        texts = [embed_text_of(c) for _, c in batch]
        if self.progress is None:
            vecs = self.embedder.embed(texts)
        else:
            # in slices, so that a progress line moves while a large batch is embedded (the embedders batch
            # internally in smaller steps than this: no model call is split differently)
            self.progress("embed", self.embedded, self.report.chunks_added)
            parts = []
            for i in range(0, len(texts), PROGRESS_SLICE):
                parts.append(self.embedder.embed(texts[i : i + PROGRESS_SLICE]))
                self.embedded += len(parts[-1])
                self.progress("embed", self.embedded, self.report.chunks_added)
            vecs = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.report.embed_seconds += time.perf_counter() - t
        self._wait_write()  # at most one write in flight: bounded memory, ordered manifest writes
        self.inflight = self.pool.submit(contextvars.copy_context().run, self._write, batch, vecs, done)

    def _count_down(self, batch: list[tuple[str, Chunk]]) -> list[str]:
        done = []
        for sid, _ in batch:
            s = self.sources[sid]
            s["left"] -= 1
            if s["left"] == 0:
                done.append(sid)
        return done

    def _write(self, batch: list[tuple[str, Chunk]], vecs: np.ndarray, done: list[str]) -> None:
        # Before a source's first chunks go in, record the intent (old + new ids, hash "incomplete"): a run
        # killed now leaves a record that makes the re-run redo the source and delete any orphan, even if
        # the file was reverted to its last complete content meanwhile.
        self._created()
        intents = []
        for sid in dict.fromkeys(s for s, _ in batch):
            st = self.sources.get(sid)
            if st is not None and not st["intent_written"]:
                intents.append(
                    SourceRecord(source_id=sid, content_hash=INCOMPLETE, chunk_ids=st["intent"], extra=st["extra"])
                )
                st["intent_written"] = True
        self.store.write_manifest(self.collection, intents)
        self.store.upsert(
            self.collection, [c.id for _, c in batch], vecs, [c.text for _, c in batch], [c.metadata for _, c in batch]
        )
        self._finalize(done)
        self.written += len(batch)
        if self.progress:
            self.progress("write", self.written, self.report.chunks_added)

    def _finalize(self, sids: list[str]) -> None:
        records = []
        for sid in sids:
            s = self.sources.pop(sid)
            if s["reuse"]:
                self.store.update_metadata(
                    self.collection, [c.id for c in s["reuse"]], [c.metadata for c in s["reuse"]]
                )
            if s["stale"]:
                self.store.delete(self.collection, s["stale"])
            records.append(SourceRecord(source_id=sid, content_hash=s["hash"], chunk_ids=s["ids"], extra=s["extra"]))
        self.store.write_manifest(self.collection, records)

    def _wait(self) -> None:
        self._wait_embedding()  # first: the embedding thread submits the write
        self._wait_write()

    def _wait_embedding(self) -> None:
        if self.embedding is not None:
            self.embedding.result()
            self.embedding = None

    def _wait_write(self) -> None:
        if self.inflight is not None:
            self.inflight.result()
            self.inflight = None

    def flush(self) -> None:
        while self.pending:
            self._embed_and_submit(self.pending[:EMBED_BATCH])
            self.pending = self.pending[EMBED_BATCH:]
        self._wait()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.embed_pool.shutdown(wait=True)
            self.pool.shutdown(wait=True)


def embed_text_of(c: Chunk) -> str:
    return indexed_text(str(c.metadata.get("heading") or ""), c.text)
