"""The fine-tuning core without a model: pairs, split, hard negatives, the held-out comparison, the run record."""

from types import SimpleNamespace

import numpy as np
import pytest

from llmops_cli.core.finetune.measure import compare, per_question, rank
from llmops_cli.core.finetune.pairs import (
    Chunk,
    Example,
    dedupe,
    examples_from_answers,
    examples_from_dataset,
    split_by_group,
    training_pairs,
)
from llmops_cli.core.finetune.runs import FinetuneRuns
from llmops_cli.entry.finetune import gate

CHUNKS = [
    Chunk("a1", "airflow scheduler heartbeat", "docs/a.md"),
    Chunk("a2", "scheduler loop details", "docs/a.md"),
    Chunk("b1", "kubernetes executor pods", "docs/b.md"),
    Chunk("c1", "scheduler tuning for kubernetes", "docs/c.md"),
]


def test_examples_come_from_datasets_and_good_answers_one_per_question():
    items = [
        SimpleNamespace(question="Why is the scheduler slow?", relevant_sources=["a.md"], relevant_chunks=[]),
        SimpleNamespace(question="no target", relevant_sources=[], relevant_chunks=[]),
    ]
    answers = [
        ("why is the  scheduler slow?", [{"id": "c1", "source": "docs/c.md"}]),
        ("pods?", [{"id": "b1", "source": "docs/b.md"}]),
        ("nothing cited", []),
    ]
    got = dedupe(examples_from_dataset(items) + examples_from_answers(answers))
    assert [(e.question, e.origin, e.group) for e in got] == [
        ("Why is the scheduler slow?", "dataset", "a.md"),
        ("pods?", "answer-log", "docs/b.md"),
    ]


def test_split_keeps_each_group_on_one_side_and_is_stable():
    examples = [Example(f"q{i}", [], [f"s{i % 40}"], "dataset") for i in range(200)]
    s = split_by_group(examples, 0.3)
    train, held = {e.group for e in s.train}, {e.group for e in s.held_out}
    assert not train & held and len(train | held) == 40
    assert 5 <= len(held) <= 20
    again = split_by_group(examples[:100], 0.3)  # fewer examples: each group keeps its side
    assert {e.group for e in again.held_out} <= held
    with pytest.raises(ValueError):
        split_by_group(examples, 1.0)


def test_pairs_take_sources_by_the_eval_suffix_rule_and_a_bm25_negative_from_another_source():
    ex = Example("scheduler heartbeat", [], ["a.md"], "dataset")
    calls = []

    def lexical(q, k):
        calls.append((q, k))
        return ["a2", "c1", "b1"]  # a2 is relevant (same source): skipped

    pairs = training_pairs([ex], CHUNKS, lexical)
    assert [(p.positive, p.negative) for p in pairs] == [
        ("airflow scheduler heartbeat", "scheduler tuning for kubernetes"),
        ("scheduler loop details", "scheduler tuning for kubernetes"),
    ]
    assert calls == [("scheduler heartbeat", 10)]
    assert training_pairs([Example("x", [], ["nowhere.md"], "dataset")], CHUNKS, lexical) == []
    by_id = training_pairs([Example("pods", ["b1"], [], "answer-log")], CHUNKS, None)
    assert by_id[0].positive == "kubernetes executor pods" and by_id[0].negative is None


def test_per_question_scores_like_the_eval_and_the_bootstrap_brackets_the_gain():
    vecs = np.eye(4, dtype=np.float32)  # chunk i is nearest to query i
    assert rank(vecs[[2]], vecs, 3)[0][0] == 2
    examples = [Example("q", [], ["a.md"], "d"), Example("q2", ["b1"], [], "d")]
    good = per_question(examples, CHUNKS, vecs[[0, 2]], vecs)
    assert good == {"hit@5": [1.0, 1.0], "mrr@10": [1.0, 1.0]}
    worse = per_question(examples, CHUNKS, vecs[[3, 3]], vecs)
    assert worse["mrr@10"][0] < 1.0
    base = {"hit@5": [0.0] * 30 + [1.0] * 30, "mrr@10": [0.2] * 60}
    tuned = {"hit@5": [1.0] * 60, "mrr@10": [0.5] * 60}
    c = compare(base, tuned, resamples=500)
    assert c.n == 60 and c.gain == {"hit@5": 0.5, "mrr@10": 0.3}
    lo, hi = c.ci["hit@5"]["gain"]
    assert 0 < lo <= 0.5 <= hi < 1
    assert c.ci["mrr@10"]["gain"] == [0.3, 0.3]


