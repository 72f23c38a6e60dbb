"""Orchestration steps over an Airflow-like client: wait for a run, summarise task states, explain failures.

No printing, no environment: the CLI passes a callback for live updates and renders what comes back. The
client is anything with ``get_run``, ``list_task_instances``, ``get_log`` and ``get_dag``
(``AirflowClient``, or a fake).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmops_cli.errors import LlmopsError, UnreachableError, UsageError

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
PAUSED_CHECK_S = 5.0  # while a run is queued, how often to ask whether its DAG is paused (it would never start)
# the order states are shown in (most interesting first)
STATE_ORDER = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "running",
    "queued",
    "scheduled",
    "deferred",
    "up_for_reschedule",
    "restarting",
    "success",
    "skipped",
    "removed",
    "none",
)


class RunClient(Protocol):
    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]: ...

    def list_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]: ...

    def get_log(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        *,
        map_index: int | None = None,
        token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def get_dag(self, dag_id: str) -> dict[str, Any]: ...


def paused_error(dag_id: str, run_id: str | None = None) -> UsageError:
    """A paused DAG's runs stay queued forever: say so, with the fix (exit 2)."""
    what = f"run {run_id!r} stays queued" if run_id else "a new run would stay queued"
    return UsageError(
        f"DAG {dag_id!r} is paused: {what} until it is unpaused",
        hint=f"unpause it with `llmops dags unpause {dag_id}` (or trigger with --unpause); a queued run then starts",
    )


@dataclass
class TaskSummary:
    """One task of a run; a mapped task's instances are counted by state."""

    task_id: str
    mapped: bool
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def label(self) -> str:
        """``success`` for a plain task, ``3/4 success, 1 running`` for a mapped one."""
        ordered = sorted(self.counts.items(), key=lambda kv: _state_rank(kv[0]))
        if not self.mapped:
            return ordered[0][0] if ordered else "none"
        return ", ".join(f"{n}/{self.total} {s}" for s, n in ordered)

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "mapped": self.mapped, "total": self.total, "states": dict(self.counts)}


def _state_rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def summarize_tasks(task_instances: list[dict[str, Any]]) -> list[TaskSummary]:
    """Per task id, in first-seen order: counts of instance states (mapped instances counted, not listed)."""
    by_task: dict[str, Counter[str]] = {}
    mapped: dict[str, bool] = {}
    for ti in task_instances:
        tid = ti["task_id"]
        by_task.setdefault(tid, Counter())[ti.get("state") or "none"] += 1
        mapped[tid] = mapped.get(tid, False) or (ti.get("map_index", -1) is not None and ti.get("map_index", -1) >= 0)
    return [TaskSummary(tid, mapped[tid], dict(c)) for tid, c in by_task.items()]


