"""Writing a run's results: the whole report (.json), per-question rows (.jsonl, .csv, .parquet) or the
self-contained HTML report (.html); the format comes from the file's extension."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmops_cli.core.eval.html_report import render_html
from llmops_cli.core.eval.report import EvalReport
from llmops_cli.core.locations import refuse_folder
from llmops_cli.errors import InputError, LlmopsError

OUTPUT_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".html": "html",
    ".htm": "html",
}


def flat_rows(report: EvalReport) -> list[dict[str, Any]]:
    """One flat record per question (lists joined with '|', one column per metric) for CSV and parquet."""
    metric_names = sorted({m for r in report.rows for m in r.metrics} | set(report.metrics))
    out = []
    for r in report.rows:
        rec: dict[str, Any] = {
            "id": r.id,
            "question": r.question,
            "reference_answer": r.reference_answer,
            "answer": r.answer,
            "relevant_sources": "|".join(r.relevant_sources),
            "retrieved_sources": "|".join(h.get("source", "") for h in r.retrieved),
            "retrieved_ids": "|".join(h.get("id", "") for h in r.retrieved),
            "tags": "|".join(r.tags),
        }
        for m in metric_names:
            rec[m] = r.metrics.get(m)
        rec["errors"] = json.dumps(r.errors, ensure_ascii=False) if r.errors else ""
        out.append(rec)
    return out


def output_format(path: str | Path) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"--output {path}: unknown format {Path(path).suffix or '(no extension)'!r}",
            hint="use .json (whole report), .jsonl/.csv/.parquet (per question) or .html (report)",
        )
    check_output_path(path)
    return fmt


def check_output_path(path: str | Path, flag: str = "--output") -> None:
    """An output that is a folder is a usage error before any work (it was an internal error after the run)."""
    p = Path(path).expanduser()
    refuse_folder(p, flag, hint=f"name a file, e.g. {p / ('report' + p.suffix)}")


def write_failed(path: Path, e: OSError) -> LlmopsError:
    return LlmopsError(f"cannot write {path}: {e.strerror or e}", hint="check the path, its permissions and free space")


def write_results(report: EvalReport, path: str | Path, *, trend: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write the results file atomically: a temporary file beside it, then a rename, so a failure (full disk, a bad
    value) never leaves a half-written report where an earlier one was. ``trend``: recorded runs of the same question
    set, drawn as metric trends in an HTML report."""
    p = Path(path).expanduser()
    fmt = output_format(p)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        _write(report, tmp, fmt, trend)
        os.replace(tmp, p)
    except OSError as e:
        _discard(tmp)
        raise write_failed(p, e) from None
    except BaseException:
        _discard(tmp)
        raise
    return p


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # its folder cannot be written or is not one: there is no temporary file
        pass


def _write(report: EvalReport, p: Path, fmt: str, trend: Sequence[Mapping[str, Any]] | None = None) -> None:
    if fmt == "json":
        p.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        p.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in report.rows), encoding="utf-8")
    elif fmt == "csv":
        rows = flat_rows(report)
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["id"])
            w.writeheader()
            w.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(flat_rows(report)), p)
    else:
        p.write_text(render_html(report, trend=trend), encoding="utf-8")
