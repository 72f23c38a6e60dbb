"""Question sets: JSONL, CSV or parquet with ``question`` and optional ``id``, ``reference_answer``,
``relevant_sources``, ``relevant_chunks``, ``tags`` and ``answer`` (an answer produced elsewhere, evaluated
as is instead of generating one).

List columns accept a JSON list, a list value (JSONL/parquet) or, in CSV, values separated by ``|``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.core.batch.inputs import FORMATS  # question sets take the same table extensions as batch inputs
from llmops_cli.errors import InputError

COLUMNS = ("id", "question", "reference_answer", "relevant_sources", "relevant_chunks", "tags", "answer")
LIST_COLUMNS = ("relevant_sources", "relevant_chunks", "tags")


@dataclass
class EvalItem:
    id: str
    question: str
    reference_answer: str | None = None
    relevant_sources: list[str] = field(default_factory=list)
    relevant_chunks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dataset:
    path: str
    sha256: str
    items: list[EvalItem]

    @property
    def has_sources(self) -> bool:
        return any(i.relevant_sources for i in self.items)

    @property
    def has_chunks(self) -> bool:
        return any(i.relevant_chunks for i in self.items)

    @property
    def has_references(self) -> bool:
        return any(i.reference_answer for i in self.items)

    @property
    def has_answers(self) -> bool:
        return any(i.answer is not None for i in self.items)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_dataset(path: str | Path, *, limit: int | None = None) -> Dataset:
    """Read and validate a question set; every problem is an InputError naming the file, row and column."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(
            f"question set {p} does not exist", hint="pass a .jsonl, .csv or .parquet file with a 'question' column"
        )
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(
            f"question set {p}: unknown format {p.suffix or '(no extension)'!r}", hint="use .jsonl, .csv or .parquet"
        )
    records = _read_records(p, fmt)
    if not records:
        raise InputError(f"question set {p} has no rows", hint="add rows with at least a 'question' value")
    columns = {k for r in records for k in r}  # extra columns are allowed and ignored
    if "question" not in columns:
        raise InputError(
            f"question set {p} has no 'question' column (columns: {', '.join(sorted(columns))})",
            hint="name the column holding the questions 'question'",
        )
    items: list[EvalItem] = []
    seen: set[str] = set()
    for n, rec in enumerate(records, start=1):
        where = f"question set {p} row {n}"
        q = rec.get("question")
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{where}: 'question' is empty or not text", hint="every row needs a non-empty question")
        rid = rec.get("id")
        rid = (
            str(n)
            if rid is None or (isinstance(rid, float) and rid != rid) or str(rid).strip() == ""
            else str(rid).strip()
        )
        if rid in seen:
            raise InputError(f"{where}: duplicate id {rid!r}", hint="ids must be unique (or leave the id column out)")
        seen.add(rid)
        lists = {c: _as_list(rec.get(c), f"{where} column '{c}'", csv=fmt == "csv") for c in LIST_COLUMNS}
        items.append(
            EvalItem(
                id=rid,
                question=q.strip(),
                reference_answer=_as_text(rec.get("reference_answer"), f"{where} column 'reference_answer'"),
                answer=_as_answer(rec.get("answer"), f"{where} column 'answer'", csv=fmt == "csv"),
                **lists,
            )
        )
        if limit and len(items) >= limit:
            break
    return Dataset(path=str(p.resolve()), sha256=file_sha256(p), items=items)


def _read_records(p: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        out: list[dict[str, Any]] = []
        try:
            lines = p.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"question set {p} cannot be read: {e}") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"question set {p} line {n} is not valid JSON: {e.msg}", hint="one JSON object per line"
                ) from None
            if not isinstance(rec, dict):
                raise InputError(f"question set {p} line {n} is not a JSON object", hint="one JSON object per line")
            out.append(rec)
        return out
    if fmt == "csv":
        import csv

        try:
            with p.open(newline="", encoding="utf-8-sig") as f:
                return [{k.strip(): v for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise InputError(f"question set {p} cannot be read as CSV: {e}") from None
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise InputError(f"question set {p} cannot be read as parquet: {str(e).splitlines()[0]}") from None
    return table.to_pylist()


def _as_text(v: Any, where: str) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (list, dict)):
        raise InputError(f"{where} must be text, not {type(v).__name__}")
    s = str(v).strip()
    return s or None


def _as_answer(v: Any, where: str, *, csv: bool) -> str | None:
    """A given answer, empty ones included: a row with ``"answer": ""`` is scored as that (empty) answer, not
    answered by the LLM. Only a missing or null value means "none given" (and in CSV, which has no null, an empty
    cell)."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (list, dict)):
        raise InputError(f"{where} must be text, not {type(v).__name__}")
    s = str(v).strip()
    return None if csv and not s else s


def _as_list(v: Any, where: str, *, csv: bool) -> list[str]:
    if v is None or (isinstance(v, float) and v != v):
        return []
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return []
        if s.startswith("["):
            try:
                v = json.loads(s)
            except json.JSONDecodeError:
                raise InputError(
                    f"{where} is not a valid JSON list: {s[:60]!r}", hint='write it as ["a", "b"] or a|b'
                ) from None
        else:
            v = [part.strip() for part in s.split("|")] if csv or "|" in s else [s]
    if not isinstance(v, (list, tuple)):
        raise InputError(f"{where} must be a list of strings, got {type(v).__name__}", hint='write it as ["a", "b"]')
    return [str(x).strip() for x in v if x is not None and str(x).strip()]


def write_dataset(items: list[EvalItem], path: str | Path) -> Path:
    """Write a question set (format from the extension); used by ``eval generate``."""
    p = Path(path).expanduser()
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"output {p}: unknown format {p.suffix!r}", hint="use .jsonl, .csv or .parquet")
    rows = [i.to_dict() for i in items]
    try:
        _write_rows(rows, p, fmt)
    except OSError as e:
        from llmops_cli.core.eval.results_files import write_failed

        raise write_failed(p, e) from None
    return p


def _write_rows(rows: list[dict[str, Any]], p: Path, fmt: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        import csv

        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS))
            w.writeheader()
            for r in rows:
                w.writerow({k: "|".join(v) if isinstance(v, list) else v for k, v in r.items()})
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), p)
