"""`llmops batch` against the local OpenAI-compatible server over real HTTP: faults, kill -9 and resume, cache,
shards, rate limits, CLI exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmops_cli.core.batch.inputs import read_rows, write_rows
from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.entry import batch as batch_entry
from llmops_cli.settings import LLMSettings, Settings
from tests.support.fakes import run_step
from tests.support.net import closed_port
from tests.support.openai_server import Fault, last_user_text, llm_env_for, llm_settings_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
# known prices: the run does not import litellm to look them up (~2 s per subprocess)
PRICES = {"LLMOPS_LLM_INPUT_COST_PER_TOKEN": "0.000001", "LLMOPS_LLM_OUTPUT_COST_PER_TOKEN": "0.000002"}


def _settings(server, tmp_path: Path, **llm) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), llm=LLMSettings(**llm_settings_for(server, **llm)))


def _input(tmp_path: Path, n: int, name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    write_rows(p, [{"q": f"q{i}", "n": i} for i in range(n)])
    return p


def _is(text: str):
    return lambda body: last_user_text(body) == text


@pytest.mark.parametrize("client", ["http", "litellm"])
def test_every_row_ends_answered_or_recorded_despite_faults(openai_server, tmp_path, client):
    srv = openai_server
    srv.latency = 0.02
    srv.add_rule(_is("q1"), Fault("429", retry_after=0.3), times=2)
    srv.add_rule(_is("q2"), Fault("500"), times=1)
    srv.add_rule(_is("q3"), Fault("503", retry_after=None), times=1)
    srv.add_rule(_is("q4"), Fault("hang", seconds=30), times=1)
    srv.add_rule(_is("q5"), Fault("malformed"), times=1)
    srv.add_rule(_is("q6"), Fault("400"), times=None)
    src = _input(tmp_path, 30)
    t0 = time.perf_counter()
    rep = run_step(
        batch_entry.batch,
        _settings(srv, tmp_path),
        src,
        prompt="{q}",
        concurrency=8,
        client=client,
        use_cache=False,
        timeout=1.0,
    )
    assert time.perf_counter() - t0 < 30
    assert (rep.rows, rep.answered, rep.errors, rep.pending) == (30, 29, 1, 0)
    assert int(rep.exit_code) == 3 and rep.retries >= 6
    out = read_rows(rep.output)
    assert [r["q"] for r in out] == [f"q{i}" for i in range(30)]
    assert {r["q"] for r in out if r["llmops_status"] != "ok"} == {"q6"}
    assert all(r["llmops_response"].startswith("reply-") for r in out if r["q"] != "q6")
    (err,) = read_rows(rep.errors_file)
    assert err["input"]["q"] == "q6" and err["status"] == 400 and err["attempts"] == 1
    # the server: every answered row succeeded exactly once; the 400 was not retried
    counts = srv.success_counts_by()
    assert all(counts[f"q{i}"] == 1 for i in range(30) if i != 6) and counts["q6"] == 0
    assert sum(1 for r in srv.records() if last_user_text(r.body) == "q6") == 1
    assert sum(1 for r in srv.records() if last_user_text(r.body) == "q1") == 3


def _run_cli(args: list[str], env: dict[str, str], cwd: Path, **kw) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", "batch", *args],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_kill_9_then_rerun_pays_each_request_once(openai_server, tmp_path):
    srv = openai_server
    fast = 20
    # rows past the first 20 hang in the first run, so the run is killed with work in flight but no answer
    # between the server and the checkpoint (the only window where a call could be paid twice)
    srv.latency = lambda body: 0.02 if int(last_user_text(body)[1:]) < fast else 60.0
    src = _input(tmp_path, 60)
    out = tmp_path / "out.csv"
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    args = [str(src), "--prompt", "{q}", "--no-cache", "--concurrency", "8", "--output", str(out), "--json"]
    proc = _run_cli(args, env, tmp_path)
    deadline = time.time() + 60
    ckpt: list[Path] = []
    while time.time() < deadline:
        ckpt = list((tmp_path / "data" / "batch").glob("*/checkpoints/all.jsonl"))
        if ckpt and len(ckpt[0].read_text().splitlines()) >= fast:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.2)
    assert srv.max_in_flight >= 8 and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not out.exists()
    assert len(ckpt[0].read_text().splitlines()) == fast
    srv.latency = 0.01
    proc2 = _run_cli(args, env, tmp_path)
    stdout, stderr = proc2.communicate(timeout=120)
    assert proc2.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["from_checkpoint"] == fast and report["calls"] == 60 - fast and report["answered"] == 60
    rows = read_rows(out)
    assert len(rows) == 60 and all(r["llmops_status"] == "ok" for r in rows)
    counts = srv.success_counts_by()
    assert sorted(counts) == sorted(f"q{i}" for i in range(60)) and set(counts.values()) == {1}


def test_kill_9_at_an_arbitrary_moment_loses_nothing_and_repeats_at_most_the_calls_in_flight(openai_server, tmp_path):
    srv = openai_server
    srv.latency = 0.03
    concurrency = 8
    src = _input(tmp_path, 300)
    out = tmp_path / "out.jsonl"
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    args = [
        str(src),
        "--prompt",
        "{q}",
        "--no-cache",
        "--concurrency",
        str(concurrency),
        "--output",
        str(out),
        "--json",
    ]
    proc = _run_cli(args, env, tmp_path)
    deadline = time.time() + 60
    while srv.success_count() < 60 and time.time() < deadline:  # killed while answers stream in
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    first = srv.success_count()
    proc2 = _run_cli(args, env, tmp_path)
    stdout, stderr = proc2.communicate(timeout=120)
    assert proc2.returncode == 0, stderr
    rows = read_rows(out)
    assert [r["q"] for r in rows] == [f"q{i}" for i in range(300)] and all(r["llmops_status"] == "ok" for r in rows)
    counts = srv.success_counts_by()
    assert set(counts) == {f"q{i}" for i in range(300)}
    repeated = sum(n - 1 for n in counts.values())
    # exactly-once cannot hold for answers the server sent but the killed client had not yet recorded: at most
    # the calls in flight; everything in the checkpoint was not paid again
    assert repeated <= concurrency and json.loads(stdout)["from_checkpoint"] >= first - concurrency


def test_second_identical_run_is_answered_by_the_cache(openai_server, tmp_path):
    srv = openai_server
    srv.latency = 0.01
    src = _input(tmp_path, 25)
    s = _settings(srv, tmp_path)
    first = run_step(batch_entry.batch, s, src, prompt="Say {q}", output=str(tmp_path / "a.jsonl"), concurrency=4)
    assert first.calls == 25 and first.cache_hits == 0
    seen = len(srv.records())
    second = run_step(
        batch_entry.batch, s, src, prompt="Say {q}", output=str(tmp_path / "b.jsonl"), concurrency=4
    )  # a new run folder
    assert second.calls == 0 and second.cache_hits == 25 and second.from_checkpoint == 0
    assert len(srv.records()) == seen
    assert [r["llmops_response"] for r in read_rows(tmp_path / "a.jsonl")] == [
        r["llmops_response"] for r in read_rows(tmp_path / "b.jsonl")
    ]
    assert all(r["llmops_cached"] for r in read_rows(tmp_path / "b.jsonl"))
    # every call that reached the LLM is in the answer log (kind "batch"), the cache hits are not
    with AnswerLog.for_data_dir(s.data_path) as log:
        recorded = log.recent(limit=100, kind="batch")
    assert len(recorded) == 25 and {r.question for r in recorded} == {f"Say q{i}" for i in range(25)}


def test_shards_for_airflow_then_merge(openai_server, tmp_path):
    srv = openai_server
    src = _input(tmp_path, 40)
    s = _settings(srv, tmp_path)
    opts = {"prompt": "{q}", "output": str(tmp_path / "out.jsonl"), "use_cache": False}
    shards = run_step(batch_entry.batch_plan_shards, s, src, 4, **opts)
    assert [x["shard_index"] for x in shards] == [0, 1, 2, 3] and sum(x["requests"] for x in shards) == 40
    for sh in shards[:3]:
        r = run_step(batch_entry.batch_run_shard, s, src, sh["shard_index"], sh["num_shards"], **opts)
        assert r["requests"] == sh["requests"] and r["answered"] == sh["requests"] and json.dumps(r)
    merged = run_step(batch_entry.batch_merge_shards, s, src, **opts)
    assert merged["pending"] == shards[3]["requests"] and merged["output"] is None
    # a re-triggered run: finished shards call nothing, the missing one runs
    for sh in shards:
        run_step(batch_entry.batch_run_shard, s, src, sh["shard_index"], sh["num_shards"], **opts)
    merged = run_step(batch_entry.batch_merge_shards, s, src, **opts)
    assert merged["answered"] == 40 and merged["exit_code"] == 0 and len(read_rows(merged["output"])) == 40
    assert set(srv.success_counts_by().values()) == {1} and srv.success_count() == 40


def test_rpm_limit_spaces_requests(openai_server, tmp_path):
    srv = openai_server
    src = _input(tmp_path, 20)
    t0 = time.perf_counter()
    rep = run_step(
        batch_entry.batch, _settings(srv, tmp_path), src, prompt="{q}", concurrency=16, rpm=600, use_cache=False
    )
    elapsed = time.perf_counter() - t0
    assert rep.answered == 20
    starts = sorted(r.started for r in srv.records())
    # 600 rpm = 10/s with a burst of 10: the last 10 requests are spread over ~1 s
    assert starts[-1] - starts[0] >= 0.85 and elapsed >= 0.85


def test_structured_output_with_schema(openai_server, tmp_path):
    srv = openai_server
    srv.responder = lambda body: (
        json.dumps({"label": "spam" if "buy" in last_user_text(body) else "ham"})
        if last_user_text(body) != "broken"
        else "I think it is spam"
    )
    src = tmp_path / "in.csv"
    write_rows(src, [{"text": "buy now"}, {"text": "hello"}, {"text": "broken"}])
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"label": {"enum": ["spam", "ham"]}}, "required": ["label"]})
    )
    rep = run_step(
        batch_entry.batch,
        _settings(srv, tmp_path),
        src,
        prompt="{text}",
        schema=str(schema),
        output=str(tmp_path / "o.jsonl"),
    )
    assert (rep.answered, rep.errors) == (2, 1)
    rows = read_rows(tmp_path / "o.jsonl")
    assert [r["llmops_parsed"] for r in rows[:2]] == [{"label": "spam"}, {"label": "ham"}]
    assert rows[2]["llmops_status"] == "error" and "not JSON" in rows[2]["llmops_error"]
    assert srv.records()[0].body["response_format"]["type"] == "json_schema"


def test_cli_exit_codes_json_and_dry_run(openai_server, tmp_path):
    srv = openai_server
    srv.add_rule(_is("q2"), Fault("400"), times=None)
    src = _input(tmp_path, 5)
    env = {
        **llm_env_for(srv),
        "LLMOPS_DATA_DIR": str(tmp_path / "data"),
        "LLMOPS_LLM_INPUT_COST_PER_TOKEN": "0.000001",
        "LLMOPS_LLM_OUTPUT_COST_PER_TOKEN": "0.000002",
    }

    p = _run_cli([str(src), "--prompt", "{q}", "--dry-run", "--json"], env, tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    est = json.loads(out)
    assert est["rows"] == 5 and est["to_run"] == 5 and est["estimated_cost_usd"] > 0 and len(srv.records()) == 0

    p = _run_cli([str(src), "--prompt", "{q}", "--json"], env, tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, err
    doc = json.loads(out)  # exactly one JSON document
    assert doc["answered"] == 4 and doc["errors"] == 1 and doc["cost_usd"] > 0 and doc["exit_code"] == 3

    p = _run_cli([str(src), "--prompt", "{nope}"], env, tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "'nope'" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3

    p = _run_cli([str(tmp_path / "missing.jsonl"), "--prompt", "{q}"], env, tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "does not exist" in " ".join(err.split()) and "Traceback" not in err


def test_wrong_endpoint_stops_the_run_instead_of_failing_every_row(openai_server, tmp_path):
    srv = openai_server
    src = _input(tmp_path, 30)
    env = {
        **llm_env_for(srv),
        **PRICES,
        "LLMOPS_DATA_DIR": str(tmp_path / "data"),
        "LLMOPS_LLM_API_BASE": srv.base_url + "/nope",
    }
    p = _run_cli([str(src), "--prompt", "{q}", "--concurrency", "2"], env, tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 9 and "not found" in " ".join(err.split()) and "Traceback" not in err
    assert len(srv.log) <= 2


@pytest.mark.parametrize(
    "kind,status,retryable",
    [
        ("429", 429, True),
        ("500", 500, True),
        ("503", 503, True),
        ("400", 400, False),
        ("401", 401, False),
        ("malformed", 502, True),
        ("hang", 408, True),
    ],
)
def test_lean_http_client_translates_faults_like_litellm(openai_server, kind, status, retryable):
    from llmops_cli.adapters.llm.openai_http import OpenAIHTTP
    from llmops_cli.core.ports import LLMCallError
    from tests.support.openai_server import TEST_API_KEY

    openai_server.fail_next(kind, retry_after=2, seconds=10)
    llm = OpenAIHTTP(
        "openai/test-model",
        api_base=openai_server.base_url,
        api_key=TEST_API_KEY,
        timeout=0.5,
        max_retries=0,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
    )
    with pytest.raises(LLMCallError) as ei:
        llm.complete([{"role": "user", "content": "x"}])
    assert (ei.value.status, ei.value.retryable) == (status, retryable)
    if kind == "429":
        assert ei.value.retry_after == 2
    assert TEST_API_KEY not in ei.value.message
    c = llm.complete([{"role": "user", "content": "hello there"}])
    assert (
        c.text.startswith("reply-") and c.input_tokens == 3 and c.cost == pytest.approx(3e-6 + c.output_tokens * 2e-6)
    )
    assert openai_server.records()[-1].authorized and openai_server.records()[-1].body["model"] == "test-model"


@pytest.mark.parametrize("client", ["http", "litellm"])
def test_an_unreachable_endpoint_exits_7_and_a_plain_rerun_continues(openai_server, tmp_path, client):
    srv = openai_server
    src = _input(tmp_path, 12)
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    args = [str(src), "--prompt", "{q}", "--concurrency", "4", "--max-attempts", "2", "--client", client, "--json"]
    down = {**env, "LLMOPS_LLM_API_BASE": f"http://127.0.0.1:{closed_port()}/v1"}
    p = _run_cli(args, down, tmp_path)
    out, err = p.communicate(timeout=120)
    p_err = " ".join(err.split())
    assert p.returncode == 7, err
    assert "not reachable" in p_err and "re-run" in p_err and "Traceback" not in err
    # under --json the error is also a JSON document on stdout (the machine contract, docs/json.md)
    doc = json.loads(out)
    assert doc["exit_code"] == 7 and "not reachable" in doc["error"] and "re-run" in doc["hint"]
    ckpt = list((tmp_path / "data" / "batch").glob("*/checkpoints/*.jsonl"))
    assert all(not f.read_text().strip() for f in ckpt)  # no row recorded as failed
    assert not (tmp_path / "in.results.jsonl").exists()
    p = _run_cli(args, env, tmp_path)  # the same command once the server is up: no --retry-failed
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert json.loads(out)["answered"] == 12 and srv.success_count() == 12


@pytest.mark.parametrize("client", ["http", "litellm"])
def test_a_rejected_key_stops_the_batch_with_exit_8(openai_server, tmp_path, client):
    srv = openai_server
    srv.responder = lambda body: Fault("401")
    src = _input(tmp_path, 20)
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    p = _run_cli([str(src), "--prompt", "{q}", "--concurrency", "2", "--client", client], env, tmp_path)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 8 and "rejected the credentials" in err and "Traceback" not in err, err
    assert len(srv.records()) <= 2  # stopped at once, no retries, not 20 failed rows


def test_a_batch_where_every_row_failed_exits_1_and_keeps_the_good_results(openai_server, tmp_path):
    srv = openai_server
    src = _input(tmp_path, 5)
    out_file = tmp_path / "labels.csv"
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    p = _run_cli([str(src), "--prompt", "{q}", "-o", str(out_file)], env, tmp_path)
    assert p.wait(120) == 0
    good = out_file.read_bytes()
    srv.responder = lambda body: Fault("400")
    p = _run_cli([str(src), "--prompt", "label {q}", "-o", str(out_file)], env, tmp_path)  # another prompt: another run
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert out_file.read_bytes() == good
    msg = " ".join(err.split())
    assert "no row was answered" in msg and str(out_file) in msg
