"""core.orchestration with a fake client and a fake clock: waiting, summaries, failures, log tails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmops_cli.core.orchestration import (
    failed_task_instances,
    find_log_try,
    format_event,
    log_tail,
    stream_log,
    summarize_tasks,
    wait_for_run,
)
from llmops_cli.errors import NotFoundError, UnreachableError, UsageError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class FakeRuns:
    """Scripted answers: each get_run pops the next step (a state, or an exception); tasks follow the state."""

    def __init__(self, steps, logs=None, paused=False, outcome=None):
        self.steps = list(steps)
        self.logs = logs or {}
        self.log_calls = []
        self.paused, self.dag_calls = paused, 0
        self.outcome = outcome

    def get_run_outcome(self, dag_id, run_id):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def get_dag(self, dag_id):
        self.dag_calls += 1
        return {"dag_id": dag_id, "is_paused": self.paused}

    def get_run(self, dag_id, run_id):
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        self.state = step
        return {"dag_id": dag_id, "dag_run_id": run_id, "state": step}

    def list_task_instances(self, dag_id, run_id):
        mapped_state = {"queued": "scheduled", "running": "running", "success": "success", "failed": "failed"}[
            self.state
        ]
        return [{"task_id": "plan", "map_index": -1, "state": "success", "try_number": 1}] + [
            {"task_id": "shard", "map_index": i, "state": "success" if i else mapped_state, "try_number": 2}
            for i in range(3)
        ]

    def get_log(self, task, token=None):
        self.log_calls.append((task.task_id, task.try_number, task.map_index, token))
        pages = self.logs.get((task.task_id, task.map_index), [([], None)])
        return pages[0 if token is None else 1]


def test_summaries_count_mapped_instances_by_state():
    tis = [{"task_id": "plan", "map_index": -1, "state": "success"}] + [
        {"task_id": "shard", "map_index": i, "state": s} for i, s in enumerate(["success", "running", "success", None])
    ]
    plan, shard = summarize_tasks(tis)
    assert not plan.mapped and plan.label() == "success"
    assert shard.mapped and shard.total == 4 and shard.counts == {"success": 2, "running": 1, "none": 1}
    assert shard.label() == "1/4 running, 2/4 success, 1/4 none"


def test_wait_reports_changes_only_and_returns_on_success():
    client, clock, updates = FakeRuns(["queued", "queued", "running", "running", "success"]), Clock(), []
    res = wait_for_run(client, "d", "r", poll_s=0.5, on_update=updates.append, clock=clock, sleep=clock.sleep)
    assert res.succeeded and not res.timed_out
    assert [u.run["state"] for u in updates] == ["queued", "running", "success"]
    assert clock.t == pytest.approx(2.0)  # polled every 0.5 s: the end is seen within one poll


def test_a_successful_run_carries_what_its_dag_reported_and_partial_is_exit_3():
    from llmops_cli.errors import ExitCode

    clock = Clock()
    partial = FakeRuns(["success"], outcome={"status": "partial", "message": "1 of 2 source(s) skipped"})
    res = wait_for_run(partial, "d", "r", clock=clock, sleep=clock.sleep)
    assert res.partial and res.exit_code == ExitCode.PARTIAL and res.outcome["message"] == "1 of 2 source(s) skipped"
    ok = wait_for_run(FakeRuns(["success"], outcome={"status": "ok"}), "d", "r", clock=clock, sleep=clock.sleep)
    assert not ok.partial and ok.exit_code == ExitCode.OK
    # a failed run is not "partial" whatever was reported, and its outcome is not asked for
    failed = wait_for_run(FakeRuns(["failed"], outcome={"status": "partial"}), "d", "r", clock=clock, sleep=clock.sleep)
    assert failed.outcome is None and not failed.partial
    # an unreadable report leaves the verdict standing and says why
    broken = FakeRuns(["success"], outcome=UnreachableError("xcom endpoint down"))
    res = wait_for_run(broken, "d", "r", clock=clock, sleep=clock.sleep)
    assert res.succeeded and res.outcome is None and res.outcome_error == "xcom endpoint down"
    assert res.exit_code == ExitCode.OK


def test_wait_on_a_paused_dag_fails_at_once_with_the_fix():
    from llmops_cli.errors import ExitCode, UsageError

    client, clock = FakeRuns(["queued"], paused=True), Clock()
    with pytest.raises(UsageError) as e:
        wait_for_run(client, "d", "r", timeout_s=60, poll_s=0.5, clock=clock, sleep=clock.sleep)
    assert clock.t == 0 and e.value.exit_code == ExitCode.USAGE
    assert "DAG 'd' is paused" in e.value.message and "llmops dags unpause d" in e.value.hint


def test_wait_asks_about_pause_only_while_queued_and_not_every_poll():
    client, clock = FakeRuns(["queued"] * 30 + ["running", "success"]), Clock()
    assert wait_for_run(client, "d", "r", poll_s=0.5, clock=clock, sleep=clock.sleep).succeeded
    assert client.dag_calls == 3  # 15 s queued, one check every 5 s


def test_wait_times_out_with_the_last_state():
    client, clock = FakeRuns(["running"]), Clock()
    res = wait_for_run(client, "d", "r", timeout_s=3, poll_s=1, clock=clock, sleep=clock.sleep)
    assert res.timed_out and res.state == "running" and clock.t == pytest.approx(3)


def test_wait_survives_an_unreachable_api_server_and_says_so():
    down = UnreachableError("cannot reach the Airflow API server at http://x: is the API server running at http://x?")
    client, clock, updates = FakeRuns(["running", down, down, "running", "failed"]), Clock(), []
    res = wait_for_run(
        client, "d", "r", timeout_s=60, poll_s=1, on_update=updates.append, clock=clock, sleep=clock.sleep
    )
    assert res.state == "failed"
    assert [bool(u.unreachable) for u in updates] == [False, True, True, False, False]
    assert "is the API server running" in updates[1].unreachable


def test_wait_gives_up_at_the_deadline_when_never_reachable():
    down = UnreachableError("cannot reach")
    with pytest.raises(UnreachableError):
        clock = Clock()
        wait_for_run(FakeRuns([down]), "d", "r", timeout_s=5, poll_s=1, clock=clock, sleep=clock.sleep)


def test_wait_does_not_swallow_not_found():
    with pytest.raises(NotFoundError):
        clock = Clock()
        wait_for_run(FakeRuns([NotFoundError("no run")]), "d", "r", timeout_s=5, clock=clock, sleep=clock.sleep)


def test_failed_instances_name_task_map_index_and_try():
    tis = [
        {"task_id": "a", "map_index": -1, "state": "success", "try_number": 1},
        {"task_id": "b", "map_index": 2, "state": "failed", "try_number": 3},
        {"task_id": "c", "map_index": -1, "state": "upstream_failed", "try_number": 0},
    ]
    assert failed_task_instances(tis) == [{"task_id": "b", "map_index": 2, "try_number": 3}]


def test_log_tail_drops_the_source_header_and_follows_tokens():
    header = [
        {"event": "::group::Log message source details"},
        {"event": "/path/to/attempt=1.log"},
        {"event": "::endgroup::"},
    ]
    page1 = header + [
        {"timestamp": "2026-01-01T00:00:00.123456Z", "level": "info", "event": f"line {i}"} for i in range(5)
    ]
    page2 = [
        {
            "timestamp": "2026-01-01T00:00:01Z",
            "level": "error",
            "logger": "task",
            "event": "Task failed",
            "error_detail": [{"exc_type": "ValueError", "exc_value": "bad item"}],
        }
    ]
    client = FakeRuns(["failed"], logs={("b", 2): [(page1, "tok"), (page2, None)]})
    tail = log_tail(client, "d", "r", {"task_id": "b", "map_index": 2, "try_number": 3}, lines=3)
    assert tail == [
        "2026-01-01 00:00:00.123 INFO line 4",
        "2026-01-01 00:00:01 ERROR task: Task failed",
        "    ValueError: bad item",
    ]
    assert client.log_calls == [("b", 3, 2, None), ("b", 3, 2, "tok")]
    assert all("attempt=1.log" not in line for line in tail)


def test_format_event_without_timestamp():
    assert format_event({"event": "plain"}) == "plain"


def test_help_does_not_import_the_airflow_client():
    code = (
        "import sys; from llmops_cli.cli import app; "
        "bad = [m for m in ('airflow_client', 'httpx', 'urllib3') if m in sys.modules]; print(','.join(bad))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert r.returncode == 0, r.stderr
    assert "airflow_client" not in r.stdout


class FakeTaskLog:
    """A task that is running while its log ends twice (no token), then succeeds; the log grows between reads."""

    def __init__(self):
        self.states = ["queued", "running", "running", "success"]
        self.reads = [
            ([{"event": "a"}], None),  # end of log for now, the task still runs: read again from the start
            ([{"event": "a"}, {"event": "b"}], "t1"),
            ([{"event": "::group::Log message source details"}, {"event": "::endgroup::"}, {"event": "c"}], None),
        ]
        self.calls = []

    def get_task_instance(self, dag_id, run_id, task_id, map_index=None):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"task_id": task_id, "map_index": -1, "state": state, "try_number": 1}

    def get_log(self, task, token=None):
        self.calls.append(token)
        return self.reads.pop(0)


def test_follow_waits_for_the_start_and_gives_each_event_once(monkeypatch):
    import llmops_cli.core.orchestration as orch

    naps = []
    monkeypatch.setattr(orch.time, "sleep", naps.append)
    client = FakeTaskLog()
    ti, task = find_log_try(client, "d", "r", "t", wait_for_start=True)
    assert ti["state"] == "running" and (task.try_number, task.map_index) == (1, -1)
    batches = list(stream_log(client, task, follow=True))
    assert [[e["event"] for e in b] for b in batches] == [["a"], ["b"], ["c"]]
    assert client.calls == [None, None, "t1"]
    assert naps == [orch.LOG_POLL_S, orch.LOG_POLL_S]  # once before the start, once after the first end of log


def test_a_task_that_never_ran_has_no_log():
    class Queued(FakeTaskLog):
        def get_task_instance(self, *a, **kw):
            return {"task_id": "t", "map_index": -1, "state": "scheduled", "try_number": 0}

    with pytest.raises(UsageError, match="never ran"):
        find_log_try(Queued(), "d", "r", "t")


def test_undeclared_params_name_the_key_a_guess_and_the_declared_ones():
    from llmops_cli.core.orchestration import undeclared_params

    declared = {"sources": {}, "collection": {}, "chunk_size": {}}
    assert undeclared_params("d", {"sources": ["a"]}, declared) is None
    err = undeclared_params("d", {"chunksize": 3, "zzz": 1}, declared)
    assert err.exit_code == 2
    assert "'chunksize' (did you mean 'chunk_size'?), 'zzz'" in err.message
    assert err.message.endswith("its params: chunk_size, collection, sources")
    assert "its params: none" in undeclared_params("d", {"x": 1}, {}).message


class FakeBackfill(FakeRuns):
    """A backfill whose runs follow ``steps`` (each a list of run states, or an exception); the DAG may be paused."""

    def __init__(self, steps, *, paused=False, completed=False):
        super().__init__(["success"], paused=paused)
        self.bf_steps, self.completed = list(steps), completed

    def backfill_action(self, backfill_id, action):
        step = self.bf_steps.pop(0) if len(self.bf_steps) > 1 else self.bf_steps[0]
        if isinstance(step, BaseException):
            raise step
        self.current = step
        return {"id": backfill_id, "dag_id": "d", "is_paused": False, "completed_at": "t" if self.completed else None}

    def backfill_runs(self, backfill):
        return [{"dag_run_id": f"r{i}", "state": s} for i, s in enumerate(self.current)]


def test_backfill_wait_waits_for_every_expected_run_and_through_an_outage():
    from llmops_cli.core.orchestration import wait_for_backfill

    clock = Clock()
    updates = []
    client = FakeBackfill(
        [["success"], UnreachableError("down"), ["success", "running"], ["success", "success", "failed"]]
    )
    res = wait_for_backfill(client, 1, expected_runs=3, clock=clock, sleep=clock.sleep, on_update=updates.append)
    assert [r["state"] for r in res.runs] == ["success", "success", "failed"] and res.state == "failed"
    assert any(u.unreachable == "down" for u in updates) and not res.timed_out


def test_backfill_wait_on_a_paused_dag_with_queued_runs_says_so():
    from llmops_cli.core.orchestration import wait_for_backfill

    clock = Clock()
    with pytest.raises(UsageError, match="is paused"):
        wait_for_backfill(FakeBackfill([["queued"]], paused=True), 1, clock=clock, sleep=clock.sleep)
    res = wait_for_backfill(FakeBackfill([["running"]]), 1, timeout_s=3, clock=clock, sleep=clock.sleep)
    assert res.timed_out and res.exit_code == 0 and res.state == "running"