def test_runs_are_recorded_found_by_job_key_and_gated(tmp_path):
    with FinetuneRuns(tmp_path / "ft" / "runs.sqlite") as runs:
        rid = runs.start("embedder", "/m/base", collection="docs", params={"epochs": 1}, job_key="dag:run1")
        assert runs.by_job_key("dag:run1")["status"] == "running"
        metrics = {
            "gain": {"mrr@10": 0.02},
            "ci95": {"mrr@10": {"gain": [-0.01, 0.05]}},
        }
        runs.update(rid, status="done", metrics=metrics, cost={"train": {"wall_s": 3.0}}, output="/m/tuned")
        run = runs.get(rid)
    assert run["params"] == {"epochs": 1} and run["output"] == "/m/tuned"
    assert gate(run) and not gate(run, min_gain=0.05) and not gate(run, require_ci=True)
    assert not gate({**run, "status": "running"})
    with FinetuneRuns(tmp_path / "ft" / "runs.sqlite") as runs:  # reopened: migrated once, the run is there
        assert [r["id"] for r in runs.list(kind="embedder", status="done")] == [rid]


class _Jobs:
    """A fine-tuning API in memory: a job that runs ``polls`` polls, then succeeds with its tokens."""

    api_base = "http://provider.test/v1"

    def __init__(self, polls: int = 2, tokens: int = 1000, stamps: tuple[int, int] | None = None):
        self.polls, self.tokens, self.stamps, self.created = polls, tokens, stamps, 0

    def upload_training_file(self, data: bytes, filename: str) -> str:
        return "file-1"

    def create_job(self, model: str, training_file: str, **kw):
        self.created += 1
        return {"id": "ftjob-1", "status": "validating_files"}

    def retrieve_job(self, job_id: str):
        self.polls -= 1
        if self.polls > 0:
            return {"id": job_id, "status": "running"}
        job = {"id": job_id, "status": "succeeded", "trained_tokens": self.tokens, "fine_tuned_model": "ft:m:x"}
        if self.stamps:
            job.update(created_at=self.stamps[0], finished_at=self.stamps[1])
        return job


def test_a_provider_job_records_its_tokens_price_and_time_and_runs_total_every_step(tmp_path):
    from llmops_cli.core.finetune.provider import run_provider_job
    from llmops_cli.core.finetune.runs import cost_total

    with FinetuneRuns(tmp_path / "runs.sqlite") as runs:
        api = _Jobs(stamps=(1_000, 1_600))
        run = run_provider_job(api, runs, model="m", data=b"{}\n", cost_per_token=8e-6, sleep=lambda _s: None)
        unpriced = run_provider_job(_Jobs(), runs, model="m", data=b"{}\n", label="b", sleep=lambda _s: None)
        local = runs.start("embedder", "/m/base")
        runs.update(
            local,
            status="done",
            cost={
                "train": {"wall_s": 30.0, "cpu_s": 55.5, "epochs": 1},
                "evaluate": {"wall_s": 10.0, "cpu_s": 18.0},
                "promote": {"wall_s": 5.25, "cpu_s": 9.0},
            },
        )
        embedder = runs.get(local)
    c = run["cost"]
    assert (c["trained_tokens"], c["cost_per_token"], c["cost_usd"]) == (1000, 8e-6, 0.008)
    assert c["wall_s"] == 600.0  # the provider's own timestamps: submission to the end
    assert set(c["wait"]) == {"wall_s", "cpu_s"}
    assert unpriced["cost"]["cost_usd"] is None and unpriced["cost"]["trained_tokens"] == 1000  # no price guessed
    assert 0 <= unpriced["cost"]["wall_s"] < 60  # no provider timestamps: since the run was recorded
    assert cost_total(run) == {"wall_s": 600.0, "cpu_s": c["wait"]["cpu_s"], "trained_tokens": 1000, "cost_usd": 0.008}
    assert cost_total(embedder) == {"wall_s": 45.25, "cpu_s": 82.5, "trained_tokens": None, "cost_usd": None}


def test_a_tuned_models_folder_is_named_after_its_base_model(tmp_path):
    # docs/finetune.md: <data_dir>/models/<base>-ft<run id>-<hash>; the bundled model's folder is called "model" (and
    # a Hugging Face cache snapshot's is a commit hash), so every tuned model was "model-ft1-..."
    from llmops_cli.adapters.embedders.model_files import bundled_model_path
    from llmops_cli.entry.finetune import model_label

    assert model_label("all-MiniLM-L6-v2", bundled_model_path()) == "all-MiniLM-L6-v2"
    assert model_label("sentence-transformers/all-MiniLM-L6-v2", bundled_model_path()) == "all-MiniLM-L6-v2"
    snapshot = tmp_path / "models--BAAI--bge-small-en" / "snapshots" / "0123abcd"
    assert model_label("BAAI/bge-small-en", snapshot) == "bge-small-en"
    local = tmp_path / "my-model-ft1-83b5e390"
    local.mkdir()
    assert model_label(str(local), local) == "my-model-ft1-83b5e390"
    assert model_label(str(local) + "/", local) == "my-model-ft1-83b5e390"


