"""Tables (CSV, TSV, parquet) via pandas: one Document per row with text, ``<source_id>#<row id>`` as its id,
and the other scalar columns as metadata. A missing column is a usage error (InputError), not a skip."""

from __future__ import annotations

import io
from typing import Any

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions, make_document, short_error, to_scalar
from llmops_cli.core.loaders.reading import read_source_bytes, read_text, unreadable_reason
from llmops_cli.errors import InputError

DEFAULT_TEXT_COLUMNS = ("text", "content", "body")


def _read_delimited(sf: SourceFile, sep: str):
    import pandas as pd

    text = read_text(sf)  # binary / empty / invalid UTF-8 are skips, as for any text file
    header = text.split("\n", 1)[0]
    if sep == "," and "," not in header and header.count(";") >= 1:
        sep = ";"  # a .csv saved where the decimal mark is a comma (Excel in most of Europe) separates with ";"
    try:
        return pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.EmptyDataError as exc:
        raise SkipSource("empty") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise SkipSource(f"malformed CSV: {short_error(exc)}") from exc


def _read_parquet(sf: SourceFile):
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(read_source_bytes(sf)))
    except OSError as exc:
        if exc.errno is not None:
            raise SkipSource(unreadable_reason(exc)) from exc
        raise SkipSource(f"corrupt parquet: {short_error(exc)}") from exc  # pyarrow's IOError for bad files
    except Exception as exc:
        raise SkipSource(f"corrupt parquet: {short_error(exc)}") from exc


def _columns_error(sf: SourceFile, problem: str, columns: list[str], flag: str) -> InputError:
    listed = ", ".join(columns) if columns else "(none)"
    return InputError(f"{sf.path}: {problem}; its columns are: {listed}", hint=f"pass {flag} with one of those columns")


def resolve_columns(sf: SourceFile, columns: list[str], options: TableOptions) -> tuple[str, str | None, list[str]]:
    """(text column, id column or None, metadata columns), checked against the table's columns."""
    if options.text_column is not None:
        text_column = options.text_column
        if text_column not in columns:
            raise _columns_error(sf, f"no text column {text_column!r}", columns, "--text-column")
    else:
        by_lower = {column.lower(): column for column in columns}
        found = next((by_lower[name] for name in DEFAULT_TEXT_COLUMNS if name in by_lower), None)
        if found is None:
            problem = "no column named text, content or body to take the text from"
            raise _columns_error(sf, problem, columns, "--text-column")
        text_column = found
    if options.id_column is not None and options.id_column not in columns:
        raise _columns_error(sf, f"no id column {options.id_column!r}", columns, "--id-column")
    if options.metadata_columns is not None:
        missing = [column for column in options.metadata_columns if column not in columns]
        if missing:
            raise _columns_error(sf, f"no metadata column {missing[0]!r}", columns, "--metadata-column")
        metadata_columns = [column for column in options.metadata_columns if column != text_column]
    else:
        metadata_columns = [column for column in columns if column != text_column]
    return text_column, options.id_column, metadata_columns


def _row_id(value: Any) -> str | None:
    scalar = to_scalar(value)
    if isinstance(scalar, float) and scalar.is_integer():
        scalar = int(scalar)  # pandas reads an int column with gaps as float: keep "12", not "12.0"
    text = "" if scalar is None else str(scalar).strip()
    return text or None


def table_documents(sf: SourceFile, frame, options: TableOptions) -> list[Document]:
    columns = [str(column) for column in frame.columns]
    frame.columns = columns
    text_column, id_column, metadata_columns = resolve_columns(sf, columns, options)
    text_at = columns.index(text_column)
    id_at = columns.index(id_column) if id_column is not None else None
    metadata_at = [(column, columns.index(column)) for column in metadata_columns]
    documents: list[Document] = []
    first_row_of: dict[str, int] = {}
    for number, row in enumerate(frame.itertuples(index=False, name=None), start=1):
        value = to_scalar(row[text_at])
        text = "" if value is None else str(value).strip()
        if not text:
            continue  # rows without text carry nothing to retrieve
        row_id = str(number) if id_at is None else _row_id(row[id_at])
        if row_id is None:
            raise InputError(
                f"{sf.path}: row {number} has no value in the id column {id_column!r}",
                hint="fill the ids in, or pick another --id-column",
            )
        if row_id in first_row_of:
            raise InputError(
                f"{sf.path}: the id column {id_column!r} repeats {row_id!r} (rows {first_row_of[row_id]} and {number})",
                hint="ids must be unique: pick another --id-column, or leave it out to use row numbers",
            )
        first_row_of[row_id] = number
        extra = {column: row[at] for column, at in metadata_at}
        source_id = f"{sf.source_id}#{row_id}"
        documents.append(make_document(sf, text, "table", source_id=source_id, title=extra.get("title"), extra=extra))
    if not documents:
        raise SkipSource(f"empty: no row has text in column {text_column!r}")
    return documents


def load_csv(sf: SourceFile, options: TableOptions) -> list[Document]:
    return table_documents(sf, _read_delimited(sf, ","), options)


def load_tsv(sf: SourceFile, options: TableOptions) -> list[Document]:
    return table_documents(sf, _read_delimited(sf, "\t"), options)


def load_parquet(sf: SourceFile, options: TableOptions) -> list[Document]:
    return table_documents(sf, _read_parquet(sf), options)
