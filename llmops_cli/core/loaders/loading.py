"""Loading one discovered source: the checks every format shares (type, size BEFORE reading), then its loader."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions, short_error
from llmops_cli.core.loaders.reading import unreadable_reason
from llmops_cli.core.loaders.registry import loader_for
from llmops_cli.errors import LlmopsError

HASH_BLOCK_BYTES = 1 << 20


def format_size(n_bytes: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"


def load_source(sf: SourceFile, *, max_bytes: int, table: TableOptions | None = None) -> list[Document]:
    """Read and parse one file into Documents. Raises SkipSource (with a short reason) for a source that
    cannot be loaded, and InputError for a table whose named columns do not exist."""
    return load_source_hashed(sf, max_bytes=max_bytes, table=table)[0]


def load_source_hashed(
    sf: SourceFile, *, max_bytes: int, table: TableOptions | None = None
) -> tuple[list[Document], str]:
    """``load_source``, and the sha256 hex of the very bytes parsed: the file is read once, so a file changed
    while it is ingested is recorded with the hash of the text stored, never with the hash of another version."""
    loader = loader_for(sf.path)
    if loader is None:
        raise SkipSource(f"unsupported file type {sf.path.suffix.lower()}")
    try:
        info = os.stat(sf.path)
    except OSError as exc:
        raise SkipSource(unreadable_reason(exc)) from exc
    if stat.S_ISDIR(info.st_mode):
        raise SkipSource("unreadable: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise SkipSource("unreadable: not a regular file")
    if info.st_size > max_bytes:
        raise SkipSource(f"over the {format_size(max_bytes)} size limit ({format_size(info.st_size)})")
    if info.st_size == 0:
        raise SkipSource("empty")
    data = _read_at_most(sf, max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    try:
        documents = loader(dataclasses.replace(sf, data=data), table or TableOptions())
    except (SkipSource, LlmopsError):
        raise
    except RecursionError as exc:
        raise SkipSource("too deeply nested to parse") from exc
    except Exception as exc:
        raise SkipSource(f"could not parse: {type(exc).__name__}: {short_error(exc)}") from exc
    if not documents:
        raise SkipSource("empty")
    return documents, digest


def _read_at_most(sf: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; a file that grew past the limit since it was checked is skipped like any oversized one."""
    try:
        with open(sf.path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SkipSource(unreadable_reason(exc)) from exc
    if len(data) > max_bytes:
        raise SkipSource(f"over the {format_size(max_bytes)} size limit (grew while being read)")
    if not data:
        raise SkipSource("empty")
    return data


def content_hash(sf: SourceFile) -> str:
    """sha256 hex of the file's bytes, streamed: cheap enough to skip unchanged sources before parsing."""
    digest = hashlib.sha256()
    try:
        with open(sf.path, "rb") as handle:
            while block := handle.read(HASH_BLOCK_BYTES):
                digest.update(block)
    except OSError as exc:
        raise SkipSource(unreadable_reason(exc)) from exc
    return digest.hexdigest()
