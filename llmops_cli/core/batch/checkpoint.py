"""The checkpoint: the finished requests of a batch run, append-only.

Two homes, one interface (``Checkpoints``: ``load()`` and ``writer(name)``): JSONL files in the run folder
(``FileCheckpoints``, the default) or the shared state database (``DbCheckpoints``, when ``state.url`` is set, so
the shards of a run on different machines see each other's work and a retry on another worker resumes it).

Files: each writer (a whole run, or one shard) appends to its own file under ``<run dir>/checkpoints/`` and holds an
exclusive lock on it, so shards never interleave lines. Every record is flushed at once (a killed process
loses nothing: the OS has it) and fsynced by a background thread every ``FSYNC_INTERVAL_S`` (a crash of the
machine loses at most that much, which is then simply run again; an fsync takes ~10 ms here, too long to
block the event loop for). Reading unions every file; a torn last line is ignored and cut off before
appending again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Protocol

from llmops_cli.core.state import Migrations, StateDB, StateError, migrate
from llmops_cli.errors import ConflictError, StoreError

FSYNC_INTERVAL_S = 0.5


class CheckpointSink(Protocol):
    records: int

    def append(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> CheckpointSink: ...

    def __exit__(self, *exc: Any) -> None: ...


class Checkpoints(Protocol):
    """Where a run's finished requests are kept."""

    def load(self) -> dict[str, dict[str, Any]]:
        """id -> the last record for it ("ok" is never replaced by "error" for the same request_hash)."""
        ...

    def writer(self, name: str) -> CheckpointSink:
        """The one writer ``name`` (a whole run, or one shard); a second one at the same time is a ConflictError."""
        ...


def _keep(out: dict[str, dict[str, Any]], rec: Any) -> None:
    rid = rec.get("id") if isinstance(rec, dict) else None
    if not isinstance(rid, str):
        return
    prev = out.get(rid)
    # an answer is not replaced by a later error for the same request; a record of another request (the prompt or
    # parameters changed, same --id-column id and --run-dir) replaces it, so that request's error is kept as an
    # error (it was dropped, and the request asked again by every run)
    if (
        prev is not None
        and prev.get("status") == "ok"
        and rec.get("status") != "ok"
        and prev.get("request_hash") == rec.get("request_hash")
    ):
        return
    out[rid] = rec


def load_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """id -> the last record for it across all checkpoint files of the run ("ok" is never replaced by "error" for
    the same request_hash)."""
    out: dict[str, dict[str, Any]] = {}
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.jsonl")):
        with f.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn write of a killed run
                try:
                    _keep(out, json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


class FileCheckpoints:
    """JSONL files under ``<run dir>/checkpoints/``."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def load(self) -> dict[str, dict[str, Any]]:
        return load_records(self.run_dir)

    def writer(self, name: str) -> CheckpointWriter:
        return CheckpointWriter(self.run_dir, name)


class CheckpointWriter:
    def __init__(self, run_dir: Path, name: str = "all"):
        self.path = Path(run_dir) / "checkpoints" / f"{name}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = _lock(self.path.with_suffix(".lock"))
        _cut_torn_tail(self.path)
        self._fh: IO[str] = self.path.open("a", encoding="utf-8")
        self.records = 0
        self._synced = 0
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="checkpoint-fsync", daemon=True)
        self._syncer.start()

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        self.records += 1

    def _sync_loop(self) -> None:
        fd = self._fh.fileno()
        while not self._stop.wait(FSYNC_INTERVAL_S):
            n = self.records
            if n != self._synced:
                try:
                    os.fsync(fd)  # releases the GIL; flushed lines are already in the OS
                except OSError:
                    return
                self._synced = n

    def close(self) -> None:
        self._stop.set()
        self._syncer.join()
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        if self._lock_fh is not None:
            self._lock_fh.close()  # releases the lock
            self._lock_fh = None

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _lock(path: Path) -> IO[str]:
    import fcntl

    fh = path.open("a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ConflictError(
            f"another llmops batch is writing {path.with_suffix('.jsonl')}",
            hint="wait for it to finish (or stop it); the same command resumes afterwards",
        ) from None
    return fh


def _cut_torn_tail(path: Path) -> None:
    """Drop a partial last line left by a killed writer, so the next record starts on its own line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        pos = size
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            i = data.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


# --- in the state database ---------------------------------------------------------------------------------------

migrations = Migrations("batch_checkpoints")
migrations.sql(
    "m001_checkpoints",
    """CREATE TABLE batch_checkpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order records were written in
        run_key TEXT NOT NULL,                   -- the run folder's name: <input stem>-<run key>
        writer TEXT NOT NULL,                    -- all | shard-00001-of-00004
        request_id TEXT NOT NULL,
        status TEXT,
        record TEXT NOT NULL,                    -- the JSON record, as a checkpoint file's line holds it
        created_at REAL NOT NULL
    );
    CREATE INDEX batch_checkpoints_run ON batch_checkpoints(run_key, seq)""",
)


class DbCheckpoints:
    """The run's records in the state database, keyed by the run folder's name (which hashes what defines the run:
    input, output, model, prompt, schema, parameters), so every machine finds the same run."""

    def __init__(self, db: StateDB, run_key: str):
        self.db = db
        self.run_key = run_key
        try:
            migrate(db, migrations)
        except StateError as e:
            raise StoreError(f"batch checkpoints in {db.label} cannot be opened: {e.message}") from None

    @classmethod
    def for_run_dir(cls, db: StateDB, run_dir: Path) -> DbCheckpoints:
        return cls(db, Path(run_dir).name)

    def load(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            rows = self.db.query("SELECT record FROM batch_checkpoints WHERE run_key = ? ORDER BY seq", (self.run_key,))
        except StateError as e:
            raise StoreError(f"reading batch checkpoints from {self.db.label} failed: {e.message}") from None
        for r in rows:
            try:
                _keep(out, json.loads(r[0]))
            except json.JSONDecodeError:
                continue
        return out

    def writer(self, name: str) -> DbCheckpointWriter:
        return DbCheckpointWriter(self.db, self.run_key, name)


class DbCheckpointWriter:
    """Each record is one committed INSERT: a killed writer loses nothing it appended. The writer holds a lock of
    the database (an advisory lock on PostgreSQL, gone with its connection) so two never write one shard."""

    def __init__(self, db: StateDB, run_key: str, name: str):
        self.db, self.run_key, self.name = db, run_key, name
        self._lock_name = f"llmops-batch:{run_key}:{name}"
        if not db.try_lock(self._lock_name):
            raise ConflictError(
                f"another llmops batch is writing the checkpoints {run_key}/{name} in {db.label}",
                hint="wait for it to finish (or stop it); the same command resumes afterwards",
            )
        self._locked = True
        self.records = 0

    def append(self, record: dict[str, Any]) -> None:
        try:
            self.db.execute(
                "INSERT INTO batch_checkpoints (run_key, writer, request_id, status, record, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.run_key,
                    self.name,
                    str(record.get("id")),
                    record.get("status"),
                    json.dumps(record, ensure_ascii=False, default=str),
                    time.time(),
                ),
            )
        except StateError as e:
            raise StoreError(f"writing a batch checkpoint to {self.db.label} failed: {e.message}") from None
        self.records += 1

    def close(self) -> None:
        if self._locked:
            self._locked = False
            self.db.unlock(self._lock_name)

    def __enter__(self) -> DbCheckpointWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
