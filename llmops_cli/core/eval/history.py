"""The run history: every evaluation run, in the state database (by default the SQLite file
``<data_dir>/eval/runs.sqlite``; with ``state.url`` the shared PostgreSQL).

A run keeps its dataset hash, config (and hash), metric means, usage and per-row results, so later runs can
be compared against it (``--baseline``, ``eval compare``). The schema evolves through the named migrations of
``core/state/migrations.py`` (the scripts below, in SQLite's spelling; the dialect translates them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops_cli.core.eval.report import EvalReport
from llmops_cli.core.state import Migrations, StateDB, StateError, StateStore, applied
from llmops_cli.errors import NotFoundError, StoreError

# append only: a script that has shipped is never edited
MIGRATIONS: list[str] = [
    # 1: runs and their rows
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        dataset_path TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        config_json TEXT NOT NULL,
        metrics_json TEXT NOT NULL,
        counts_json TEXT NOT NULL,
        usage_json TEXT NOT NULL,
        robustness_json TEXT NOT NULL,
        n_rows INTEGER NOT NULL,
        error_rows INTEGER NOT NULL,
        duration_s REAL NOT NULL
    );
    CREATE TABLE run_rows (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        result_json TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    CREATE INDEX runs_dataset ON runs(dataset_sha256);
    """,
    # 2: a free label per run (e.g. the sweep configuration or a CI job id)
    "ALTER TABLE runs ADD COLUMN label TEXT;",
    # 3: metric means per tag
    "ALTER TABLE runs ADD COLUMN by_tag_json TEXT NOT NULL DEFAULT '{}';",
]


_NAMES = ["m001_runs_and_rows", "m002_run_label", "m003_metric_means_by_tag"]
migrations = Migrations("eval_history", legacy={n: name for n, name in enumerate(_NAMES, start=1)})
for _name, _script in zip(_NAMES, MIGRATIONS, strict=True):
    migrations.sql(_name, _script)
# named from here on (no numbered legacy version): append only, never edit one that shipped
migrations.sql("m004_run_matrix", "ALTER TABLE runs ADD COLUMN matrix_id TEXT;")
migrations.sql(
    "m005_blessed_baselines",
    """
    CREATE TABLE eval_blessed (
        dataset_sha256 TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        blessed_at TEXT NOT NULL,
        note TEXT
    );
    """,
)
migrations.sql(
    "m006_human_ratings",
    """
    CREATE TABLE eval_ratings (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        item_id TEXT NOT NULL,
        rater TEXT NOT NULL,
        criterion TEXT NOT NULL,
        score INTEGER NOT NULL,
        comment TEXT,
        rated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, item_id, rater, criterion)
    );
    """,
)


def default_history_path(data_path: Path) -> Path:
    return Path(data_path) / "eval" / "runs.sqlite"


