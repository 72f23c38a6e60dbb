"""The LLM fine-tuning paths: LoRA on a tiny randomly initialised causal LM that the test creates (adapters trained,
saved, loaded, scored against the base on held-out rows), and a job at an OpenAI-compatible fine-tuning API (the
test's own server: upload, submit, poll; a retry resumes the recorded job instead of submitting a second)."""

import json

import pytest

pytestmark = pytest.mark.integration

SUBJECTS = ["scheduler", "webserver", "triggerer", "worker", "executor", "pool", "queue", "sensor"]


def chat_rows() -> list[dict]:
    rows = []
    for n, s in enumerate(SUBJECTS * 3):
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"what does the {s} do {n % 3}"},
                    {"role": "assistant", "content": f"the {s} runs {s} work for airflow"},
                ]
            }
        )
    return rows


def tiny_causal_lm(folder) -> None:
    """A 2-layer Llama with random weights and a word-level tokenizer over the rows' words."""
    pytest.importorskip("peft")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for r in chat_rows() for m in r["messages"] for w in (m["role"] + ": " + m["content"]).split()})
    vocab = {t: i for i, t in enumerate(dict.fromkeys(["<unk>", "<pad>", "</s>", *words, "user:", "assistant:"]))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    tok.save_pretrained(str(folder))
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=1,
        eos_token_id=2,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))


def _settings(tmp_path, **flags):
    from llmops_cli.settings import load_settings

    return load_settings(environ={}, cwd=tmp_path, flags={"data_dir": str(tmp_path / ".llmops"), **flags}).settings


def test_lora_on_a_tiny_causal_lm_trains_saves_loads_and_beats_the_base(tmp_path):
    base = tmp_path / "tiny-llama"
    tiny_causal_lm(base)
    ds = tmp_path / "ft.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in chat_rows()))
    from llmops_cli.entry.finetune import finetune_llm, finetune_runs
    from llmops_cli.wiring import Workspace

    with Workspace(_settings(tmp_path)) as ws:
        run = finetune_llm(ws, str(base), ds, lora_r=4, epochs=8, batch_size=4, learning_rate=5e-3, job_key="k1")
        again = finetune_llm(ws, str(base), ds, job_key="k1")
        recorded = finetune_runs(ws).get(run["id"])
    m, cost = run["metrics"], run["cost"]["train"]
    print(
        f"\nbase loss {m['base']['loss']} -> tuned {m['tuned']['loss']} on {m['held_out_rows']} held-out rows; {cost}"
    )
    adapter = tmp_path / ".llmops" / "models" / f"tiny-llama-lora{run['id']}" / "adapter"
    assert run["output"] == str(adapter) and (adapter / "adapter_config.json").is_file()
    assert any(adapter.glob("adapter_model.*"))
    assert cost["trainable_parameters"] > 0 and cost["loss_last"] < cost["loss_first"]
    assert m["tuned"]["tokens"] == m["base"]["tokens"] > 0  # the same held-out answers scored for both
    assert m["tuned"]["loss"] < m["base"]["loss"]  # adapters loaded back: the tuned model is not the base
    assert again["resumed"] is True and again["id"] == run["id"]
    assert recorded["status"] == "done" and recorded["kind"] == "llm"
    assert recorded["cost"]["evaluate"]["wall_s"] > 0 and recorded["cost"]["train"]["cpu_s"] > 0


def test_provider_job_is_submitted_once_and_a_retry_resumes_it(tmp_path):
    from llmops_cli.entry.finetune import finetune_provider
    from llmops_cli.errors import RunFailed, TimeoutExceeded
    from llmops_cli.wiring import Workspace
    from tests.support.finetune_server import FineTuningServer

    ds = tmp_path / "ft.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in chat_rows()))
    with FineTuningServer(polls_to_finish=3, api_key="sk-test") as srv:
        s = _settings(tmp_path, **{"llm.api_key": "sk-test"})
        with Workspace(s) as ws:
            # the first attempt gives up while the job runs (a killed task, a timeout)
            with pytest.raises(TimeoutExceeded):
                finetune_provider(ws, "gpt-tiny", ds, api_base=srv.url, poll_s=0.01, timeout_s=0.0)
            assert len(srv.submissions) == 1 and len(srv.files) == 1
            run = finetune_provider(ws, "gpt-tiny", ds, api_base=srv.url, poll_s=0.01, timeout_s=5)
            assert run["resumed"] is True and run["status"] == "done"
            assert len(srv.submissions) == 1 and len(srv.files) == 1  # nothing paid for twice
            assert run["output"] == "ft:gpt-tiny:llmops:ftjob-1" and run["provider_job_id"] == "ftjob-1"
            assert run["cost"]["trained_tokens"] > 0 and run["cost"]["cost_usd"] is None  # no price given: none guessed
            assert srv.submissions[0]["metadata"]["llmops_job_key"] == run["job_key"]
            done = finetune_provider(ws, "gpt-tiny", ds, api_base=srv.url, poll_s=0.01)
            assert done["id"] == run["id"] and len(srv.submissions) == 1
            # another run label (a new DAG run) is a new job
            finetune_provider(ws, "gpt-tiny", ds, api_base=srv.url, poll_s=0.01, label="run-2")
            assert len(srv.submissions) == 2
    with FineTuningServer(polls_to_finish=1, fail=True) as srv, Workspace(_settings(tmp_path / "b")) as ws:
        with pytest.raises(RunFailed, match="diverged"):
            finetune_provider(ws, "gpt-tiny", ds, api_base=srv.url, poll_s=0.01)
