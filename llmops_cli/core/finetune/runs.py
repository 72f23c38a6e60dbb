"""Fine-tuning runs in the state database (``<data_dir>/finetune/runs.sqlite``, or the shared PostgreSQL): what was
trained from what, the held-out comparison, the cost, the output model and, for a provider job, its job id, so a
retried task resumes the job instead of paying for a second one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from llmops_cli.core.state import Migrations, StateDB, StateStore
from llmops_cli.errors import NotFoundError, StoreError

migrations = Migrations("finetune")
migrations.sql(
    "m001_finetune_runs",
    """
    CREATE TABLE finetune_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        kind TEXT NOT NULL,                      -- embedder, llm, llm-provider
        status TEXT NOT NULL,                    -- running, done, failed
        base_model TEXT NOT NULL,
        collection TEXT,
        output TEXT,                             -- the tuned model's folder (or the provider's model name)
        job_key TEXT,                            -- what identifies the same job on a retry
        provider_job_id TEXT,
        params_json TEXT NOT NULL DEFAULT '{}',
        data_json TEXT NOT NULL DEFAULT '{}',    -- examples, split
        metrics_json TEXT NOT NULL DEFAULT '{}', -- base vs tuned with confidence intervals
        cost_json TEXT NOT NULL DEFAULT '{}',    -- wall and CPU seconds, epochs, tokens, price
        promoted_to TEXT
    );
    CREATE INDEX finetune_runs_job_key ON finetune_runs(job_key);
    """,
)

_JSON = ("params", "data", "metrics", "cost")
_COLS = (
    "id, created_at, updated_at, kind, status, base_model, collection, output, job_key, provider_job_id, "
    "params_json, data_json, metrics_json, cost_json, promoted_to"
)


def default_runs_path(data_path: Path) -> Path:
    return Path(data_path) / "finetune" / "runs.sqlite"


class FinetuneRuns(StateStore):
    def __init__(self, target: str | Path | StateDB):
        if isinstance(target, str | Path):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="fine-tuning run history {where} cannot be opened",
            file_hint="check the path and permissions of data_dir",
            db_hint="check state.url (LLMOPS_STATE_URL) and the database user's rights",
            schema_name="fine-tuning run history",
        )

    def start(
        self,
        kind: str,
        base_model: str,
        *,
        collection: str | None = None,
        params: dict[str, Any] | None = None,
        job_key: str | None = None,
    ) -> int:
        now = time.time()
        return self._db.insert_id(
            "INSERT INTO finetune_runs (created_at, updated_at, kind, status, base_model, collection, job_key, "
            "params_json) VALUES (?,?,?,?,?,?,?,?)",
            (now, now, kind, "running", base_model, collection, job_key, json.dumps(params or {}, default=str)),
        )

    def update(self, run_id: int, **fields: Any) -> None:
        sets, args = ["updated_at = ?"], [time.time()]
        for k, v in fields.items():
            if k in _JSON:
                sets.append(f"{k}_json = ?")
                args.append(json.dumps(v, default=str))
            elif k in ("status", "output", "provider_job_id", "promoted_to"):
                sets.append(f"{k} = ?")
                args.append(v)
            else:
                raise ValueError(f"unknown field {k}")
        self._db.execute(f"UPDATE finetune_runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def get(self, run_id: int) -> dict[str, Any]:
        rows = self._db.query(f"SELECT {_COLS} FROM finetune_runs WHERE id = ?", (int(run_id),))
        if not rows:
            raise NotFoundError(f"no fine-tuning run {run_id}", hint="list them with: llmops finetune runs")
        return _row(rows[0])

    def by_job_key(self, job_key: str) -> dict[str, Any] | None:
        """The latest run of this job (a retry of the same task finds it)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM finetune_runs WHERE job_key = ? ORDER BY id DESC LIMIT 1", (job_key,)
        )
        return _row(rows[0]) if rows else None

    def latest(self, kind: str | None = None, *, status: str | None = None) -> dict[str, Any] | None:
        got = self.list(limit=1, kind=kind, status=status)
        return got[0] if got else None

    def list(self, *, limit: int = 20, kind: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {_COLS} FROM finetune_runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self._db.query(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit)))
        return [_row(r) for r in rows]


def cost_total(run: dict[str, Any]) -> dict[str, Any]:
    """One run's cost in one place: wall and CPU seconds of every local step (train, evaluate, promote, a provider
    job's waits) summed, a provider job's wall seconds, trained tokens and price (None when unknown)."""
    cost = run.get("cost") or {}
    parts = [v for v in cost.values() if isinstance(v, dict) and "wall_s" in v]
    wall = sum(float(v.get("wall_s") or 0) for v in parts)
    if run.get("kind") == "llm-provider" and cost.get("wall_s") is not None:
        wall = float(cost["wall_s"])  # the job's time from submission to its end, waits included
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(float(v.get("cpu_s") or 0) for v in parts), 2),
        "trained_tokens": cost.get("trained_tokens"),
        "cost_usd": cost.get("cost_usd"),
    }


def _row(r: Any) -> dict[str, Any]:
    names = [c.strip() for c in _COLS.split(",")]
    d = dict(zip(names, tuple(r), strict=True))
    for k in _JSON:
        d[k] = json.loads(d.pop(f"{k}_json") or "{}")
    return d
