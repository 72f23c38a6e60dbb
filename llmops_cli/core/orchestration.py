"""Orchestration steps over an Airflow-like client: wait for a run, summarise task states, explain failures,
read and follow a task's log.

No printing, no environment: the CLI passes a callback for live updates (or iterates over log batches) and
renders what comes back. The client is anything with the methods of ``RunClient`` (``AirflowClient``, or a fake).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmops_cli.errors import ExitCode, LlmopsError, UnreachableError, UsageError

# the XCom key under which an llmops DAG's last task reports its outcome (entry.dag_support pushes it)
OUTCOME_XCOM_KEY = "llmops_outcome"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
WRITING_TI_STATES = frozenset({"running", "deferred", "up_for_reschedule", "restarting"})  # may still log
LOG_POLL_S = 1.0  # how often a followed log is read again when nothing new came
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


@dataclass(frozen=True)
class TaskTry:
    """One try of one task instance: what a log belongs to. ``map_index`` -1 is an unmapped task."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1


LogPage = tuple[list[dict[str, Any]], str | None]  # structured log events, and the continuation token


class RunClient(Protocol):
    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]: ...

    def list_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]: ...

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> dict: ...

    def get_log(self, task: TaskTry, token: str | None = None) -> LogPage: ...

    def get_dag(self, dag_id: str) -> dict[str, Any]: ...

    def get_run_outcome(self, dag_id: str, run_id: str) -> dict[str, Any] | None: ...


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


def read_log(client: RunClient, task: TaskTry, *, max_pages: int = 100) -> list[dict[str, Any]]:
    """The whole log as it stands now, following continuation tokens until no new content arrives."""
    events: list[dict[str, Any]] = []
    token = None
    for _ in range(max_pages):
        page, nxt = client.get_log(task, token)
        events.extend(page)
        if not page or not nxt or nxt == token:
            break
        token = nxt
    return events


def log_tail(client: RunClient, dag_id: str, run_id: str, ti: dict[str, Any], *, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a task instance's log (following continuation tokens to the end)."""
    task = TaskTry(dag_id, run_id, ti["task_id"], ti.get("try_number") or 1, ti.get("map_index", -1))
    # the "Log message source details" header group and group markers are noise in a tail
    events = without_source_header(read_log(client, task))
    text = [format_event(e) for e in events if not str(e.get("event", "")).startswith("::")]
    flat = [ln for block in text for ln in block.splitlines()]
    return flat[-lines:]


def find_log_try(
    client: RunClient,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    try_number: int | None = None,
    map_index: int | None = None,
    wait_for_start: bool = False,
) -> tuple[dict[str, Any], TaskTry]:
    """The task instance and the try whose log to read (``try_number``, else the latest).

    With ``wait_for_start``, a task that has not started yet is waited for (polled every LOG_POLL_S):
    Airflow counts the try when the task is queued, so its try number alone does not say it started.
    Raises UsageError for a task that never ran.
    """
    ti = client.get_task_instance(dag_id, run_id, task_id, map_index)
    if map_index is None and ti.get("map_index", -1) >= 0:  # pragma: no cover - the API 404s mapped ones
        raise UsageError(f"task {task_id!r} is mapped", hint="pass --map-index N (see `llmops tasks list`)")
    while wait_for_start and not try_number and ti.get("state") not in WRITING_TI_STATES | TERMINAL_TI_STATES:
        time.sleep(LOG_POLL_S)
        ti = client.get_task_instance(dag_id, run_id, task_id, map_index)
    tries = try_number or ti.get("try_number") or 0
    if tries < 1:
        raise UsageError(
            f"task {task_id!r} has no log: it never ran (state {ti.get('state') or 'none'})",
            hint=None if wait_for_start else "add --follow to wait for it to start",
        )
    return ti, TaskTry(dag_id, run_id, task_id, tries, -1 if map_index is None else map_index)


def stream_log(client: RunClient, task: TaskTry, *, follow: bool = False) -> Iterator[list[dict[str, Any]]]:
    """The log in batches of new events; with ``follow``, until the try has ended and its log is complete.

    The server ends a log with no continuation token; while the try may still write, the log is then read
    again from the start, skipping the events already given. A page read with a token repeats the
    "Log message source details" header, which is dropped after the first batch.
    """
    shown = 0
    token = None
    while True:
        batch, nxt = client.get_log(task, token)
        if token is None:
            batch = batch[shown:]
        elif shown:
            batch = without_source_header(batch)
        if batch:
            yield batch
        shown += len(batch)
        if not follow:
            return
        if nxt is None:
            ti = client.get_task_instance(task.dag_id, task.run_id, task.task_id, task.map_index)
            if ti.get("state") not in WRITING_TI_STATES:
                return
        token = nxt
        if not batch or nxt is None:
            time.sleep(LOG_POLL_S)


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
    outcome: dict[str, Any] | None = None  # what a successful run's DAG reported: {"status": "ok" | "partial", ...}
    outcome_error: str | None = None  # why that report could not be read (the run's verdict stands)

    @property
    def state(self) -> str:
        return self.run.get("state") or "unknown"

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    @property
    def partial(self) -> bool:
        """The run succeeded, but its DAG reported skipped inputs or failed rows."""
        return self.succeeded and (self.outcome or {}).get("status") == "partial"

    @property
    def exit_code(self) -> ExitCode:
        """PARTIAL for a partial success, else OK: a failed or unfinished run is an error its caller raises."""
        return ExitCode.PARTIAL if self.partial else ExitCode.OK


def _reported_outcome(client: RunClient, dag_id: str, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the outcome the run's DAG reported, or None; why it could not be read, or None)."""
    try:
        return client.get_run_outcome(dag_id, run_id), None
    except LlmopsError as e:
        return None, e.message


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
                outcome, outcome_error = (
                    _reported_outcome(client, dag_id, run_id) if run.get("state") == "success" else (None, None)
                )
                return WaitResult(run, tis, False, clock() - start, outcome=outcome, outcome_error=outcome_error)
        now = clock()
        if deadline is not None and now >= deadline:
            if run is None:
                raise UnreachableError(unreachable or f"DAG run {run_id!r} could not be read")
            return WaitResult(run, tis, True, now - start, last_unreachable=unreachable)
        sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - now)))


