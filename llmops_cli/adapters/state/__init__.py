"""Where the state lives: ``open_state(state.url, data_dir)`` picks the driver.

- ``state.url`` unset: SQLite files under ``data_dir`` as always (``llmops.sqlite``, ``eval/runs.sqlite``,
  ``cache/llm.sqlite``; batch checkpoints as JSONL files in the run folder). Each store owns its file.
- ``state.url=postgresql://...``: ONE database for every store and every machine (answer log, ratings, reviews,
  promotions, eval runs, LLM cache, batch checkpoints). It is opened once per process, at first use, and every
  store's migrations are applied then, together: the database has one schema version. The stores share that
  connection; ``State.close()`` closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.state import StateDB, applied, migrate, schema_version

if TYPE_CHECKING:
    from llmops_cli.core.batch.checkpoint import Checkpoints
    from llmops_cli.core.eval.history import RunHistory
    from llmops_cli.core.feedback.log import AnswerLog
    from llmops_cli.core.llm_cache import LLMCache
    from llmops_cli.core.traces import TraceStore


def all_migrations() -> list[Any]:
    """Every store's migrations, in the order a new database gets them."""
    from llmops_cli.core import llm_cache, traces
    from llmops_cli.core.batch import checkpoint, jobs
    from llmops_cli.core.eval import history
    from llmops_cli.core.feedback import log
    from llmops_cli.core.finetune import runs as finetune_runs
    from llmops_cli.core.state import ratelimit

    return [
        log.migrations,
        history.migrations,
        llm_cache.migrations,
        checkpoint.migrations,
        jobs.migrations,
        traces.migrations,
        finetune_runs.migrations,
        ratelimit.migrations,
    ]


class State:
    """The state stores of one process. Nothing is opened before a store is asked for."""

    def __init__(self, url: str | None, data_path: str | Path):
        self.url = url or None
        self.data_path = Path(data_path)
        self._db: StateDB | None = None

    @property
    def shared(self) -> bool:
        """Whether the state is in a shared database (``state.url``) rather than files under data_dir."""
        return self.url is not None

    def db(self) -> StateDB:
        """The shared database (``state.url`` only): connected and migrated at the first call."""
        if self.url is None:
            raise ValueError("no state.url: the state is in SQLite files under data_dir")
        if self._db is None:
            from llmops_cli.adapters.state.postgres import PostgresDB

            db = PostgresDB(self.url)
            try:
                migrate(db, *all_migrations())
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def answer_log(self, *, read_only: bool = False) -> AnswerLog:
        """The answer log (close it, or use it as a context manager). ``read_only`` with SQLite: where there is no
        log file yet, an empty one in memory, so reading creates nothing."""
        from llmops_cli.core.feedback.log import AnswerLog

        if self.shared:
            return AnswerLog(self.db())
        return AnswerLog.for_data_dir(self.data_path, create=not read_only)

    def run_history(self) -> RunHistory:
        from llmops_cli.core.eval.history import RunHistory, default_history_path

        return RunHistory(self.db() if self.shared else default_history_path(self.data_path))

    def llm_cache(self) -> LLMCache:
        from llmops_cli.core.llm_cache import LLMCache, default_cache_path

        return LLMCache(self.db() if self.shared else default_cache_path(self.data_path))

    def traces(self, *, create: bool = True) -> TraceStore:
        """Where spans are kept for `llmops trace show` (``<data_dir>/traces.sqlite`` or the shared database).
        ``create=False``: a data_dir that does not exist yet is not made for them (a read-only command in a folder
        with no project creates no state); FileNotFoundError then."""
        from llmops_cli.core.traces import TraceStore, default_traces_path

        if self.shared:
            return TraceStore(self.db())
        if not create and not self.data_path.is_dir():
            raise FileNotFoundError(self.data_path)
        return TraceStore(default_traces_path(self.data_path))

    def checkpoints(self, run_dir: str | Path) -> Checkpoints:
        """A batch run's checkpoints: in the shared database, else the run folder's JSONL files."""
        from llmops_cli.core.batch.checkpoint import DbCheckpoints, FileCheckpoints

        if self.shared:
            return DbCheckpoints.for_run_dir(self.db(), Path(run_dir))
        return FileCheckpoints(Path(run_dir))

    def describe(self) -> dict[str, Any]:
        """Where the state is and, for a shared database, its schema version and migrations (opens it)."""
        if not self.shared:
            return {"backend": "sqlite", "data_dir": str(self.data_path)}
        db = self.db()
        return {
            "backend": db.dialect.name,
            "url": db.label,
            "schema_version": schema_version(db),
            "migrations": applied(db),
        }

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_state(url: str | None, data_path: str | Path) -> State:
    """The state of ``settings.state.url`` (None: SQLite files under ``settings.data_path``). Opens nothing yet: an
    unreachable database is reported (``UnreachableError``, exit 7, the URL without its password) at first use."""
    return State(url, data_path)


__all__ = ["State", "all_migrations", "open_state"]
