"""What the state drivers share: one connection used by the threads of a process behind a re-entrant lock,
transactions that nest by joining the outermost one, and the driver's errors turned into the project's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


class LockedConnection:
    """Base of ``SQLiteDB`` and ``PostgresDB``. A driver says how its outermost transaction begins and ends
    (``_outermost``) and which of its library's errors become which of ours (``_translate``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._in_tx = 0

    def _outermost(self, lock: str | None) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _translate(self, e: Exception) -> Exception | None:
        """The project's error for the driver's ``e``; None for an error that is not the driver's."""
        raise NotImplementedError

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Any]:
        """One transaction for the statements inside, the other threads waiting; nested use joins the outer one."""
        with self._lock:
            if self._in_tx:
                self._in_tx += 1
                try:
                    yield self
                finally:
                    self._in_tx -= 1
                return
            self._in_tx = 1
            try:
                with self._outermost(lock):
                    yield self
            finally:
                self._in_tx = 0

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            ours = self._translate(e)
            if ours is None:
                raise
            raise ours from None