def failed_task_instances(task_instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The instances that failed themselves (upstream_failed ones are consequences, not causes)."""
    out = []
    for ti in task_instances:
        if ti.get("state") == "failed":
            out.append(
                {
                    "task_id": ti["task_id"],
                    "map_index": ti.get("map_index", -1),
                    "try_number": ti.get("try_number") or 1,
                }
            )
    return out


def format_event(e: dict[str, Any]) -> str:
    """A structured log event as one readable line (timestamp, level, logger, event, error detail)."""
    parts = []
    if e.get("timestamp"):
        parts.append(str(e["timestamp"]).replace("T", " ").removesuffix("Z")[:23])
    if e.get("level"):
        parts.append(str(e["level"]).upper())
    if e.get("logger"):
        parts.append(f"{e['logger']}:")
    parts.append(str(e.get("event", "")))
    line = " ".join(parts)
    detail = e.get("error_detail")
    if detail:
        for exc in detail if isinstance(detail, list) else [detail]:
            if isinstance(exc, dict):
                line += f"\n    {exc.get('exc_type', '')}: {exc.get('exc_value', '')}"
    return line


def without_source_header(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the leading "::group::Log message source details" ... "::endgroup::" block (file paths)."""
    out, skipping = [], False
    for e in events:
        ev = str(e.get("event", ""))
        if ev.startswith("::group::Log message source"):
            skipping = True
            continue
        if skipping:
            if ev.startswith("::endgroup::"):
                skipping = False
            continue
        out.append(e)
    return out


def log_tail(client: RunClient, dag_id: str, run_id: str, ti: dict[str, Any], *, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a task instance's log (following continuation tokens to the end)."""
    events: list[dict[str, Any]] = []
    token = None
    for _ in range(50):
        page, nxt = client.get_log(
            dag_id, run_id, ti["task_id"], ti.get("try_number") or 1, map_index=ti.get("map_index", -1), token=token
        )
        events.extend(page)
        if not page or not nxt or nxt == token:
            break
        token = nxt
    # the "Log message source details" header group and group markers are noise in a tail
    text = [format_event(e) for e in without_source_header(events) if not str(e.get("event", "")).startswith("::")]
    flat = [ln for block in text for ln in block.splitlines()]
    return flat[-lines:]


@dataclass
class WaitUpdate:
    """What the waiter reports at each change: the run and its task summaries, or an unreachable notice."""

    elapsed_s: float
    run: dict[str, Any] | None = None
    tasks: list[TaskSummary] = field(default_factory=list)
    unreachable: str | None = None  # set while the API server cannot be reached


@dataclass
class WaitResult:
    run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    timed_out: bool
    elapsed_s: float
    last_unreachable: str | None = None

    @property
    def state(self) -> str:
        return self.run.get("state") or "unknown"

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


def wait_for_run(
    client: RunClient,
    dag_id: str,
    run_id: str,
    *,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
    on_update: Callable[[WaitUpdate], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll until the run is terminal or ``timeout_s`` passes. Connection errors (an API server restart) are
    reported through ``on_update`` and waited through while the deadline allows. The poll is cheap (~4 ms a
    call), so the run's end is seen within ``poll_s`` of the server recording it. A queued run of a paused DAG
    never starts: that raises at once (checked every PAUSED_CHECK_S while the run is queued)."""
    start = clock()
    deadline = None if timeout_s is None else start + timeout_s
    run: dict[str, Any] | None = None
    tis: list[dict[str, Any]] = []
    unreachable: str | None = None
    last_key: Any = None
    paused_checked: float | None = None
    while True:
        try:
            run = client.get_run(dag_id, run_id)
            terminal = run.get("state") in TERMINAL_RUN_STATES
            tis = client.list_task_instances(dag_id, run_id)
            if unreachable is not None:
                unreachable = None
                last_key = None  # force a report: we are back
            if run.get("state") == "queued" and (paused_checked is None or clock() - paused_checked >= PAUSED_CHECK_S):
                paused_checked = clock()
                if client.get_dag(dag_id).get("is_paused"):
                    raise paused_error(dag_id, run_id)
        except LlmopsError as e:
            # unreachable, or a 5xx after the client's own retries (e.g. the server coming back up): waited through
            if not isinstance(e, UnreachableError) and e.exit_code != 1:
                raise
            unreachable = e.message
            terminal = False
            if on_update:
                on_update(WaitUpdate(clock() - start, run, summarize_tasks(tis), unreachable=unreachable))
        else:
            tasks = summarize_tasks(tis)
            key = (run.get("state"), tuple((t.task_id, tuple(sorted(t.counts.items()))) for t in tasks))
            if on_update and key != last_key:
                on_update(WaitUpdate(clock() - start, run, tasks))
            last_key = key
            if terminal:
                return WaitResult(run, tis, False, clock() - start)
        now = clock()
        if deadline is not None and now >= deadline:
            if run is None:
                raise UnreachableError(unreachable or f"DAG run {run_id!r} could not be read")
            return WaitResult(run, tis, True, now - start, last_unreachable=unreachable)
        sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - now)))
