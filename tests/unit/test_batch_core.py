"""Batch core on fakes: rate limiter math, retry policy, ids, checkpoint, resume, validation, outputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmops_cli.core.batch.checkpoint import CheckpointWriter, load_records
from llmops_cli.core.batch.inputs import read_rows, write_rows
from llmops_cli.core.batch.ratelimit import RateLimiter, TokenBucket
from llmops_cli.core.batch.requests import Template, build_requests, load_template, shard_of
from llmops_cli.core.batch.retry import RetryPolicy
from llmops_cli.core.batch.run import BatchOptions, estimate, execute, plan_shards, prepare
from llmops_cli.core.batch.validation import AnswerInvalid, SchemaValidator
from llmops_cli.core.ports import LLM, Completion, LLMCallError
from llmops_cli.errors import ConflictError, ExitCode, InputError, LlmopsError, UsageError

# --- rate limiter ---


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s


def test_request_bucket_spaces_calls_at_the_rate():
    clock = FakeClock()
    lim = RateLimiter(rpm=120, clock=clock)  # 2 per second, burst of 2
    waits = [lim.reserve(0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5])
    clock.t += 100  # idle: the bucket refills to its capacity, not beyond
    assert [lim.reserve(0) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


def test_token_bucket_oversized_request_waits_for_a_full_bucket_not_forever():
    b = TokenBucket(6000, now=0.0)  # 100 tokens/s, capacity 100
    assert b.reserve(1000, 0.0) == 0.0  # bucket full: goes into debt
    assert b.reserve(10, 0.0) == pytest.approx((10 + 900) / 100)
    b2 = TokenBucket(6000, now=0.0)
    assert [b2.reserve(50, 0.0) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


def test_limiter_long_run_rate_and_settle_and_block():
    clock = FakeClock()
    lim = RateLimiter(rpm=60, tpm=600, clock=clock, sleep=clock.sleep)

    async def go():
        start = clock.t
        for _ in range(30):
            await lim.acquire(10)
        return clock.t - start

    elapsed = asyncio.run(go())
    assert elapsed == pytest.approx(29.0)  # 60 rpm: one per second after the first
    lim2 = RateLimiter(tpm=600, clock=clock)
    lim2.reserve(10)
    lim2.settle(10, 2)  # used fewer than reserved: refund
    assert lim2.tokens.level == pytest.approx(8)
    lim2.settle(2, 12)  # used more: charged
    assert lim2.tokens.level == pytest.approx(-2)
    lim2.tokens.level = 9
    lim2.settle(10, 0)  # a refund never fills beyond capacity
    assert lim2.tokens.level == pytest.approx(lim2.tokens.capacity)
    lim2.block_for(5)
    assert lim2.reserve(1) == pytest.approx(5.0)


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(0, now=0)


# --- retry policy ---


def test_retry_backoff_grows_and_caps_and_honours_retry_after():
    p = RetryPolicy(max_attempts=5, base_delay_s=0.5, multiplier=2, max_delay_s=3, jitter=0.25, rand=lambda: 0.0)
    assert [p.delay(a) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert p.delay(1, retry_after=7) == 7  # never earlier than the server asked
    assert p.delay(3, retry_after=0.1) == 2.0  # backoff still applies when it is longer
    assert p.delay(1, retry_after=10_000) == p.max_retry_after_s
    assert RetryPolicy(jitter=0.25, rand=lambda: 1.0).delay(1) == pytest.approx(0.625)


def test_retry_only_retryable_and_within_attempts():
    p = RetryPolicy(max_attempts=3)
    assert p.should_retry(True, 1) and p.should_retry(True, 2)
    assert not p.should_retry(True, 3)
    assert not p.should_retry(False, 1)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# --- templates, ids, shards ---

ROWS = [{"text": "a", "k": 1}, {"text": "b", "k": 2}, {"text": "a", "k": 1}]


def test_ids_are_stable_and_identical_rows_share_a_request():
    t = Template(user="Say {text} ({k})", system="be brief")
    r1 = build_requests(ROWS, model="m", params={"temperature": 0}, template=t)
    r2 = build_requests([dict(r) for r in reversed(ROWS)], model="m", params={"temperature": 0}, template=t)
    assert len(r1) == 2 and r1[0].rows == [0, 2]
    assert {r.id for r in r1} == {r.id for r in r2}
    assert r1[0].messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say a (1)"}]
    other = build_requests(ROWS, model="m", params={"temperature": 0.5}, template=t)
    assert {r.id for r in other}.isdisjoint({r.id for r in r1})  # params are part of the id


def test_id_column_and_custom_id_and_duplicates():
    rows = [{"id": "x1", "text": "a"}, {"id": "x2", "text": "a"}]
    reqs = build_requests(rows, model="m", params={}, template=Template("{text}"), id_column="id")
    assert [r.id for r in reqs] == ["x1", "x2"] and reqs[0].request_hash == reqs[1].request_hash
    with pytest.raises(InputError, match="share"):
        build_requests(
            [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}],
            model="m",
            params={},
            template=Template("{text}"),
            id_column="id",
        )
    batch_rows = [
        {
            "custom_id": "c1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        }
    ]
    (req,) = build_requests(batch_rows, model=None, params={"temperature": 0}, template=None)
    assert (req.id, req.model, req.params) == ("c1", "gpt-x", {"temperature": 0, "max_tokens": 5})


def test_a_row_without_its_id_is_an_input_error_naming_the_row():
    # before: a row lacking the --id-column was an internal KeyError; a null id became the id 'None'
    t = Template("{text}")
    for rows, match in (
        ([{"id": "x", "text": "a"}, {"text": "b"}], "row 2 has no --id-column 'id' value"),
        ([{"id": None, "text": "a"}], "row 1 has no --id-column 'id' value"),
        ([{"id": "x", "text": "a"}, {"id": " ", "text": "b"}], "row 2 has no --id-column 'id' value"),
    ):
        with pytest.raises(InputError, match=match):
            build_requests(rows, model="m", params={}, template=t, id_column="id")
    req = {"custom_id": None, "body": {"messages": [{"role": "user", "content": "hi"}]}}
    with pytest.raises(InputError, match="row 1 has no custom_id"):
        build_requests([req], model="m", params={})
    assert [
        r.id for r in build_requests([{"id": 0, "text": "a"}], model="m", params={}, template=t, id_column="id")
    ] == ["0"]  # 0 is an id


def test_template_errors_and_literal_braces(tmp_path):
    with pytest.raises(InputError, match="'missing'"):
        build_requests(ROWS, model="m", params={}, template=Template("{missing}"))
    (req, _) = build_requests(ROWS[:2], model="m", params={}, template=Template('Answer as {{"x": 1}} for {text}'))
    assert req.messages[-1]["content"] == 'Answer as {"x": 1} for a'
    with pytest.raises(InputError, match="no prompt"):
        build_requests(ROWS, model="m", params={}, template=None)
    f = tmp_path / "t.yaml"
    f.write_text("system: sys\nuser: 'U {text}'\n")
    assert load_template(str(f)) == Template(user="U {text}", system="sys")
    f.write_text("usr: x\n")
    with pytest.raises(InputError, match="user"):
        load_template(str(f))


def test_shards_are_stable_and_cover_everything():
    ids = [f"row-{i}" for i in range(1000)]
    shards = [shard_of(i, 4) for i in ids]
    assert shards == [shard_of(i, 4) for i in ids]
    counts = [shards.count(s) for s in range(4)]
    assert sum(counts) == 1000 and min(counts) > 200


# --- checkpoint ---


def test_checkpoint_append_torn_tail_union_and_ok_wins(tmp_path):
    with CheckpointWriter(tmp_path, "all") as w:
        w.append({"id": "a", "status": "ok", "response": "A"})
        w.append({"id": "b", "status": "error", "error": "x"})
    path = tmp_path / "checkpoints" / "all.jsonl"
    with path.open("a") as f:
        f.write('{"id": "c", "status": "o')  # a killed writer
    assert set(load_records(tmp_path)) == {"a", "b"}
    with CheckpointWriter(tmp_path, "all") as w:  # reopening cuts the torn line
        w.append({"id": "c", "status": "ok"})
        w.append({"id": "a", "status": "error", "error": "later"})
    with CheckpointWriter(tmp_path, "shard-00001-of-00002") as w:
        w.append({"id": "d", "status": "ok"})
    recs = load_records(tmp_path)
    assert set(recs) == {"a", "b", "c", "d"}
    assert recs["a"]["status"] == "ok"
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_an_error_of_another_request_with_the_same_id_replaces_its_answer(tmp_path, fast_backoff):
    # before: same --run-dir and --id-column, another prompt: its 400 was dropped ("ok wins" across requests) and
    # every run asked the failing rows again instead of keeping them as errors until --retry-failed
    src = tmp_path / "in.jsonl"
    write_rows(src, [{"id": f"r{i}", "q": f"q{i}"} for i in range(3)])

    def plan(prompt: str, **kw):
        opts = BatchOptions(model="fake/model", prompt=prompt, id_column="id", run_dir=str(tmp_path / "rd"), **kw)
        return prepare(src, opts, tmp_path / "data")

    assert execute(plan("{q}"), lambda m: FakeLLM()).answered == 3
    failing = FakeLLM({f"bad {q}": [LLMCallError("bad", status=400)] for q in ("q0", "q1", "q2")})
    assert execute(plan("bad {q}"), lambda m: failing).errors == 3
    again = FakeLLM()
    rep = execute(plan("bad {q}"), lambda m: again)
    assert again.calls == [] and rep.errors == 3 and rep.from_checkpoint == 3
    rep = execute(plan("bad {q}", retry_failed=True), lambda m: again)
    assert len(again.calls) == 3 and rep.answered == 3


def test_checkpoint_writer_is_exclusive(tmp_path):
    with CheckpointWriter(tmp_path, "all"):
        with pytest.raises(ConflictError):
            CheckpointWriter(tmp_path, "all")
    CheckpointWriter(tmp_path, "all").close()  # released


# --- validation ---


def test_schema_validator():
    v = SchemaValidator({"type": "object", "properties": {"label": {"enum": ["spam", "ham"]}}, "required": ["label"]})
    assert v.parse('{"label": "spam"}') == {"label": "spam"}
    assert v.parse('```json\n{"label": "ham"}\n```') == {"label": "ham"}
    with pytest.raises(AnswerInvalid, match="not JSON"):
        v.parse("spam")
    with pytest.raises(AnswerInvalid, match="label"):
        v.parse('{"label": "eggs"}')


# --- execution with a fake LLM ---


class FakeLLM(LLM):
    """Answers 'ans:<user text>'; ``script`` maps a user text to errors raised on successive calls."""

    def __init__(self, script: dict[str, list[Exception]] | None = None, reply=None):
        self.model = "fake/model"
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.reply = reply or (lambda text: f"ans:{text}")
        self.calls: list[str] = []

    def complete(self, messages, **params):
        raise NotImplementedError

    async def acomplete(self, messages, **params):
        text = messages[-1]["content"]
        await asyncio.sleep(0.001)  # a real call yields to the other workers
        self.calls.append(text)
        assert params["num_retries"] == 0 and params["max_retries"] == 0
        errs = self.script.get(text)
        if errs:
            raise errs.pop(0)
        return Completion(text=self.reply(text), model=self.model, input_tokens=3, output_tokens=2, cost=0.001)


def _input(tmp_path: Path, n: int = 10) -> Path:
    p = tmp_path / "in.jsonl"
    write_rows(p, [{"q": f"q{i}"} for i in range(n)])
    return p


def _plan(tmp_path, n: int = 10, **kw):
    opts = BatchOptions(model="fake/model", prompt="{q}", concurrency=4, **kw)
    src = tmp_path / "in.jsonl"
    return prepare(src if src.exists() else _input(tmp_path, n), opts, tmp_path / "data")


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.0)


def test_retries_then_errors_then_resume_calls_only_what_is_missing(tmp_path, fast_backoff):
    retryable = LLMCallError("429", status=429, retryable=True, retry_after=0.01)
    fake = FakeLLM({"q1": [retryable, retryable], "q2": [LLMCallError("bad", status=400)], "q3": [retryable] * 10})
    plan = _plan(tmp_path, max_attempts=3)
    rep = execute(plan, lambda m: fake)
    assert (rep.answered, rep.errors, rep.pending) == (8, 2, 0)
    assert rep.exit_code == ExitCode.PARTIAL
    assert fake.calls.count("q1") == 3 and fake.calls.count("q2") == 1 and fake.calls.count("q3") == 3
    assert rep.errors_by_kind == {"rejected": 1, "retries exhausted": 1}
    out = read_rows(plan.output)
    assert [r["llmops_status"] for r in out].count("ok") == 8 and out[1]["llmops_response"] == "ans:q1"
    errs = read_rows(plan.errors_path)
    assert {e["input"]["q"] for e in errs} == {"q2", "q3"}

    fake2 = FakeLLM()
    rep2 = execute(plan, lambda m: fake2)  # same plan: nothing to do
    assert fake2.calls == [] and rep2.from_checkpoint == 10 and rep2.errors == 2

    plan3 = _plan(tmp_path, max_attempts=3, retry_failed=True)
    rep3 = execute(plan3, lambda m: fake2)
    assert sorted(fake2.calls) == ["q2", "q3"] and rep3.exit_code == ExitCode.OK
    assert rep3.cost_total_usd == pytest.approx(0.010)


def test_interrupted_run_resumes(tmp_path, fast_backoff):
    class Boom(Exception):
        pass

    fake = FakeLLM()
    plan = _plan(tmp_path)
    seen = []

    def progress(done, total, cost):
        seen.append(done)
        if done == 4:
            raise Boom  # an interruption after 4 records (like Ctrl-C)

    with pytest.raises(Boom):
        execute(plan, lambda m: fake, progress=progress)
    kept = len(load_records(plan.run_dir))
    assert 4 <= kept < 4 + 4  # the other workers stopped at once (at most one more record each)
    fake2 = FakeLLM()
    rep = execute(plan, lambda m: fake2)
    assert len(fake2.calls) == 10 - kept and rep.answered == 10 and rep.from_checkpoint == kept


def test_schema_errors_are_rows_and_cache_only_keeps_valid(tmp_path, fast_backoff):
    from llmops_cli.core.llm_cache import LLMCache

    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["n"]}))
    fake = FakeLLM(reply=lambda text: '{"n": 1}' if text != "q5" else "nope")
    plan = _plan(tmp_path, schema=str(schema))
    assert plan.requests[0].params["response_format"]["type"] == "json_schema"
    cache = LLMCache(tmp_path / "cache.sqlite")
    rep = execute(plan, lambda m: fake, cache=cache)
    assert rep.errors == 1 and rep.errors_by_kind == {"invalid": 1} and len(cache) == 9
    assert read_rows(plan.output)[0]["llmops_parsed"] == {"n": 1}
    plan2 = _plan(tmp_path, schema=str(schema), output=str(tmp_path / "again.jsonl"))
    fake2 = FakeLLM(reply=lambda text: '{"n": 2}')
    rep2 = execute(plan2, lambda m: fake2, cache=cache)
    assert fake2.calls == ["q5"] and rep2.cache_hits == 9 and rep2.errors == 0


def test_fatal_auth_error_stops_the_run(tmp_path, fast_backoff):
    from llmops_cli.errors import AuthError

    fake = FakeLLM({f"q{i}": [LLMCallError("no", status=401)] for i in range(10)})
    with pytest.raises(AuthError):
        execute(_plan(tmp_path), lambda m: fake)
    assert len(fake.calls) <= 4  # stopped, not 10 errors recorded


def test_shards_then_merge(tmp_path, fast_backoff):
    plan = _plan(tmp_path, n=10)
    shards = plan_shards(plan, 3)
    assert sum(s["requests"] for s in shards) == 10
    fake = FakeLLM()
    reps = [execute(plan, lambda m: fake, shard=(s["shard_index"], 3)) for s in shards[:2]]
    assert all(r.output is None for r in reps)
    partial = execute(plan, lambda m: fake, call=False)
    assert partial.pending == shards[2]["requests"] and partial.output is None and partial.exit_code == ExitCode.PARTIAL
    execute(plan, lambda m: fake, shard=(2, 3))
    assert sorted(fake.calls) == sorted(f"q{i}" for i in range(10))
    merged = execute(plan, lambda m: fake, call=False)
    assert merged.answered == 10 and merged.output and len(read_rows(merged.output)) == 10
    assert len(list((plan.run_dir / "checkpoints").glob("shard-*.jsonl"))) == 3


def test_estimate_and_csv_parquet_outputs(tmp_path, fast_backoff):
    p = tmp_path / "in.csv"
    write_rows(p, [{"q": "hello world", "x": 1}, {"q": "b", "x": 2}])
    plan = prepare(
        p,
        BatchOptions(model="fake/model", prompt="Q: {q}", max_tokens=10, output=str(tmp_path / "o.parquet")),
        tmp_path / "d",
    )
    est = estimate(plan, prices=(1e-6, 2e-6))
    assert est["rows"] == 2 and est["to_run"] == 2 and est["max_output_tokens"] == 20
    assert est["estimated_cost_usd"] == pytest.approx(est["estimated_input_tokens"] * 1e-6 + 20 * 2e-6)
    assert est["first_prompts"][0]["messages"][-1]["content"] == "Q: hello world"
    execute(plan, lambda m: FakeLLM())
    rows = read_rows(tmp_path / "o.parquet")
    assert rows[0]["llmops_response"] == "ans:Q: hello world" and rows[0]["x"] == "1"


def test_openai_batch_format_roundtrip(tmp_path, fast_backoff):
    p = tmp_path / "batch.jsonl"
    write_rows(
        p,
        [
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-x", "messages": [{"role": "user", "content": f"m{i}"}]},
            }
            for i in range(3)
        ],
    )
    fake = FakeLLM({"m1": [LLMCallError("bad", status=400)]})
    plan = prepare(p, BatchOptions(model="fake/model"), tmp_path / "d")
    rep = execute(plan, lambda m: fake)
    out = read_rows(plan.output)
    assert [o["custom_id"] for o in out] == ["r0", "r2"]
    assert (
        out[0]["response"]["status_code"] == 200
        and out[0]["response"]["body"]["choices"][0]["message"]["content"] == "ans:m0"
    )
    (err,) = read_rows(plan.errors_path)
    assert err["custom_id"] == "r1" and err["response"]["status_code"] == 400 and rep.exit_code == ExitCode.PARTIAL


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(InputError, match="line 2"):
        read_rows(bad)
    with pytest.raises(InputError, match="unknown table format"):
        read_rows(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("x") else None
    with pytest.raises(InputError, match="does not exist"):
        read_rows(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="is a folder, not a file"):  # it said "does not exist"
        read_rows(tmp_path)
    with pytest.raises(UsageError):
        BatchOptions(concurrency=0)


def test_a_csv_row_with_more_or_fewer_fields_than_the_header_is_an_input_error(tmp_path):
    # before: the extra value landed in a column named None ("null" in JSON output) and a missing one was None,
    # so the prompt went out with an empty placeholder and was paid for
    for body, line, fields in (("1,a,extra\n", 2, 3), ("1,a\n2\n", 3, 1)):
        f = tmp_path / "ragged.csv"
        f.write_text("id,text\n" + body)
        with pytest.raises(InputError, match=f"line {line} has {fields} fields, the header has 2"):
            read_rows(f)
    ok = tmp_path / "ok.csv"
    ok.write_text('id,text\n1,"a, quoted"\n\n2,\n')  # a quoted comma, a blank line, an empty last value
    assert read_rows(ok) == [{"id": "1", "text": "a, quoted"}, {"id": "2", "text": ""}]
    # a header naming a column twice: the first column's values were dropped without a word
    twice = tmp_path / "twice.csv"
    twice.write_text("id,text,text\n1,first,second\n")
    with pytest.raises(InputError, match="header names 'text' more than once"):
        read_rows(twice)


def test_cli_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, llmops_cli.cli.batch_cmd, llmops_cli.core.batch.run; "
        "heavy = [m for m in ('litellm', 'aiohttp', 'pyarrow', 'pandas', 'torch', 'jsonschema') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_429_with_retry_after_pauses_every_worker(tmp_path, fast_backoff):
    from llmops_cli.core.batch.engine import Engine

    clock = FakeClock()
    starts: dict[str, float] = {}

    class Timed(FakeLLM):
        async def acomplete(self, messages, **params):
            starts.setdefault(messages[-1]["content"] + f"#{self.calls.count(messages[-1]['content'])}", clock.t)
            return await super().acomplete(messages, **params)

    fake = Timed({"q0": [LLMCallError("slow down", status=429, retryable=True, retry_after=30)]})
    plan = _plan(tmp_path, n=12)
    engine = Engine(llm_for=lambda m: fake, concurrency=2, limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    stats = asyncio.run(engine.run(plan.requests))
    assert stats.answered == 12 and stats.retries == 1
    t_429 = starts["q0#0"]
    later = [t for k, t in starts.items() if k not in ("q0#0", "q1#0")]
    assert later and min(later) >= t_429 + 30  # every request after the 429 waited for its Retry-After


def test_retry_after_header_seconds_and_http_date():
    import time as _time
    from email.utils import formatdate

    from llmops_cli.adapters.llm.openai_http import _retry_after

    assert _retry_after("7") == 7.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert 50 < _retry_after(formatdate(_time.time() + 60, usegmt=True)) <= 60


def test_an_unreachable_endpoint_stops_the_run_and_a_plain_rerun_continues(tmp_path, fast_backoff):
    from llmops_cli.core.ports import LLMUnreachableError
    from llmops_cli.errors import UnreachableError

    down = LLMUnreachableError("LLM fake/model is not reachable (Connection refused)", retryable=True)
    fake = FakeLLM({f"q{i}": [down] * 10 for i in range(3, 10)})
    plan = _plan(tmp_path, max_attempts=3)
    with pytest.raises(UnreachableError) as ei:
        execute(plan, lambda m: fake)
    assert "re-run" in (ei.value.hint or "")
    assert len(fake.calls) < 3 + 3 * 4 + 4  # stopped, not 7 rows x 3 attempts recorded as errors
    kept = load_records(plan.run_dir)
    assert all(rec["status"] == "ok" for rec in kept.values())  # nothing recorded as failed
    fake2 = FakeLLM()
    rep = execute(plan, lambda m: fake2)  # no --retry-failed needed
    assert rep.exit_code == ExitCode.OK and rep.answered == 10 and len(fake2.calls) == 10 - len(kept)


def test_a_run_where_every_row_failed_keeps_the_earlier_results_and_fails(tmp_path, fast_backoff):
    plan = _plan(tmp_path)
    assert execute(plan, lambda m: FakeLLM()).exit_code == ExitCode.OK
    good = plan.output.read_bytes()
    # another run (another prompt: another run folder) writing the same output file, every row rejected
    plan2 = prepare(
        plan.input_path, BatchOptions(model="fake/model", prompt="say {q}", concurrency=4), tmp_path / "data"
    )
    assert plan2.output == plan.output and plan2.run_dir != plan.run_dir
    fake = FakeLLM({f"say q{i}": [LLMCallError("bad request", status=400)] for i in range(10)})
    rep = execute(plan2, lambda m: fake)
    assert (rep.answered, rep.errors) == (0, 10) and rep.exit_code == ExitCode.FAILURE
    assert rep.to_dict()["exit_code"] == 1
    assert plan.output.read_bytes() == good  # not overwritten by a run that produced nothing
    assert rep.output is None and rep.output_kept == str(plan.output)
    assert len(read_rows(plan2.errors_path)) == 10  # what went wrong is still written
    # without an earlier good file, the failed rows are written (and it is still a failure)
    plan3 = prepare(
        plan.input_path,
        BatchOptions(model="fake/model", prompt="say {q}", concurrency=4, output=str(tmp_path / "fresh.jsonl")),
        tmp_path / "data",
    )
    rep3 = execute(plan3, lambda m: FakeLLM({f"say q{i}": [LLMCallError("bad", status=400)] for i in range(10)}))
    assert rep3.exit_code == ExitCode.FAILURE and rep3.output == str(plan3.output) and rep3.output_kept is None
    assert [r["llmops_status"] for r in read_rows(plan3.output)] == ["error"] * 10


def test_outputs_are_replaced_atomically(tmp_path, fast_backoff, monkeypatch):
    import json as real_json

    from llmops_cli.core.batch import inputs

    plan = _plan(tmp_path)
    execute(plan, lambda m: FakeLLM())
    good = plan.output.read_bytes()

    class DiskFullAfter3:
        calls = 0

        def dumps(self, *a, **kw):
            DiskFullAfter3.calls += 1
            if DiskFullAfter3.calls > 3:
                raise OSError(28, "No space left on device")
            return real_json.dumps(*a, **kw)

        def __getattr__(self, name):
            return getattr(real_json, name)

    monkeypatch.setattr(inputs, "json", DiskFullAfter3())
    plan2 = _plan(tmp_path, retry_failed=True)  # the same run: nothing to call, the output is written again
    with pytest.raises(LlmopsError, match="could not write the results to .*No space left on device") as e:
        execute(plan2, lambda m: FakeLLM())
    assert e.value.exit_code == ExitCode.FAILURE and "--run-dir" in (e.value.hint or "")  # one line, not a crash
    assert plan.output.read_bytes() == good  # the earlier file is whole, not 3 rows
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left behind


def test_openai_request_rows_name_the_row_that_is_not_a_request(tmp_path):
    # before: one row without custom_id made the whole file "not in the OpenAI Batch format" ("no prompt")
    def req(cid):
        return {"custom_id": cid, "body": {"messages": [{"role": "user", "content": "hi"}]}}

    no_cid = {k: v for k, v in req("b").items() if k != "custom_id"}
    for rows, match in (
        ([req("a"), no_cid], "row 2 is not an OpenAI Batch request: it has no custom_id"),
        ([req("a"), {**req("b"), "body": "hi"}], "row 2 is not an OpenAI Batch request: it has a body that is a str"),
        ([{"id": 1, "body": "an e-mail"}], "no prompt"),  # a table with a "body" column: the prompt is missing
    ):
        write_rows(tmp_path / "req.jsonl", rows)
        with pytest.raises(InputError, match=match):
            prepare(tmp_path / "req.jsonl", BatchOptions(model="fake/model"), tmp_path / "data")
    write_rows(tmp_path / "req.jsonl", [req("a"), req("b")])
    assert prepare(tmp_path / "req.jsonl", BatchOptions(model="fake/model"), tmp_path / "data").openai_format


def test_an_output_whose_errors_file_is_the_input_is_refused_before_the_input_is_emptied(tmp_path):
    # before: rerunning an errors file (x.errors.jsonl) with -o x.jsonl rewrote the input as the (empty) errors file
    src = tmp_path / "x.errors.jsonl"
    write_rows(src, [{"q": "a"}])
    opts = BatchOptions(model="fake/model", prompt="{q}", output=str(tmp_path / "x.jsonl"))
    with pytest.raises(UsageError, match="the errors file of --output x.jsonl would be the input file"):
        prepare(src, opts, tmp_path / "data")
    assert read_rows(src) == [{"q": "a"}]
    plan = prepare(src, BatchOptions(model="fake/model", prompt="{q}"), tmp_path / "data")  # the default is safe
    assert plan.errors_path.name == "x.errors.results.errors.jsonl"


def test_an_output_that_cannot_be_written_is_refused_before_any_call(tmp_path):
    # before: the whole batch was asked and paid for, then an internal error (IsADirectoryError) at the end
    _input(tmp_path)
    (tmp_path / "adir.jsonl").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "out.errors.jsonl").mkdir()
    for output, match in (
        ("adir.jsonl", "--output .*adir.jsonl is a folder"),
        ("afile/sub/out.jsonl", "cannot write in .*afile \\(it is not a folder\\)"),
        ("out.jsonl", "the errors file .*out.errors.jsonl is a folder"),
    ):
        opts = BatchOptions(model="fake/model", prompt="{q}", output=str(tmp_path / output))
        with pytest.raises(UsageError, match=match):
            prepare(tmp_path / "in.jsonl", opts, tmp_path / "data")
    opts = BatchOptions(model="fake/model", prompt="{q}", output=str(tmp_path / "new" / "dir" / "out.jsonl"))
    assert prepare(tmp_path / "in.jsonl", opts, tmp_path / "data").output.name == "out.jsonl"  # made when written
    assert not (tmp_path / "new").exists()
