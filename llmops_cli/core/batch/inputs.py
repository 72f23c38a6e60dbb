"""Reading and writing row tables: JSONL, CSV and parquet, chosen by the file's extension."""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path
from typing import Any

from llmops_cli.errors import InputError

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown table format {path.suffix or '(no extension)'!r}",
            hint="use a .jsonl, .csv or .parquet file",
        )
    return fmt


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of the table, as dicts (CSV values stay strings)."""
    p = Path(path)
    if p.is_dir():  # "does not exist" misled: it does, as a folder
        raise InputError(f"input {p} is a folder, not a file", hint="pass a .jsonl, .csv or .parquet file")
    if not p.is_file():
        raise InputError(f"input file {p} does not exist", hint="pass an existing .jsonl, .csv or .parquet file")
    fmt = table_format(p)
    if fmt == "jsonl":
        rows = _read_jsonl(p)
    elif fmt == "csv":
        rows = _read_csv(p)
    else:
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise InputError(f"{p} is not a readable parquet file: {str(e).splitlines()[0]}") from None
    if not rows:
        raise InputError(f"input file {p} has no rows", hint="check the file, or pass another one")
    return rows


def _read_csv(p: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file; a row with more or fewer fields than the header is an error naming its line (the
    csv module would keep the extra values under a ``None`` column and fill the missing ones with ``None``, so a
    prompt was sent with an empty placeholder)."""
    rows: list[dict[str, Any]] = []
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            twice = sorted({name for name in header if header.count(name) > 1})
            if twice:  # DictReader keeps the last column of a name: the other one's values were dropped unsaid
                raise InputError(
                    f"{p}'s header names {', '.join(repr(n) for n in twice)} more than once",
                    hint="give every column its own name",
                )
            for r in reader:
                extra = r.pop(None, None) or []  # values past the header (DictReader keeps them under None)
                if extra or any(v is None for v in r.values()):
                    fields = sum(v is not None for v in r.values()) + len(extra)
                    raise InputError(
                        f"{p} line {reader.line_num} has {fields} fields, the header has {len(r)}",
                        hint="quote values that hold a comma, and give every row as many fields as the header",
                    )
                rows.append(dict(r))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{p} is not a readable UTF-8 CSV file: {e}") from None
    return rows


def _read_jsonl(p: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(
                        f"{p} line {n} is not valid JSON: {e.msg}", hint="each line must be one JSON object"
                    ) from None
                if not isinstance(obj, dict):
                    raise InputError(
                        f"{p} line {n} is a JSON {type(obj).__name__}, not an object",
                        hint="each line must be one JSON object",
                    )
                rows.append(obj)
    except UnicodeDecodeError as e:
        raise InputError(f"{p} is not UTF-8 text: {e.reason}") from None
    return rows


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str, ensure_ascii=False))


def write_rows(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Write rows atomically: a temporary file in the same folder, flushed to disk, then renamed over ``path``;
    a failure (full disk, a bad value) leaves the earlier file whole and no temporary file behind. Nested values
    become JSON text in CSV/parquet."""
    p = Path(path)
    fmt = table_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # shard tasks may write at once
    try:
        _write_table(tmp, fmt, rows)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())  # the rename must not publish a file whose data is still only in memory
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def _write_table(tmp: Path, fmt: str, rows: list[dict[str, Any]]) -> None:
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, default=str, ensure_ascii=False) + "\n")
        return
    columns: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                columns.append(k)
    flat = [{c: _flat(r.get(c)) for c in columns} for r in rows]
    if fmt == "csv":
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(flat)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(flat)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in a column: write them as text
        table = pa.Table.from_pylist([{c: None if v is None else str(v) for c, v in r.items()} for r in flat])
    pq.write_table(table, tmp)


def _flat(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(_jsonable(v), ensure_ascii=False)
    return v
