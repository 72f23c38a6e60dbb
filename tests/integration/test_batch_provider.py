"""`llmops batch --via provider` against the local server's /v1/files and /v1/batches over real HTTP: a kill -9
after submission and a re-run that continues the same job (the server counts job creations), a retried upload,
per-row failures ending as exit 3 with the rows listed, failed rows resubmitted alone, cost at the batch price;
and `--output s3://...` published once (moto's S3 server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llmops_cli.core.batch.inputs import read_rows, write_rows
from llmops_cli.entry import batch as batch_entry
from llmops_cli.errors import ConflictError
from llmops_cli.settings import LLMSettings, Settings
from tests.support.fakes import run_step
from tests.support.openai_server import Fault, last_user_text, llm_env_for, llm_settings_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PIN, POUT = 0.000001, 0.000002
PRICES = {"LLMOPS_LLM_INPUT_COST_PER_TOKEN": str(PIN), "LLMOPS_LLM_OUTPUT_COST_PER_TOKEN": str(POUT)}


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", "batch", *args],
        env={**os.environ, **env, "PYTHONPATH": str(REPO), "NO_COLOR": "1"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_after_submission_a_rerun_continues_the_same_job_and_failed_rows_go_again_alone(openai_server, tmp_path):
    srv = openai_server
    srv.batch_seconds = 600  # the job runs until the test lets it finish
    srv.fail_next_batch_api("500")  # the upload's first try: retried by the client
    srv.add_rule(lambda b: last_user_text(b) == "q7", Fault("500"), times=None)
    n = 500
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"q": f"q{i}"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    env = {**llm_env_for(srv), **PRICES, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
    args = [str(src), "--prompt", "{q}", "--via", "provider", "--poll-interval", "0.1", "-o", str(out), "--json"]

    proc = _cli(args, env, tmp_path)
    deadline = time.time() + 60
    while srv.counters["batches_created"] < 1 and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # polling now
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not out.exists() and srv.counters["batches_created"] == 1
    uploads = srv.records("/v1/files")
    assert [r.status for r in uploads] == [500, 200]  # one retry, one file

    # the job is still running: a DAG sensor's poke (the entry point, in this process) sees it, creates nothing
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        llm=LLMSettings(**llm_settings_for(srv, input_cost_per_token=PIN, output_cost_per_token=POUT)),
    )
    opts = {"prompt": "{q}", "output": str(out)}
    poke = run_step(batch_entry.batch_provider_poll, settings, str(src), **opts)
    assert (poke["done"], poke["requests"], poke["statuses"]) == (False, n, ["in_progress"])
    assert run_step(batch_entry.batch_provider_submit, settings, str(src), **opts)["created"] == 0
    nowait = run_step(batch_entry.batch_provider, settings, str(src), wait=False, **opts)  # --no-wait
    assert (int(nowait.exit_code), nowait.pending, nowait.output) == (3, n, None) and not out.exists()

    srv.batch_seconds = 0  # the provider finishes
    again = _cli(args, env, tmp_path)
    so, se = again.communicate(timeout=120)
    assert again.returncode == 3, se
    rep = json.loads(so)
    assert srv.counters["batches_created"] == 1  # the re-run found the recorded job: no second one
    assert (rep["via"], rep["rows"], rep["answered"], rep["errors"], rep["pending"]) == ("provider", n, n - 1, 1, 0)
    assert rep["error_samples"][0]["status"] == 500 and len(rep["jobs"]) == 1
    rows = read_rows(out)
    assert [r["q"] for r in rows] == [f"q{i}" for i in range(n)]
    assert {r["q"] for r in rows if r["llmops_status"] != "ok"} == {"q7"}
    (err,) = read_rows(tmp_path / "out.errors.jsonl")
    assert err["input"] == {"q": "q7"} and err["status"] == 500
    # cost: the server's usage at half the online price
    tin = sum(r["llmops_input_tokens"] for r in rows)
    tout = sum(r["llmops_output_tokens"] for r in rows)
    assert tin > 0 and tout > 0
    assert rep["cost_total_usd"] == pytest.approx((tin * PIN + tout * POUT) * 0.5, rel=1e-6)

    # the human report lists the failed row; --retry-failed resubmits that row alone
    human = _cli([a for a in args if a != "--json"], env, tmp_path)
    _so, se = human.communicate(timeout=60)
    assert human.returncode == 3
    assert err["llmops_id"] in se and "Traceback" not in se
    srv.reset()
    srv.batch_seconds = 0
    retry = _cli([*args, "--retry-failed"], env, tmp_path)
    so, se = retry.communicate(timeout=60)
    assert retry.returncode == 0, se
    rep = json.loads(so)
    assert srv.counters["batches_created"] == 1 and rep["answered"] == n and rep["calls"] == 1
    (job,) = [j for j in rep["jobs"] if j["requests"] == 1]
    assert job["status"] == "completed"
    assert [last_user_text(b["body"]) for b in _lines_sent(srv)] == ["q7"]
    listed = _cli(["list", "--json"], env, tmp_path)
    so, se = listed.communicate(timeout=60)
    assert listed.returncode == 0 and [j["requests"] for j in json.loads(so)["jobs"]] == [1, n]


def _lines_sent(srv) -> list[dict]:
    (f,) = [f for f in srv.files.values() if f["meta"]["purpose"] == "batch"]
    return [json.loads(x) for x in f["data"].decode().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_results_go_to_s3_once_and_the_input_may_be_a_url(openai_server, tmp_path, monkeypatch):
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        # moto keeps its buckets in process-wide memory: start from none, whatever ran before in this process
        urllib.request.urlopen(urllib.request.Request(f"{aws['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))
        s3.create_bucket(Bucket="team")
        for k, v in aws.items():
            monkeypatch.setenv(k, v)
        s3.put_object(Bucket="team", Key="in/rows.jsonl", Body=b'{"q": "one"}\n{"q": "two"}\n')
        env = {**llm_env_for(openai_server), **PRICES, **aws, "LLMOPS_DATA_DIR": str(tmp_path / "data")}
        args = ["s3://team/in/rows.jsonl", "--prompt", "{q}", "-o", "s3://team/out/rows.jsonl", "--json"]
        first = _cli(args, env, tmp_path)
        so, se = first.communicate(timeout=120)
        assert first.returncode == 0, se
        rep = json.loads(so)
        assert rep["output"] == "s3://team/out/rows.jsonl" and rep["errors_file"] == "s3://team/out/rows.errors.jsonl"
        body = s3.get_object(Bucket="team", Key="out/rows.jsonl")["Body"].read().decode()
        assert [json.loads(x)["llmops_status"] for x in body.splitlines()] == ["ok", "ok"]
        # a second run refuses before any call: an earlier result is never replaced
        with pytest.raises(ConflictError, match="exists already"):
            batch_entry.staged_output("s3://team/out/rows.jsonl")
        assert s3.get_object(Bucket="team", Key="out/rows.jsonl")["Body"].read().decode() == body
        assert openai_server.success_count() == 2
    finally:
        import fsspec

        fsspec.filesystem("s3").clear_instance_cache()
        server.stop()


def test_through_litellms_batch_api_answers_reach_the_answer_log_and_the_cache(openai_server, tmp_path):
    """--client litellm: litellm's files/batches functions against the same routes; a job that expires leaves its
    unrun row an error that --retry-failed sends again alone; each answer read back is an answer-log row of kind
    "batch" and a cache entry, so the same rows online make no call."""
    from llmops_cli.core.feedback.log import AnswerLog

    srv = openai_server
    srv.batch_seconds = 0
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"q": f"q{i}"} for i in range(3)])
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        llm=LLMSettings(**llm_settings_for(srv, input_cost_per_token=PIN, output_cost_per_token=POUT)),
    )
    srv.batch_expire_after = 2  # the provider runs out of time after two lines: the job ends "expired"
    opts = {"prompt": "Say {q}", "via": "provider", "client": "litellm", "poll_interval": 0.05}
    rep = run_step(batch_entry.batch, settings, src, **opts)
    assert (int(rep.exit_code), rep.answered, rep.errors_by_kind, srv.counters["batches_created"]) == (
        3,
        2,
        {"expired": 1},
        1,
    )
    srv.batch_expire_after = None
    rep = run_step(batch_entry.batch, settings, src, retry_failed=True, **opts)  # the expired row alone, again
    assert (int(rep.exit_code), rep.answered, rep.calls, srv.counters["batches_created"]) == (0, 3, 1, 2)
    assert [j["requests"] for j in rep.jobs] == [3, 1] and srv.counters["batch_lines_ok"] == 3
    with AnswerLog.for_data_dir(settings.data_path) as log:
        recorded = log.recent(limit=10, kind="batch")
    assert sorted(r.question for r in recorded) == ["Say q0", "Say q1", "Say q2"]
    online = run_step(batch_entry.batch, settings, src, prompt="Say {q}", output=str(tmp_path / "online.jsonl"))
    assert online.cache_hits == 3 and srv.success_count() == 0
