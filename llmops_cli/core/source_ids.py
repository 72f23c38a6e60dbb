"""Bringing a collection's source ids to the current rule, without re-embedding.

Before, a source id was the path below the folder named on the command line, prefixed with that folder's name
(``docs/a.md``), or a lone file's name (``README.md``): ``ingest projA/README.md`` then ``ingest projB/README.md``
gave both the id ``README.md``, and the second replaced the first. Now an id is the file's path relative to the
source root, or its absolute path outside it (loaders.discovery). A collection records the rule its ids follow
(``SOURCE_IDS_KEY``); one without it is migrated by the next ingest, before planning:

- each record's file is known (its ``path`` extra, else the ``path`` metadata of its chunks), so its id under the
  current rule is known; records whose id differs are renamed: the record moves to the new id with its content hash
  (the file stays "unchanged") and its chunks get the new ``source``/``source_file`` metadata. Chunk ids and vectors
  are kept: nothing is embedded, and the vector index is not touched (re-adding every vector under a new id and
  deleting the old ones left HNSW nodes unreachable: 49 of 1269 on the Airflow docs). A kept chunk id was made from
  the old document id, which the chunk keeps as ``ID_SOURCE_KEY`` so verify can still check it; the file's next
  change gives it ids under the new one;
- two records of one file (the same file ingested as ``docs`` and as ``docs/a.md``) become one: the duplicate's
  chunks are deleted;
- a record whose file cannot be told is left as it is.

Every step is idempotent and ordered (new chunks, new records, old chunks deleted, old records deleted, then the
rule recorded), so a run killed during the migration is finished by the next one.
"""

from __future__ import annotations

import os
from typing import Any

from llmops_cli.core.loaders.discovery import source_id_for
from llmops_cli.core.ports import INCOMPLETE, SourceRecord, VectorStore

SOURCE_IDS_KEY = "llmops_source_ids"  # collection metadata: the rule the collection's source ids follow
SOURCE_IDS_RULE = "root-relative"  # loaders.discovery: relative to the source root, absolute outside it
PATH_EXTRA = "path"  # a record's absolute file path (SourceRecord.extra), when it was recorded
ID_SOURCE_KEY = "id_source"  # chunk metadata: the document id the chunk's id was made from, when not its ``source``


def id_source(metadata: dict[str, Any]) -> str:
    """The document id a chunk's id was made from (core.ingest.chunk_id): ``source``, unless the chunk was renamed."""
    return str(metadata.get(ID_SOURCE_KEY) or metadata.get("source", ""))


def record_paths(store: VectorStore, collection: str, manifest: dict[str, SourceRecord]) -> dict[str, str]:
    """Source id -> the absolute path of its file, for the records whose file can be told."""
    paths = {sid: str(rec.extra[PATH_EXTRA]) for sid, rec in manifest.items() if rec.extra.get(PATH_EXTRA)}
    firsts = {rec.chunk_ids[0]: sid for sid, rec in manifest.items() if sid not in paths and rec.chunk_ids}
    if firsts:
        for hit in store.get(collection, ids=list(firsts), include_documents=False):
            path = hit.metadata.get("path")
            if isinstance(path, str) and os.path.isabs(path) and hit.id in firsts:
                paths[firsts[hit.id]] = path
    return paths