class RunHistory(StateStore):
    """``RunHistory(path)``: a SQLite file; ``RunHistory(db)``: the shared state database (``StateStore``)."""

    def __init__(self, target: str | Path | StateDB):
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="eval run history {where} cannot be opened",
            file_hint="check the path and permissions of data_dir",
            db_hint="check state.url (LLMOPS_STATE_URL) and the database user's rights",
            schema_name="eval run history",
        )

    @property
    def db(self) -> StateDB:
        return self._db

    @property
    def schema_version(self) -> int:
        """How many of the history's migrations the database has had."""
        return len(applied(self._db, migrations.store))

    def record(self, report: EvalReport, label: str | None = None) -> int:
        with self._errors("writing"), self._db.transaction() as db:
            run_id = db.insert_id(
                "INSERT INTO runs (created_at, dataset_path, dataset_sha256, config_hash, config_json, metrics_json, "
                "counts_json, usage_json, robustness_json, n_rows, error_rows, duration_s, label, by_tag_json, "
                "matrix_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    report.created_at,
                    report.dataset["path"],
                    report.dataset["sha256"],
                    report.config_hash,
                    json.dumps(report.config, sort_keys=True, default=str),
                    json.dumps(report.metrics),
                    json.dumps(report.counts),
                    json.dumps(report.usage),
                    json.dumps(report.robustness),
                    len(report.rows),
                    report.error_rows,
                    report.duration_s,
                    label,
                    json.dumps(report.by_tag),
                    (report.config.get("matrix") or {}).get("id"),
                ),
            )
            db.executemany(
                "INSERT INTO run_rows (run_id, position, item_id, result_json) VALUES (?,?,?,?)",
                [(run_id, n, r.id, json.dumps(r.to_dict(), ensure_ascii=False)) for n, r in enumerate(report.rows)],
            )
        report.run_id = run_id
        return run_id

    def list_runs(self, limit: int = 20, dataset_sha256: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, created_at, dataset_path, dataset_sha256, config_hash, metrics_json, n_rows, error_rows, "
            "duration_s, label FROM runs"
        )
        args: tuple = ()
        if dataset_sha256:
            sql += " WHERE dataset_sha256 = ?"
            args = (dataset_sha256,)
        sql += " ORDER BY id DESC LIMIT ?"
        out = []
        for r in self._query(sql, (*args, limit)):
            out.append(
                {
                    "id": r[0],
                    "created_at": r[1],
                    "dataset": r[2],
                    "dataset_sha256": r[3],
                    "config_hash": r[4],
                    "metrics": json.loads(r[5]),
                    "rows": r[6],
                    "error_rows": r[7],
                    "duration_s": r[8],
                    "label": r[9],
                }
            )
        return out

    def resolve_id(self, ref: str | int) -> int:
        """A run id from ``7``, ``latest`` or ``latest~1`` (the one before the latest)."""
        s = str(ref).strip().lower()
        if s.startswith("latest"):
            back = int(s.split("~", 1)[1]) if "~" in s else 0
            found = self._query("SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?", (back,))
            row = found[0] if found else None
            if row is None:
                raise NotFoundError(
                    f"no eval run {ref!r}: the history has {'no' if back == 0 else 'too few'} runs",
                    hint="run `llmops eval DATASET` first",
                )
            return int(row[0])
        try:
            return int(s)
        except ValueError:
            raise NotFoundError(
                f"{ref!r} is neither a run id nor a report file", hint="see `llmops eval runs`"
            ) from None

    def load(self, ref: str | int) -> EvalReport:
        run_id = self.resolve_id(ref)
        found = self._query(
            "SELECT id, created_at, dataset_path, dataset_sha256, config_hash, config_json, metrics_json, counts_json, "
            "usage_json, robustness_json, n_rows, duration_s, by_tag_json FROM runs WHERE id = ?",
            (run_id,),
        )
        r = found[0] if found else None
        if r is None:
            raise NotFoundError(f"no eval run {run_id}", hint="see `llmops eval runs` for the recorded ids")
        rows = [
            json.loads(x[0])
            for x in self._query("SELECT result_json FROM run_rows WHERE run_id = ? ORDER BY position", (run_id,))
        ]
        return EvalReport.from_dict(
            {
                "run_id": r[0],
                "created_at": r[1],
                "dataset": {"path": r[2], "sha256": r[3], "rows": r[10]},
                "config_hash": r[4],
                "config": json.loads(r[5]),
                "metrics": json.loads(r[6]),
                "counts": json.loads(r[7]),
                "usage": json.loads(r[8]),
                "robustness": json.loads(r[9]),
                "duration_s": r[11],
                "by_tag": json.loads(r[12]),
                "rows": rows,
            }
        )

    def matrix_runs(self, matrix_id: str) -> list[int]:
        """The runs of one matrix (its combinations), in the order they ran."""
        return [int(r[0]) for r in self._query("SELECT id FROM runs WHERE matrix_id = ? ORDER BY id", (matrix_id,))]

    # blessed baselines: one per question set (by content hash)

    def bless(self, ref: str | int, note: str | None = None) -> dict[str, Any]:
        """Mark a run as the baseline of its question set (replacing the one blessed before)."""
        run_id = self.resolve_id(ref)
        found = self._query("SELECT dataset_sha256, dataset_path, created_at FROM runs WHERE id = ?", (run_id,))
        if not found:
            raise NotFoundError(f"no eval run {run_id}", hint="see `llmops eval runs` for the recorded ids")
        sha, path, _ = found[0]
        at = datetime.now(UTC).isoformat(timespec="seconds")
        previous = self.blessed_for(sha)
        with self._errors("writing"), self._db.transaction() as db:
            db.execute("DELETE FROM eval_blessed WHERE dataset_sha256 = ?", (sha,))
            db.execute(
                "INSERT INTO eval_blessed (dataset_sha256, run_id, blessed_at, note) VALUES (?,?,?,?)",
                (sha, run_id, at, note),
            )
        return {
            "run_id": run_id,
            "dataset": path,
            "dataset_sha256": sha,
            "blessed_at": at,
            "note": note,
            "replaced": previous["run_id"] if previous else None,
        }

    def blessed_for(self, dataset_sha256: str) -> dict[str, Any] | None:
        """The blessed baseline of a question set (by its hash), or None."""
        found = self._query(
            "SELECT run_id, blessed_at, note FROM eval_blessed WHERE dataset_sha256 = ?", (dataset_sha256,)
        )
        if not found:
            return None
        r = found[0]
        return {"run_id": int(r[0]), "blessed_at": r[1], "note": r[2], "dataset_sha256": dataset_sha256}

    def list_blessed(self) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT b.run_id, b.blessed_at, b.note, b.dataset_sha256, r.dataset_path FROM eval_blessed b "
            "JOIN runs r ON r.id = b.run_id ORDER BY b.blessed_at DESC"
        )
        return [
            {"run_id": int(r[0]), "blessed_at": r[1], "note": r[2], "dataset_sha256": r[3], "dataset": r[4]}
            for r in rows
        ]

    # human ratings: one score per (run, question, rater, criterion); rating again replaces it

    def add_ratings(self, ratings: list[dict[str, Any]]) -> int:
        """Store ratings (``run_id, item_id, rater, criterion, score, comment``); returns how many."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._errors("writing"), self._db.transaction() as db:
            for r in ratings:
                key = (int(r["run_id"]), str(r["item_id"]), str(r["rater"]), str(r["criterion"]))
                db.execute(
                    "DELETE FROM eval_ratings WHERE run_id = ? AND item_id = ? AND rater = ? AND criterion = ?", key
                )
                db.execute(
                    "INSERT INTO eval_ratings (run_id, item_id, rater, criterion, score, comment, rated_at) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (*key, int(r["score"]), r.get("comment") or None, at),
                )
        return len(ratings)

    def ratings(self, run_ids: list[int] | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, item_id, rater, criterion, score, comment, rated_at FROM eval_ratings"
        args: tuple = ()
        if run_ids is not None:
            if not run_ids:
                return []
            sql += f" WHERE run_id IN ({','.join('?' for _ in run_ids)})"
            args = tuple(run_ids)
        sql += " ORDER BY run_id, item_id, rater, criterion"
        keys = ("run_id", "item_id", "rater", "criterion", "score", "comment", "rated_at")
        return [dict(zip(keys, r, strict=True)) for r in self._query(sql, args)]

    def _query(self, sql: str, args: tuple = ()) -> list[Any]:
        with self._errors("reading"):
            return self._db.query(sql, args)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StateError as e:
            raise StoreError(f"{doing} eval run history {self._db.label} failed: {e.message}") from None
