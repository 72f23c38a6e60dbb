"""The checkpoint: append-only JSONL files of finished requests in a run folder.

Each writer (a whole run, or one shard) appends to its own file under ``<run dir>/checkpoints/`` and holds an
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
from pathlib import Path
from typing import IO, Any

from llmops_cli.errors import ConflictError

FSYNC_INTERVAL_S = 0.5


def load_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """id -> the last record for it across all checkpoint files of the run ("ok" is never replaced by "error")."""
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
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                rid = rec.get("id")
                if not isinstance(rid, str):
                    continue
                prev = out.get(rid)
                if prev is not None and prev.get("status") == "ok" and rec.get("status") != "ok":
                    continue
                out[rid] = rec
    return out


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