def plan_renames(
    store: VectorStore, collection: str, manifest: dict[str, SourceRecord], root: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(old source id -> its id under the current rule, for every record whose id differs; id -> file path)."""
    renames = {}
    paths = record_paths(store, collection, manifest)
    for sid, path in paths.items():
        new = source_id_for(os.path.abspath(path), os.path.abspath(root))
        if new != sid:
            renames[sid] = new
    return renames, paths


def migrate_source_ids(
    store: VectorStore,
    collection: str,
    meta: dict[str, Any] | None,
    manifest: dict[str, SourceRecord],
    root: str,
    *,
    dry_run: bool,
) -> tuple[dict[str, SourceRecord], list[str]]:
    """(the manifest under the current rule, the old ids renamed or merged). A dry run only computes it."""
    if meta is None or meta.get(SOURCE_IDS_KEY) == SOURCE_IDS_RULE:
        return manifest, []
    renames, paths = plan_renames(store, collection, manifest, root) if manifest else ({}, {})
    if not renames:
        if not dry_run:
            store.set_collection_metadata(collection, {SOURCE_IDS_KEY: SOURCE_IDS_RULE})
        return manifest, []
    moves, merges = _order(renames, manifest)
    result = {sid: rec for sid, rec in manifest.items() if sid not in renames}
    if dry_run:
        result.update({new: _moved_record(manifest[old], new, paths[old]) for old, new in moves})
        return result, sorted(renames)
    # the old records learn their file's path first: once their chunks are deleted it could no longer be told, and a
    # run killed after that must still be able to finish the migration
    unknown = [old for old in renames if not manifest[old].extra.get(PATH_EXTRA)]
    if unknown:
        store.write_manifest(collection, [_moved_record(manifest[old], old, paths[old]) for old in unknown])
    new_records = {new: _move_chunks(store, collection, manifest[old], new, paths[old]) for old, new in moves}
    kept = {cid for rec in (*result.values(), *new_records.values()) for cid in rec.chunk_ids}
    stale = sorted({cid for old in renames for cid in manifest[old].chunk_ids if cid not in kept})
    store.write_manifest(collection, list(new_records.values()))
    if stale:
        store.delete(collection, stale)
    store.delete_manifest(collection, sorted(old for old in renames if old not in new_records))
    store.set_collection_metadata(collection, {SOURCE_IDS_KEY: SOURCE_IDS_RULE})
    result.update(new_records)
    return result, sorted(renames)


def _order(
    renames: dict[str, str], manifest: dict[str, SourceRecord]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(moves, merges): (old id, new id). Several old ids of one file: the first moves, the others merge into it;
    an old id whose target is a record that stays (the file's record under the current rule) merges into it.
    No order is needed between moves (chains, even swapped ids): every new record is written before any old one
    is deleted, old records that are also targets are overwritten rather than deleted, and an old chunk is
    deleted only when no record keeps it."""
    moves: list[tuple[str, str]] = []
    merges: list[tuple[str, str]] = []
    claimed: set[str] = set()
    for old in sorted(renames):
        new = renames[old]
        if (new in manifest and new not in renames) or new in claimed:
            merges.append((old, new))
        else:
            claimed.add(new)
            moves.append((old, new))
    return moves, merges


def _moved_record(rec: SourceRecord, new: str, path: str) -> SourceRecord:
    return SourceRecord(
        source_id=new,
        content_hash=rec.content_hash,
        chunk_ids=list(rec.chunk_ids),
        extra={**rec.extra, PATH_EXTRA: path},
    )


def _move_chunks(store: VectorStore, collection: str, rec: SourceRecord, new: str, path: str) -> SourceRecord:
    """Give the record's chunks the new source id in their metadata (ids and vectors kept); the record for ``new``.
    Chunks the store no longer has make the record incomplete, so the next ingest redoes the file."""
    old = rec.source_id
    hits = {h.id: h for h in store.get(collection, ids=list(rec.chunk_ids), include_documents=False)}
    found = [cid for cid in rec.chunk_ids if cid in hits]
    extra = {**rec.extra, PATH_EXTRA: path}
    if rec.content_hash == INCOMPLETE or not found:
        # an interrupted write: its ids are deleted as stale when the file is ingested again; only the record moves
        return SourceRecord(source_id=new, content_hash=INCOMPLETE, chunk_ids=list(rec.chunk_ids), extra=extra)
    metadatas = []
    for cid in found:
        md = dict(hits[cid].metadata)
        doc = str(md.get("source", old))
        md[ID_SOURCE_KEY] = id_source(md)
        md.update({"source": new + doc[len(old) :] if doc.startswith(old) else doc, "source_file": new})
        metadatas.append(md)
    store.update_metadata(collection, found, metadatas)
    complete = len(found) == len(rec.chunk_ids)
    return SourceRecord(
        source_id=new,
        content_hash=rec.content_hash if complete else INCOMPLETE,
        chunk_ids=list(rec.chunk_ids),
        extra=extra,
    )
