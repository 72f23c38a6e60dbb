"""The loaders' shared vocabulary: what discovery finds, the table options, the skip signal, and the
small helpers every format family uses to build a Document with flat, Chroma-safe metadata."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmops_cli.core.documents import Document, Metadata

TITLE_MAX_CHARS = 200


@dataclass(frozen=True)
class SourceFile:
    """A file found by ``discover()``."""

    path: Path  # absolute (symbolic links are not resolved, so ids follow the path the user sees)
    source_id: str  # posix path relative to the source root, absolute outside it (loaders.discovery)
    root: Path  # the root argument it was found under (for a single file argument: the file itself)
    size: int
    # the bytes load_source read, hashed and hands to the loader: a loader parses exactly what was hashed, never a
    # second read of a file that may have changed in between
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass
class TableOptions:
    """How rows of a CSV/parquet table become documents."""

    text_column: str | None = None  # default: a column named text, content or body
    id_column: str | None = None  # default: the 1-based row number
    metadata_columns: list[str] | None = None  # default: every other column with scalar values


class SkipSource(Exception):
    """This source cannot be loaded; ``reason`` says why in a few words (shown in the ingest summary)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Every format family exposes loaders with this shape; tables use the options, the others ignore them.
Loader = Callable[[SourceFile, TableOptions], list[Document]]


def to_scalar(value: Any) -> str | int | float | bool | None:
    """Coerce a value to what Chroma metadata accepts, or None when it has no scalar form (lists, NaN...)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if type(value).__name__ in ("NaTType", "NAType"):  # pandas' missing values (NaT is a datetime subclass)
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return to_scalar(float(value))
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / pandas scalars
        return to_scalar(value.item())
    return None


def short_error(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception message, bounded, for a skip reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strip_nul(text: str) -> str:
    """NUL bytes carry no text and break C-string consumers downstream (SQLite, terminals): dropped at load, in
    every format (a NUL in a text file's first 8 KB marks it binary; later ones used to be stored as is)."""
    return text.replace("\x00", "") if "\x00" in text else text


def clean_title(title: Any) -> str | None:
    if title is None:
        return None
    text = " ".join(str(title).split())
    if not text:
        return None
    return text if len(text) <= TITLE_MAX_CHARS else text[: TITLE_MAX_CHARS - 3] + "..."


def make_document(
    sf: SourceFile,
    text: str,
    fmt: str,
    *,
    source_id: str | None = None,
    title: Any = None,
    extra: dict[str, Any] | None = None,
) -> Document:
    """A Document with the metadata every loader guarantees: source, path, format, and title when known.

    ``extra`` values are coerced to scalars (None dropped); the guaranteed keys win over same-named extras.
    """
    sid = source_id or sf.source_id
    metadata: Metadata = {}
    for key, value in (extra or {}).items():
        scalar = to_scalar(value)
        if isinstance(scalar, str):
            scalar = strip_nul(scalar)
        if scalar is not None:
            metadata[str(key)] = scalar
    text = strip_nul(text)
    title = strip_nul(str(title)) if title is not None else None
    clean = clean_title(title)
    if clean:
        metadata["title"] = clean
    metadata.update({"source": sid, "path": str(sf.path), "format": fmt})
    return Document(source_id=sid, text=text, metadata=metadata, format=fmt)
