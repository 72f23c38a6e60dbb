"""The provider batch jobs of every ``--via provider`` run, in the state database (``batch_jobs``).

A job's row is written BEFORE anything is sent to the provider (an intent: its key, its run, the request ids it
will hold), then completed step by step: the uploaded file's id, the provider's job id, its status and counts, and
finally ``collected`` once its answers are in the run's checkpoints. A process killed between any two steps leaves a
row that says what was done; the next run continues it instead of submitting the same requests again.

The key of a job hashes its run, its request ids and its position among the run's jobs, and it travels with the job
to the provider (``metadata.llmops_key``): a process killed after the provider created the job but before its id was
recorded finds the job by that key instead of creating a second one.

Where: the shared state database (``state.url``), else ``<data_dir>/batch/jobs.sqlite``: one file for every run,
so ``llmops batch list`` shows them all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.core.state import MEMORY, Migrations, StateDB, StateError, StateStore
from llmops_cli.errors import StoreError

JOBS_FILE = Path("batch") / "jobs.sqlite"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

migrations = Migrations("batch_jobs")
migrations.sql(
    "m001_jobs",
    """CREATE TABLE batch_jobs (
        key TEXT PRIMARY KEY,                    -- idempotency key: run, request ids, position (metadata.llmops_key)
        run_key TEXT NOT NULL,                   -- the run folder's name: <input stem>-<run key>
        provider TEXT NOT NULL,                  -- openai | azure | anthropic | vertex_ai | bedrock ...
        model TEXT,
        request_ids TEXT NOT NULL,               -- JSON list: the requests this job holds
        file_id TEXT,                            -- the uploaded input file, once uploaded
        batch_id TEXT,                           -- the provider's job id, once created
        status TEXT NOT NULL,                    -- intent | provider statuses (in_progress, completed, expired ...)
        counts TEXT,                             -- JSON request_counts of the last poll
        output_file_id TEXT,
        error_file_id TEXT,
        collected INTEGER NOT NULL DEFAULT 0,    -- 1 once its answers are in the run's checkpoints
        input_path TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX batch_jobs_run ON batch_jobs(run_key, created_at)""",
)


@dataclass
class Job:
    key: str
    run_key: str
    provider: str
    model: str | None
    request_ids: list[str]
    status: str = "intent"
    file_id: str | None = None
    batch_id: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    collected: bool = False
    input_path: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "run": self.run_key,
            "provider": self.provider,
            "model": self.model,
            "batch_id": self.batch_id,
            "status": self.status,
            "requests": len(self.request_ids),
            "counts": self.counts,
            "collected": self.collected,
            "input": self.input_path,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


_COLUMNS = (
    "key, run_key, provider, model, request_ids, file_id, batch_id, status, counts, output_file_id, error_file_id, "
    "collected, input_path, created_at, updated_at"
)


def _job(r: Any) -> Job:
    return Job(
        key=r[0],
        run_key=r[1],
        provider=r[2],
        model=r[3],
        request_ids=json.loads(r[4]),
        file_id=r[5],
        batch_id=r[6],
        status=r[7],
        counts=json.loads(r[8]) if r[8] else {},
        output_file_id=r[9],
        error_file_id=r[10],
        collected=bool(r[11]),
        input_path=r[12],
        created_at=float(r[13]),
        updated_at=float(r[14]),
    )


class ProviderJobs(StateStore):
    """The recorded jobs; every write commits on its own (it is the durable step)."""

    def __init__(self, target: str | Path | StateDB):
        if isinstance(target, str | Path) and str(target) != MEMORY:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="the batch job record {where} cannot be opened",
            file_hint="check the data_dir permissions, or move the file aside",
            db_hint="check state.url",
            schema_name="the batch job record",
        )

    @property
    def db(self) -> StateDB:
        return self._db

    def _run(self, sql: str, args: tuple = ()) -> list[Any]:
        try:
            return self._db.query(sql, args) if sql.lstrip().upper().startswith("SELECT") else self._exec(sql, args)
        except StateError as e:
            raise StoreError(f"the batch job record in {self._db.label} failed: {e.message}") from None

    def _exec(self, sql: str, args: tuple) -> list[Any]:
        self._db.execute(sql, args)
        return []

    def record_intent(self, job: Job) -> Job:
        """Write a new job's row before anything is sent; an existing row with the key is returned as it is."""
        existing = self.get(job.key)
        if existing is not None:
            return existing
        now = time.time()
        job.created_at = job.updated_at = now
        self._run(
            f"INSERT INTO batch_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            (
                job.key,
                job.run_key,
                job.provider,
                job.model,
                json.dumps(job.request_ids),
                None,
                None,
                job.status,
                None,
                None,
                None,
                0,
                job.input_path,
                now,
                now,
            ),
        )
        return self.get(job.key) or job

    def update(self, key: str, **fields: Any) -> None:
        allowed = {"file_id", "batch_id", "status", "counts", "output_file_id", "error_file_id", "collected"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown job fields {sorted(bad)}")
        vals = {k: (json.dumps(v) if k == "counts" else int(v) if k == "collected" else v) for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in vals)
        self._run(f"UPDATE batch_jobs SET {sets}, updated_at = ? WHERE key = ?", (*vals.values(), time.time(), key))

    def get(self, key: str) -> Job | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM batch_jobs WHERE key = ?", (key,))
        return _job(rows[0]) if rows else None

    def for_run(self, run_key: str) -> list[Job]:
        rows = self._run(f"SELECT {_COLUMNS} FROM batch_jobs WHERE run_key = ? ORDER BY created_at, key", (run_key,))
        return [_job(r) for r in rows]

    def all(self, limit: int = 200) -> list[Job]:
        rows = self._run(f"SELECT {_COLUMNS} FROM batch_jobs ORDER BY created_at DESC, key LIMIT ?", (limit,))
        return [_job(r) for r in rows]

    def by_batch_id(self, batch_id: str) -> Job | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM batch_jobs WHERE batch_id = ?", (batch_id,))
        return _job(rows[0]) if rows else None