def test_a_promote_rerun_adds_to_the_recorded_re_embedding_cost(tmp_path, monkeypatch):
    # re-running `finetune promote` on a finished copy embeds nothing in ~1 s: it replaced the copy's real cost
    import time

    from llmops_cli.entry.finetune import finetune_runs, promote_embedder
    from llmops_cli.settings import load_settings
    from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore

    emb, store = FakeEmbedder(), MemoryStore()
    store.ensure_collection("docs", metadata={"llmops_embedder": emb.identity, "llmops_dimension": emb.dimension})
    texts = ["alpha beta", "gamma delta", "epsilon zeta"]
    store.upsert("docs", ["a", "b", "c"], emb.embed(texts), texts, [{"source": f"{t}.md"} for t in texts])
    settings = load_settings(None, environ={}, cwd=tmp_path, flags={"data_dir": str(tmp_path / ".llmops")}).settings
    with FakeWorkspace(settings, store=store, embedder=emb) as ws:
        runs = finetune_runs(ws)
        rid = runs.start("embedder", "/m/base", collection="docs", params={})
        runs.update(rid, status="done", output=str(tmp_path / "tuned"), cost={"train": {"wall_s": 3.0}})
        runs.close()
        clock = iter([0.0, 40.0, 100.0, 101.0])
        monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
        first = promote_embedder(ws, rid)
        again = promote_embedder(ws, rid)
        runs = finetune_runs(ws)
        recorded = runs.get(rid)["cost"]
        runs.close()
    assert first["embedded"] == 3 and again["embedded"] == 0 and again["collection"] == "docs-ft1"
    assert first["cost"]["wall_s"] == 40.0 and again["cost"]["wall_s"] == 1.0
    assert recorded["promote"]["wall_s"] == 41.0 and recorded["train"] == {"wall_s": 3.0}


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ('"hello messages"', "is a JSON object, not str"),
        ("[1, 2]", "is a JSON object, not list"),
        ('{"messages": "x"}', "list of {role, content}"),
        ('{"messages": [{"role": "user"}, {"role": "assistant"}]}', "list of {role, content}"),
    ],
)
def test_a_malformed_llm_fine_tuning_row_is_named_by_its_number_exit_2(tmp_path, row, says):
    # such rows died with "internal error: TypeError / KeyError / AttributeError" (exit 1)
    from llmops_cli.entry.finetune import finetune_llm
    from llmops_cli.errors import ExitCode, InputError
    from llmops_cli.settings import load_settings
    from tests.support.fakes import FakeWorkspace

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    ds = tmp_path / "ft.jsonl"
    ds.write_text('{"prompt": "p", "completion": "c"}\n\n' * 3 + row + "\n")
    settings = load_settings(None, environ={}, cwd=tmp_path, flags={"data_dir": str(tmp_path / ".llmops")}).settings
    with FakeWorkspace(settings) as ws, pytest.raises(InputError) as ei:
        finetune_llm(ws, str(base), ds)
    assert ei.value.exit_code == ExitCode.USAGE
    assert str(ei.value).startswith(f"fine-tuning dataset {ds} row 4: ") and says in str(ei.value)


def test_a_provider_runs_recorded_url_keeps_no_password_or_key(tmp_path):
    # `finetune llm --provider http://u:pw@host/v1?api_key=...` stored the URL as given; `finetune runs --json`
    # printed the password and the key
    from llmops_cli.core.finetune.provider import run_provider_job

    api = _Jobs()
    api.api_base = "http://u:pw-Secret9@127.0.0.1:1/v1?api_key=sk-abc123456"
    with FinetuneRuns(tmp_path / "runs.sqlite") as runs:
        run = run_provider_job(api, runs, model="m", data=b"{}\n", sleep=lambda _s: None)
        listed = repr(runs.list())
    assert run["params"]["api_base"] == "http://u:********@127.0.0.1:1/v1?api_key=********"
    assert "Secret9" not in listed + repr(run) and "sk-abc" not in listed + repr(run)


def test_a_fine_tuning_api_error_names_the_fine_tuning_api():
    # before: a fine-tuning server that could not be reached was "batch API at ... is not reachable"
    import socket

    from llmops_cli.adapters.llm.finetune_jobs import OpenAIFineTuningHTTP
    from llmops_cli.core.ports import LLMUnreachableError
    from llmops_cli.core.retry import client_policy

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = OpenAIFineTuningHTTP(api_base=f"http://127.0.0.1:{port}/v1", api_key=None, max_retries=0)
    api.policy = client_policy(0)  # no retries: the first refusal is the error
    with pytest.raises(LLMUnreachableError, match=r"^fine-tuning API at http://127\.0\.0\.1:\d+/v1 is not reachable"):
        api.retrieve_job("ftjob-1")
