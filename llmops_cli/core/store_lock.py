"""One writer per embedded store, across processes: an OS file lock beside the store.

Two processes that both open the embedded Chroma store for writing damage its vector index (each keeps its own
copy of the HNSW index in memory and saves it over the other's), so every command that writes (ingest, feedback
promotion, collections delete) holds ``<store>/.llmops-write.lock`` from before it reads what it plans on until its
last write. Readers never take it.

Only the embedded store takes it. A server store (a Chroma server, PostgreSQL) is written by processes on several
machines (ingest shards on Airflow workers, CLIs on laptops), where a lock file on one machine's disk orders nothing:
the server orders the writes itself. Chroma's server applies each call atomically through its own write-ahead log
and one HNSW index held by the server, so concurrent upserts of distinct chunks cannot overwrite each other's
index; PostgreSQL runs every write of ours in a transaction with ON CONFLICT upserts and takes an advisory lock
for table creation. What can still race is a read-modify-write across calls (the collection's generation
counter): the ledger generation, written in the same call as the records, is what the lexical cache keys on, so a
lost increment never leaves a stale index.

The lock is ``fcntl.flock`` on an open file: the OS drops it when the process ends, however it ends (kill -9
included), so a crashed writer never leaves a stale lock. The file's content (pid, command, start time) is only
there to say who holds it; it is not the lock.

Re-entrant within a process: nested holders of the same store share one OS lock.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmops_cli.errors import ExitCode, LlmopsError

LOCK_NAME = ".llmops-write.lock"
DEFAULT_WAIT_S = 10.0  # long enough to ride out a short write (a feedback vote), short enough to tell a user soon
WAIT_ENV = "LLMOPS_WAIT_LOCK"  # the default wait for every writing command (--wait-lock overrides it for ingest)


class StoreLockedError(LlmopsError):
    """Another process is writing the store."""

    exit_code = ExitCode.CONFLICT


_held: dict[str, list] = {}  # resolved lock path -> [fd, count]; this process's locks
_guard = threading.Lock()


def lock_path(store_path: Path | str) -> Path:
    return Path(store_path) / LOCK_NAME


def default_wait() -> float:
    raw = os.environ.get(WAIT_ENV)
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            raise LlmopsError(
                f"{WAIT_ENV}={raw!r} is not a number of seconds", hint=f"e.g. {WAIT_ENV}=60", exit_code=ExitCode.USAGE
            ) from None
    return DEFAULT_WAIT_S


def holds(store_path: Path | str) -> bool:
    """Whether this process holds the store's write lock."""
    return _key(store_path) in _held


def _key(store_path: Path | str) -> str:
    return str(lock_path(store_path).resolve())


def holder(store_path: Path | str) -> str:
    """Who holds (or last held) the lock, in words, from the lock file's content."""
    try:
        info = json.loads(lock_path(store_path).read_text() or "{}")
    except (OSError, ValueError):
        return "another llmops process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0))) if info.get("since") else "?"
    return f"pid {info.get('pid', '?')} ({info.get('command', 'llmops')}, since {since})"


@contextmanager
def write_lock(
    store_path: Path | str, wait_s: float | None = None, *, announce=None, flag: str | None = None
) -> Iterator[None]:
    """Hold the store's write lock for the block. Waits up to ``wait_s`` seconds (None: ``default_wait()``) for
    another writer, saying so once through ``announce`` (default: a line on stderr); raises StoreLockedError
    (exit 10) when it is still held then."""
    acquire(store_path, wait_s, announce=announce, flag=flag)
    try:
        yield
    finally:
        release(store_path)


def acquire(store_path: Path | str, wait_s: float | None = None, *, announce=None, flag: str | None = None) -> None:
    """``flag``: the command's own option that sets the wait (ingest's ``--wait-lock``), named in the messages; every
    other writing command is told of the environment variable only (it has no such option)."""
    import fcntl

    wait_s = default_wait() if wait_s is None else max(0.0, float(wait_s))
    key = _key(store_path)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return
    path = lock_path(store_path)
    try:
        # a brand-new store: its folder is made here, so two first writers serialise too
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        from llmops_cli.errors import StoreError

        raise StoreError(
            f"cannot create the store's write lock {path}: {e.strerror or e}",
            hint="check store.path (LLMOPS_STORE_PATH) and its permissions",
        ) from None
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"the store at {path.parent} is being written by {holder(store_path)}"
                    + (f"; waited {wait_s:g} s" if wait_s else ""),
                    hint="let that command finish and run this one again, or wait for it with "
                    + (f"{flag} SECONDS (or {WAIT_ENV}=SECONDS)" if flag else f"{WAIT_ENV}=SECONDS")
                    + "; only one command writes a store at a time",
                )
            if not told:
                msg = (
                    f"waiting up to {wait_s:g} s for {holder(store_path)} to finish writing the store at {path.parent} "
                    f"({f'{flag} SECONDS' if flag else f'{WAIT_ENV}=SECONDS'} waits longer)"
                )
                (announce or _to_stderr)(msg)
                told = True
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        # who holds it, for the next waiter's message; written only while holding the lock
        info = {
            "pid": os.getpid(),
            "command": " ".join(["llmops", *sys.argv[1:3]]) if sys.argv else "llmops",
            "since": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _guard:
        _held[key] = [fd, 1]


def release(store_path: Path | str) -> None:
    key = _key(store_path)
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
    os.close(entry[0])  # closing the only descriptor drops the flock


def _to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