def undeclared_params(dag_id: str, conf: dict[str, Any], declared: dict[str, Any] | None) -> UsageError | None:
    """The error for run conf keys the DAG does not declare as params (a typo would be silently ignored by the
    DAG, which then runs with its default), or None when every key is declared."""
    declared = declared or {}
    unknown = [k for k in conf if k not in declared]
    if not unknown:
        return None
    import difflib

    names = sorted(declared)
    guesses = []
    for k in unknown:
        close = difflib.get_close_matches(k, names, n=1, cutoff=0.6)
        guesses.append(f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k))
    listed = ", ".join(names) if names else "none"
    return UsageError(
        f"DAG {dag_id!r} has no param {', '.join(guesses)}; its params: {listed}",
        hint=f"fix the name (`llmops dags show {dag_id}` describes each param), "
        "or add --allow-unknown-params to pass it in the run conf anyway",
    )


class BackfillClient(RunClient, Protocol):
    def backfill_action(self, backfill_id: int, action: str) -> dict[str, Any]: ...

    def backfill_runs(self, backfill: dict[str, Any]) -> list[dict[str, Any]]: ...


def backfill_paused_error(backfill_id: int) -> UsageError:
    return UsageError(
        f"backfill {backfill_id} is paused: its runs do not start until it is unpaused",
        hint=f"`llmops backfill unpause {backfill_id}`, then `llmops backfill get {backfill_id} --wait`",
    )


@dataclass
class BackfillUpdate:
    elapsed_s: float
    backfill: dict[str, Any] | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    unreachable: str | None = None

    def counts(self) -> dict[str, int]:
        c = Counter(r.get("state") or "none" for r in self.runs)
        return dict(sorted(c.items(), key=lambda kv: _state_rank(kv[0])))


@dataclass
class BackfillWaitResult:
    backfill: dict[str, Any]
    runs: list[dict[str, Any]]
    timed_out: bool
    elapsed_s: float
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> what its DAG reported
    last_unreachable: str | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("state") == "failed"]

    @property
    def partial(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs
            if r.get("state") == "success" and (self.outcomes.get(r["dag_run_id"]) or {}).get("status") == "partial"
        ]

    @property
    def state(self) -> str:
        """success, failed (a run failed), partial (all succeeded, one reported a partial outcome), or the run
        states still open when the wait ended."""
        if self.timed_out:
            return "running"
        if self.failed:
            return "failed"
        return "partial" if self.partial else "success"

    @property
    def exit_code(self) -> ExitCode:
        """PARTIAL for a partial success, else OK: a failed or unfinished backfill is an error its caller raises."""
        return ExitCode.PARTIAL if not self.timed_out and not self.failed and self.partial else ExitCode.OK


def wait_for_backfill(
    client: BackfillClient,
    backfill_id: int,
    *,
    expected_runs: int | None = None,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
    on_update: Callable[[BackfillUpdate], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillWaitResult:
    """Poll a backfill until each of its runs has ended (``expected_runs`` of them, when known: the dry run's
    count), or Airflow marked it completed (a cancel). Unreachable spells are waited through like in
    ``wait_for_run``; a paused backfill, or a paused DAG with queued runs, raises (exit 2) instead of waiting."""
    start = clock()
    deadline = None if timeout_s is None else start + timeout_s
    bf: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    last_key: Any = None
    unreachable: str | None = None
    paused_checked: float | None = None
    while True:
        try:
            bf = client.backfill_action(backfill_id, "get")
            runs = client.backfill_runs(bf)
            unreachable = None
            states = [r.get("state") for r in runs]
            done = bool(runs) and all(s in TERMINAL_RUN_STATES for s in states)
            done = done and (expected_runs is None or len(runs) >= expected_runs or bool(bf.get("completed_at")))
            done = done or (not runs and bool(bf.get("completed_at")))
            if not done and bf.get("is_paused") and not bf.get("completed_at"):
                raise backfill_paused_error(backfill_id)
            if "queued" in states and (paused_checked is None or clock() - paused_checked >= PAUSED_CHECK_S):
                paused_checked = clock()
                if client.get_dag(bf["dag_id"]).get("is_paused"):
                    raise paused_error(bf["dag_id"])
        except LlmopsError as e:
            if not isinstance(e, UnreachableError) and e.exit_code != 1:
                raise
            unreachable, done = e.message, False
            if on_update:
                on_update(BackfillUpdate(clock() - start, bf, runs, unreachable=unreachable))
        else:
            key = tuple((r.get("dag_run_id"), r.get("state")) for r in runs)
            if on_update and key != last_key:
                on_update(BackfillUpdate(clock() - start, bf, runs))
            last_key = key
            if done:
                outcomes = {}
                for r in runs:
                    if r.get("state") == "success":
                        got, _ = _reported_outcome(client, bf["dag_id"], r["dag_run_id"])
                        if got:
                            outcomes[r["dag_run_id"]] = got
                return BackfillWaitResult(bf, runs, False, clock() - start, outcomes)
        now = clock()
        if deadline is not None and now >= deadline:
            if bf is None:
                raise UnreachableError(unreachable or f"backfill {backfill_id} could not be read")
            return BackfillWaitResult(bf, runs, True, now - start, last_unreachable=unreachable)
        sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - now)))
