"""Airflow commands without a server: conf building, run-param mapping, DAG files' plumbing, `dags path`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops_cli.cli.airflow_trigger_cmd import build_conf, parse_iso_datetime
from llmops_cli.entry.dag_support import (
    collection_from_events,
    collection_from_uri,
    collection_uri,
    settings_from_params,
    write_report,
)
from llmops_cli.errors import InputError, UsageError


def test_conf_from_json_file_and_params(tmp_path):
    f = tmp_path / "conf.json"
    f.write_text('{"sources": ["a"], "shards": 2}')
    assert build_conf(None, f, ["shards=3", 'glob=["*.md"]', "collection=docs", "cleanup=full", "flag=true"]) == {
        "sources": ["a"],
        "shards": 3,
        "glob": ["*.md"],
        "collection": "docs",
        "cleanup": "full",
        "flag": True,
    }
    y = tmp_path / "conf.yaml"
    y.write_text("sources: [b]\n")
    assert build_conf(None, y, None) == {"sources": ["b"]}


def test_conf_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="exclusive"):
        build_conf("{}", tmp_path / "x.json", None)
    with pytest.raises(UsageError, match="not valid JSON"):
        build_conf("{nope", None, None)
    with pytest.raises(UsageError, match="JSON object"):
        build_conf("[1, 2]", None, None)
    with pytest.raises(UsageError, match="key=value"):
        build_conf(None, None, ["novalue"])
    with pytest.raises(InputError, match="missing.json"):
        build_conf(None, tmp_path / "missing.json", None)


def test_logical_date_parsing():
    assert parse_iso_datetime("2026-01-31T12:00:00Z", "--logical-date").isoformat() == "2026-01-31T12:00:00+00:00"
    assert parse_iso_datetime("2026-01-31", "--logical-date").tzinfo is not None
    with pytest.raises(UsageError, match="ISO 8601"):
        parse_iso_datetime("yesterday", "--logical-date")


def test_run_params_map_to_settings_keys(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in ("LLMOPS_CONFIG", "LLMOPS_STORE_COLLECTION", "LLMOPS_CHUNKING_SIZE"):
        monkeypatch.delenv(k, raising=False)
    s = settings_from_params(
        {
            "collection": "kb1",
            "chunk_size": 128,
            "chunk_overlap": 16,
            "chunker": "tokens",
            "sources": ["x"],
            "cleanup": "full",
            "k": None,
        }
    )
    assert (s.store.collection, s.chunking.size, s.chunking.overlap, s.chunking.strategy) == ("kb1", 128, 16, "tokens")
    monkeypatch.setenv("LLMOPS_STORE_COLLECTION", "from-env")
    assert settings_from_params({"collection": None}).store.collection == "from-env"  # a null param is "not given"


def test_asset_uris_round_trip():
    uri = collection_uri("airflow-docs")
    assert uri == "llmops://collections/airflow-docs"
    assert collection_from_uri(uri) == "airflow-docs"
    assert collection_from_uri("s3://bucket/x") is None

    class A:
        uri = "llmops://collections/kb"

    assert collection_from_events({A(): []}) == "kb"
    assert collection_from_events(None) is None


def test_reports_are_written_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_DATA_DIR", str(tmp_path / "data"))
    s = settings_from_params({})
    path = Path(write_report(s, "llmops_eval", "manual__2026-01-01T00:00:00+00:00", {"hit_rate": 1.0}))
    assert path.parent == tmp_path / "data" / "airflow-reports" / "llmops_eval"
    assert json.loads(path.read_text()) == {"hit_rate": 1.0}


def test_dags_path_lists_the_shipped_dags():
    from llmops_cli.cli.app import app

    r = CliRunner().invoke(app, ["dags", "path", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {"llmops_ingest", "llmops_eval", "llmops_batch_inference"} <= set(doc["dags"])
    assert Path(doc["path"], "llmops_ingest.py").is_file()


def test_shipped_dags_stay_thin():
    """DAG files hold no logic of their own: they import the entry layer (steps, dag_support), never adapters or
    core."""
    import llmops_cli

    for f in (Path(llmops_cli.__file__).parent / "dags").glob("llmops_*.py"):
        text = f.read_text()
        assert "llmops_cli.entry" in text, f.name
        assert "llmops_cli.core" not in text and "llmops_cli.wiring" not in text, f.name


class FakeAirflow:
    """A stand-in for AirflowClient: a run that goes queued -> running -> ``final``."""

    def __init__(self, final: str = "success", polls_until_end: int = 2, paused: bool = False):
        self.final, self.left, self.triggered, self.paused = final, polls_until_end, [], paused
        self.outcome = None
        self.params = {"n": {"value": 3, "schema": {"type": "integer"}}, "collection": {"value": None}}
        self.budget: float | None = None

    def set_budget(self, seconds):
        self.budget = seconds

    def allow(self, seconds):
        pass

    def get_dag(self, dag_id):
        return {"dag_id": dag_id, "is_paused": self.paused, "params": self.params}

    def get_run_outcome(self, dag_id, run_id):
        return self.outcome

    def set_paused(self, dag_id, paused):
        self.paused = paused
        return self.get_dag(dag_id)

    def trigger(self, dag_id, *, conf=None, run_id=None, logical_date=None, note=None):
        self.triggered.append({"dag_id": dag_id, "conf": conf, "run_id": run_id, "note": note})
        return {"dag_run_id": run_id or "manual__x", "state": "queued"}

    def get_run(self, dag_id, run_id):
        self.left -= 1
        state = "running" if self.left > 0 or self.final == "never" else self.final
        return {
            "dag_run_id": run_id,
            "state": state,
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": None if state == "running" else "2026-01-01T00:00:05Z",
        }

    def list_task_instances(self, dag_id, run_id):
        done = self.left <= 0 and self.final != "never"
        return [
            {
                "task_id": "work",
                "map_index": i,
                "try_number": 1,
                "state": ("failed" if (i == 1 and self.final == "failed") else "success") if done else "running",
            }
            for i in range(3)
        ]

    def get_log(self, task, token=None):
        return [{"event": f"boom in {task.task_id}[{task.map_index}]", "level": "error"}], None


def _invoke(monkeypatch, fake, *args):
    import llmops_cli.cli.airflow_watch as watch
    from llmops_cli.cli.app import app

    monkeypatch.setattr(watch, "connect", lambda url=None: fake)
    import llmops_cli.core.orchestration as orch

    monkeypatch.setattr(orch.time, "sleep", lambda s: None)
    return CliRunner().invoke(app, list(args))


def test_trigger_wait_success_prints_one_json_document(monkeypatch):
    fake = FakeAirflow("success")
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "-p", "n=3", "--run-id", "r1", "--wait", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["state"] == "success" and doc["run_id"] == "r1"
    assert doc["tasks"] == [{"task_id": "work", "mapped": True, "total": 3, "states": {"success": 3}}]
    assert fake.triggered[0]["conf"] == {"n": 3}


def test_trigger_wait_failed_run_exits_5_with_the_log_tail(monkeypatch):
    r = _invoke(monkeypatch, FakeAirflow("failed"), "trigger-dag", "d", "--wait")
    assert r.exception.exit_code == 5  # app.main() turns it into the exit code (CliRunner bypasses main)
    assert "work [map index 1] (try 1)" in r.exception.message
    assert "work [map index 1], try 1" in r.stderr
    assert "boom in work[1]" in r.stderr


def test_trigger_wait_on_a_paused_dag_exits_2_at_once_without_a_run(monkeypatch):
    fake = FakeAirflow("success", paused=True)
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "--wait")
    assert r.exception.exit_code == 2 and "is paused" in r.exception.message
    assert "--unpause" in r.exception.hint and "llmops dags unpause d" in r.exception.hint
    assert fake.triggered == []  # no run left queued behind


def test_trigger_unpause_unpauses_then_waits(monkeypatch):
    fake = FakeAirflow("success", paused=True)
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "--wait", "--unpause")
    assert r.exit_code == 0, r.output
    assert not fake.paused and len(fake.triggered) == 1 and "unpaused d" in r.stderr


def test_trigger_without_wait_on_a_paused_dag_warns(monkeypatch):
    r = _invoke(monkeypatch, FakeAirflow(paused=True), "trigger-dag", "d")
    assert r.exit_code == 0 and "is paused: the run stays queued" in r.stderr


def test_a_run_whose_dag_reports_a_partial_outcome_exits_3(monkeypatch):
    fake = FakeAirflow("success")
    fake.outcome = {"status": "partial", "message": "2 of 9 source(s) skipped: docs/bad.pdf (not a PDF)"}
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "--wait", "--json")
    assert r.exit_code == 3 and "docs/bad.pdf (not a PDF)" in r.stderr
    assert "error:" not in r.stderr  # a finished run: warned about, not reported as an error
    assert json.loads(r.stdout)["outcome"]["status"] == "partial"  # the one JSON document still comes first
    fake = FakeAirflow("success")
    fake.outcome = {"status": "ok", "message": ""}
    assert _invoke(monkeypatch, fake, "runs", "wait", "d", "r1").exit_code == 0


def test_trigger_wait_timeout_exits_6(monkeypatch):
    r = _invoke(monkeypatch, FakeAirflow("never"), "trigger-dag", "d", "--wait", "--timeout", "0")
    assert r.exception.exit_code == 6 and "still running" in r.exception.message


def test_profiles_and_flags_choose_the_connection(monkeypatch, tmp_path):
    from llmops_cli.cli.airflow_watch import connect
    from llmops_cli.cli.state import AppState, set_state

    for k in [k for k in __import__("os").environ if k.startswith("LLMOPS_")]:
        monkeypatch.delenv(k)
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text(
        "airflow:\n  profiles:\n    prod:\n      url: https://airflow.prod.example\n      username: ci\n"
        "      password: from-file\n      ca_bundle: /etc/ca.pem\n"
    )
    set_state(AppState(config=str(cfg), profile="prod"))
    try:
        c = connect()
        assert (c.url, c.username, c.verify_tls, c.ca_bundle) == (
            "https://airflow.prod.example",
            "ci",
            True,
            "/etc/ca.pem",
        )
        assert "from-file" not in repr(c)
        monkeypatch.setenv("LLMOPS_AIRFLOW_TOKEN", "env-token")
        assert connect("http://127.0.0.1:9999").url == "http://127.0.0.1:9999"  # --url beats the profile
        set_state(AppState(config=str(cfg), profile="staging"))
        with pytest.raises(Exception, match="profile 'staging' is not defined"):
            connect()
    finally:
        set_state(AppState())


class FakeLogs:
    """A task queued, then running (log pages with continuation tokens), then done (no token: end of log)."""

    def __init__(self):
        self.states = ["queued", "running", "success"]
        self.pages = {
            None: (
                [
                    {"event": "::group::Log message source details"},
                    {"event": "/x.log"},
                    {"event": "::endgroup::"},
                    {"event": "tick 0"},
                ],
                "t1",
            ),
            "t1": ([{"event": "tick 1"}], "t2"),
            "t2": (
                [
                    {"event": "::group::Log message source details"},
                    {"event": "/x.log"},
                    {"event": "::endgroup::"},
                    {"event": "tick 2"},
                    {"event": "done"},
                ],
                None,
            ),
        }

    def get_task_instance(self, dag_id, run_id, task_id, map_index=None):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"task_id": task_id, "map_index": -1, "state": state, "try_number": 1}

    def get_log(self, task, token=None):
        return self.pages[token]


def test_logs_follow_waits_for_the_start_and_prints_each_line_once(monkeypatch):
    import time as _time

    monkeypatch.setattr(_time, "sleep", lambda s: None)
    r = _invoke(monkeypatch, FakeLogs(), "logs", "d", "r", "t", "--follow")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("tick", "done"))]
    assert lines == ["tick 0", "tick 1", "tick 2", "done"]
    assert r.stdout.count("Log message source details") == 1


def test_trigger_json_names_the_run_run_id(monkeypatch):
    r = _invoke(monkeypatch, FakeAirflow(), "trigger-dag", "d", "--run-id", "r9", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["run_id"] == "r9" and "dag_run_id" not in doc


def test_an_undeclared_param_is_refused_with_a_guess_unless_allowed(monkeypatch):
    fake = FakeAirflow()
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "-p", "colection=docs")
    assert r.exception.exit_code == 2
    assert "'colection' (did you mean 'collection'?)" in r.exception.message
    assert "its params: collection, n" in r.exception.message and "--allow-unknown-params" in r.exception.hint
    assert fake.triggered == []  # refused before a run exists
    r = _invoke(monkeypatch, fake, "trigger-dag", "d", "-p", "colection=docs", "--allow-unknown-params")
    assert r.exit_code == 0, r.output
    assert fake.triggered[0]["conf"] == {"colection": "docs"}


def test_timeout_is_the_budget_of_every_call_and_a_wait_gets_a_little_slack(monkeypatch):
    fake = FakeAirflow()
    assert _invoke(monkeypatch, fake, "trigger-dag", "d", "--timeout", "4").exit_code == 0
    assert fake.budget == 4
    assert _invoke(monkeypatch, fake, "runs", "wait", "d", "r", "--timeout", "4").exit_code == 0
    assert 4 < fake.budget <= 6


class FakeRunOps(FakeAirflow):
    """Run operations on top of FakeAirflow: a run still running (one task running, one not started)."""

    def __init__(self, state="running"):
        super().__init__("never")
        self.state, self.patched, self.deleted, self.listed = state, [], [], []
        self.outcome = {"status": "ok", "message": "", "summary": {"chunks_added": 7}}

    def get_run(self, dag_id, run_id):
        return {"dag_id": dag_id, "dag_run_id": run_id, "state": self.state, "note": "n0"}

    def list_task_instances(self, dag_id, run_id):
        return [
            {"task_id": "a", "map_index": -1, "state": "success", "try_number": 1, "dag_run_id": run_id},
            {"task_id": "b", "map_index": -1, "state": "running", "try_number": 1, "dag_run_id": run_id},
            {"task_id": "c", "map_index": -1, "state": None, "try_number": 0, "dag_run_id": run_id},
        ]

    def patch_run(self, dag_id, run_id, *, state=None, note=None):
        self.patched.append({"state": state, "note": note})
        return {"dag_id": dag_id, "dag_run_id": run_id, "state": state or self.state, "note": note}

    def delete_run(self, dag_id, run_id):
        self.deleted.append(run_id)

    def list_runs(self, dag_id, **kw):
        self.listed.append((dag_id, kw))
        return [{"dag_id": "d1", "dag_run_id": "r1", "state": "success"}]


def test_runs_get_shows_what_the_run_reported(monkeypatch):
    r = _invoke(monkeypatch, FakeRunOps("success"), "runs", "get", "d", "r1", "--json")
    doc = json.loads(r.stdout)
    assert doc["run_id"] == "r1" and doc["outcome"]["summary"] == {"chunks_added": 7}
    human = _invoke(monkeypatch, FakeRunOps("success"), "runs", "get", "d", "r1")
    assert "outcome: ok" in human.stdout and "chunks_added: 7" in human.stdout


def test_runs_cancel_previews_needs_yes_then_marks_the_run_failed(monkeypatch):
    fake = FakeRunOps()
    preview = json.loads(_invoke(monkeypatch, fake, "runs", "cancel", "d", "r1", "--dry-run", "--json").stdout)
    assert not preview["cancelled"] and [t["task_id"] for t in preview["task_instances"]] == ["b", "c"]
    r = _invoke(monkeypatch, fake, "runs", "cancel", "d", "r1")
    assert r.exception.exit_code == 2 and "--yes" in r.exception.hint and fake.patched == []
    done = json.loads(_invoke(monkeypatch, fake, "runs", "cancel", "d", "r1", "--yes", "--json").stdout)
    assert (
        done["cancelled"] and done["run"]["state"] == "failed" and fake.patched == [{"state": "failed", "note": None}]
    )
    ended = _invoke(monkeypatch, FakeRunOps("success"), "runs", "cancel", "d", "r1", "--yes")
    assert ended.exit_code == 0 and "already ended (success)" in ended.stderr


def test_runs_delete_needs_yes_and_runs_note_edits_the_note(monkeypatch):
    fake = FakeRunOps("failed")
    r = _invoke(monkeypatch, fake, "runs", "delete", "d", "r1")
    assert r.exception.exit_code == 2 and fake.deleted == []
    assert json.loads(_invoke(monkeypatch, fake, "runs", "delete", "d", "r1", "-y", "--json").stdout)["deleted"]
    assert fake.deleted == ["r1"]
    doc = json.loads(_invoke(monkeypatch, fake, "runs", "note", "d", "r1", "checked by CI", "--json").stdout)
    assert doc["note"] == "checked by CI" and fake.patched[-1] == {"state": None, "note": "checked by CI"}


def test_runs_list_without_a_dag_lists_every_dag_between_dates(monkeypatch):
    fake = FakeRunOps()
    r = _invoke(monkeypatch, fake, "runs", "list", "--since", "2026-01-01", "--until", "2026-01-02T00:00:00Z")
    assert r.exit_code == 0 and "d1" in r.stdout
    dag_id, kw = fake.listed[0]
    assert dag_id is None and kw["since"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert json.loads(_invoke(monkeypatch, fake, "runs", "list", "--json").stdout)[0]["run_id"] == "r1"
    bad = _invoke(monkeypatch, fake, "runs", "list", "--since", "last week")
    assert bad.exception.exit_code == 2 and "--since" in bad.exception.message


def test_xcom_get_prints_the_value_alone_or_the_entry(monkeypatch):
    class Fake(FakeAirflow):
        def get_xcom(self, dag_id, run_id, task_id, *, key, map_index):
            self.asked = (task_id, key, map_index)
            return {"map_index": map_index if map_index is not None else -1, "value": {"total": 30}}

    fake = Fake()
    r = _invoke(monkeypatch, fake, "xcom", "get", "d", "r1", "square", "--map-index", "2")
    assert json.loads(r.stdout) == {"total": 30} and fake.asked == ("square", "return_value", 2)
    doc = json.loads(_invoke(monkeypatch, fake, "xcom", "get", "d", "r1", "t", "--key", "k", "--json").stdout)
    assert doc["run_id"] == "r1" and doc["key"] == "k" and doc["value"] == {"total": 30}


class FakeBackfills(FakeAirflow):
    """A backfill of three logical dates whose runs go queued -> running -> ``final`` (one state per run)."""

    def __init__(self, finals=("success", "success", "success"), *, bf_paused=False, outcomes=None):
        super().__init__()
        self.finals, self.polls, self.bf_paused, self.outcomes = list(finals), 0, bf_paused, outcomes or {}
        self.created = []

    def backfill_dry_run(self, dag_id, start, end, **kw):
        return [{"logical_date": f"2026-01-0{i + 1}T00:00:00Z"} for i in range(len(self.finals))]

    def create_backfill(self, dag_id, start, end, **kw):
        self.created.append({"dag_id": dag_id, "from": start, "to": end, **kw})
        return {"id": 7, "dag_id": dag_id, "from_date": start.isoformat(), "to_date": end.isoformat()}

    def backfill_action(self, backfill_id, action):
        self.polls += 1
        return {"id": backfill_id, "dag_id": "d", "is_paused": self.bf_paused, "completed_at": None}

    def backfill_runs(self, backfill):
        done = self.polls > 2
        return [
            {
                "dag_run_id": f"backfill__2026-01-0{i + 1}",
                "logical_date": f"2026-01-0{i + 1}",
                "state": f if done else "running",
            }
            for i, f in enumerate(self.finals)
        ]

    def get_run_outcome(self, dag_id, run_id):
        return self.outcomes.get(run_id)


def _backfill(monkeypatch, fake, *extra):
    return _invoke(
        monkeypatch, fake, "backfill", "create", "d", "--from", "2026-01-01", "--to", "2026-01-03", "--wait", *extra
    )


def test_backfill_create_wait_succeeds_with_each_run(monkeypatch):
    fake = FakeBackfills()
    r = _backfill(monkeypatch, fake, "--json", "--reprocess-behavior", "failed", "--max-active-runs", "2")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["backfill_id"] == 7 and doc["state"] == "success" and len(doc["runs"]) == 3
    assert fake.created[0]["reprocess"] == "failed" and fake.created[0]["max_active_runs"] == 2


def test_backfill_exit_codes_match_trigger_wait(monkeypatch):
    failed = _backfill(monkeypatch, FakeBackfills(("success", "failed", "success")))
    assert failed.exception.exit_code == 5 and "1 of 3 run(s) failed: backfill__2026-01-02" in failed.exception.message
    partial = FakeBackfills(outcomes={"backfill__2026-01-03": {"status": "partial", "message": "1 row failed"}})
    r = _backfill(monkeypatch, partial)
    assert r.exit_code == 3 and "1 row failed" in r.stderr
    paused = _backfill(monkeypatch, FakeBackfills(bf_paused=True))
    assert paused.exception.exit_code == 2 and "llmops backfill unpause 7" in paused.exception.hint
    bad = _backfill(monkeypatch, FakeBackfills(), "--reprocess-behavior", "sometimes")
    assert bad.exception.exit_code == 2
    dry = _invoke(
        monkeypatch,
        FakeBackfills(),
        "backfill",
        "create",
        "d",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03",
        "--dry-run",
        "--json",
    )
    assert json.loads(dry.stdout)["logical_dates"][0] == "2026-01-01T00:00:00Z"
    made = _invoke(
        monkeypatch, FakeBackfills(), "backfill", "create", "d", "--from", "2026-01-01", "--to", "2026-01-03"
    )
    assert made.exit_code == 0 and made.stdout.strip() == "7" and "backfill get 7 --wait" in made.stderr
    doc = json.loads(
        _invoke(
            monkeypatch,
            FakeBackfills(),
            "backfill",
            "create",
            "d",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
            "--json",
        ).stdout
    )
    assert doc["backfill_id"] == doc["id"] == 7 and len(doc["logical_dates"]) == 3


def test_eval_and_feedback_dags_report_their_outcome_in_the_shape_of_the_others():
    from llmops_cli.entry.dag_support import eval_outcome, eval_summary, feedback_outcome, reported

    check = {"collection": "kb", "kind": "retrieval_check", "questions": 2, "answered": 2, "hit_rate": 1.0, "rows": []}
    s = eval_summary(check, "/r/1.json")
    assert s == {**{k: v for k, v in check.items() if k != "rows"}, "report": "/r/1.json"}
    assert set(reported(eval_outcome(s), s)) == {"status", "message", "summary"}

    gate = {"metric": "hit@5", "check": "0.50 < 0.90", "passed": False}
    full = {
        "config": {"collection": "kb"},
        "rows": [{}] * 4,
        "metrics": {"hit@5": 0.5},
        "gates": [gate],
        "error_rows": 1,
        "run_id": 12,
    }
    s = eval_summary(full, "/r/2.json")
    assert (s["collection"], s["questions"], s["metrics"], s["eval_run_id"]) == ("kb", 4, {"hit@5": 0.5}, 12)
    assert eval_outcome(s) == {"status": "failed", "message": "quality gate(s) failed: hit@5 0.50 < 0.90"}
    s["gates"] = [{**gate, "passed": True}]
    assert eval_outcome(s)["status"] == "partial" and "1 of 4 questions had errors" in eval_outcome(s)["message"]

    done = {"answers": 10, "reviewed": 10, "errors": 0, "failed": 0, "promoted": 6, "removed": 1}
    assert feedback_outcome(done, 10) == {"status": "ok", "message": ""}
    some = {**done, "reviewed": 8, "failed": 2}
    assert feedback_outcome(some, 10)["message"] == "2 of 10 answer(s) left unreviewed (2 whose judge call failed)"
    lost = {**done, "answers": 5, "reviewed": 5}  # one batch of 5 failed for good: no report from it
    assert "5 in review batches that failed" in feedback_outcome(lost, 10)["message"]


def test_a_config_named_by_a_run_gives_settings_not_a_project_folder(monkeypatch, tmp_path):
    """The config a run names sits in a folder every worker reads (often read-only): the task's reports and caches
    (relative data_dir) stay in the worker's project folder, never beside it."""
    shared, worker = tmp_path / "shared-inputs", tmp_path / "worker"
    shared.mkdir()
    worker.mkdir()
    cfg = shared / "judge.yaml"
    cfg.write_text("feedback:\n  judge_model: openai/judge\n")
    monkeypatch.chdir(worker)
    for k in ("LLMOPS_CONFIG", "LLMOPS_DATA_DIR", "LLMOPS_PROJECT_DIR"):
        monkeypatch.delenv(k, raising=False)
    s = settings_from_params({"config": str(cfg)})
    assert s.feedback.judge_model == "openai/judge"
    assert s.data_path == (worker / ".llmops").resolve()
    monkeypatch.setenv("LLMOPS_PROJECT_DIR", str(tmp_path / "project"))
    assert settings_from_params({"config": str(cfg)}).data_path == (tmp_path / "project" / ".llmops").resolve()
    # the CLI keeps its rule: a config file's folder is its project
    from llmops_cli.settings import load_settings

    monkeypatch.delenv("LLMOPS_PROJECT_DIR")
    assert load_settings(str(cfg)).settings.data_path == (shared / ".llmops").resolve()
