"""Benchmark: `llmops batch` throughput against a local OpenAI-compatible server answering in 100 ms.

2000 rows at concurrency 32 through the real path (entry.batch.batch -> engine -> adapter -> HTTP, checkpoint
appends and cost accounting included; cache off so every row is a call). Reported as ratios against
references measured in the same run, on the same server (a child process, so it has its own GIL):
- throughput share of the ideal = (rows / wall time) / (concurrency / latency); target >= 0.85;
  for the default client (``auto``: the lean aiohttp adapter for openai/<model> + api_base) and for
  ``--client litellm``;
- litellm's own ``batch_completion`` (a thread pool of ``completion`` calls, max_workers = 32);
- a bare aiohttp client at the same concurrency (the ceiling of this machine + server).
Results: benchmarks/results/bench_batch.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = 2000
CONCURRENCY = 32
LATENCY = 0.1
TARGET = 0.85


def _bare_aiohttp_seconds(base_url: str, n: int) -> float:
    import asyncio

    import aiohttp

    async def run() -> float:
        async with aiohttp.ClientSession() as s:
            sem = asyncio.Semaphore(CONCURRENCY)

            async def one(i: int) -> None:
                async with sem:
                    async with s.post(
                        base_url + "/chat/completions",
                        json={"model": "test-model", "messages": [{"role": "user", "content": f"bare {i}"}]},
                    ) as r:
                        await r.read()

            await asyncio.gather(*(one(i) for i in range(CONCURRENCY)))
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - t0

    return asyncio.run(run())


def _litellm_batch_completion_seconds(base_url: str, n: int) -> tuple[float, int]:
    from llmops_cli.adapters.llm.litellm_llm import import_litellm
    from tests.support.openai_server import TEST_API_KEY, TEST_MODEL

    litellm = import_litellm()
    msgs = [[{"role": "user", "content": f"litellm batch {i}"}] for i in range(n)]
    litellm.batch_completion(
        model=TEST_MODEL,
        messages=msgs[:CONCURRENCY],
        api_base=base_url,
        api_key=TEST_API_KEY,
        max_workers=CONCURRENCY,
        num_retries=0,
        max_retries=0,
    )  # warm-up
    t0 = time.perf_counter()
    out = litellm.batch_completion(
        model=TEST_MODEL,
        messages=msgs,
        api_base=base_url,
        api_key=TEST_API_KEY,
        max_workers=CONCURRENCY,
        num_retries=0,
        max_retries=0,
    )
    dt = time.perf_counter() - t0
    ok = sum(1 for r in out if not isinstance(r, Exception))
    return dt, ok


def main() -> dict:
    from llmops_cli.core.batch.inputs import write_rows
    from llmops_cli.entry.batch import batch
    from llmops_cli.settings import load_settings
    from llmops_cli.wiring import Workspace
    from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, ServerProcess

    ideal = CONCURRENCY / LATENCY
    result: dict = {
        "benchmark": "batch_throughput",
        "rows": ROWS,
        "concurrency": CONCURRENCY,
        "server_latency_s": LATENCY,
        "ideal_rows_per_s": ideal,
        "target_share": TARGET,
    }
    with ServerProcess(latency=LATENCY) as server, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        src = tmpd / "rows.jsonl"
        write_rows(
            src,
            [{"text": f"Review number {i}: the product arrived on time and works as described."} for i in range(ROWS)],
        )
        warm = tmpd / "warm.jsonl"
        write_rows(warm, [{"text": f"warm {i}"} for i in range(CONCURRENCY)])
        flags = {
            "data_dir": str(tmpd / ".llmops"),
            "llm.model": TEST_MODEL,
            "llm.api_base": server.base_url,
            "llm.api_key": TEST_API_KEY,
            "llm.input_cost_per_token": 1e-7,
            "llm.output_cost_per_token": 4e-7,
        }
        settings = load_settings(environ={}, cwd=tmpd, flags=flags).settings
        common = {"prompt": "Classify the sentiment of: {text}", "concurrency": CONCURRENCY, "use_cache": False}

        for client in ("auto", "litellm"):
            with Workspace(settings) as ws:
                batch(ws, warm, output=str(tmpd / f"warm-{client}.jsonl"), client=client, **common)
            before = server.stats()["successes"]
            t0 = time.perf_counter()
            with Workspace(settings) as ws:
                rep = batch(ws, src, output=str(tmpd / f"out-{client}.jsonl"), client=client, **common)
            dt = time.perf_counter() - t0
            seen = server.stats()["successes"] - before
            share = ROWS / dt / ideal
            result[f"llmops_{client}"] = {
                "wall_s": round(dt, 3),
                "rows_per_s": round(ROWS / dt, 1),
                "share_of_ideal": round(share, 3),
                "answered": rep.answered,
                "errors": rep.errors,
                "server_successes": seen,
                "cost_usd": rep.cost_usd,
            }
        t_lb, ok_lb = _litellm_batch_completion_seconds(server.base_url, ROWS)
        result["litellm_batch_completion"] = {
            "wall_s": round(t_lb, 3),
            "rows_per_s": round(ROWS / t_lb, 1),
            "share_of_ideal": round(ROWS / t_lb / ideal, 3),
            "answered": ok_lb,
        }
        t_bare = _bare_aiohttp_seconds(server.base_url, ROWS)
        result["bare_aiohttp_client"] = {"wall_s": round(t_bare, 3), "share_of_ideal": round(ROWS / t_bare / ideal, 3)}
        result["server_max_in_flight"] = server.stats()["max_in_flight"]

    share = result["llmops_auto"]["share_of_ideal"]
    result["share_of_ideal"] = share
    result["meets_target"] = share >= TARGET
    result["llmops_vs_litellm_batch_completion"] = round(
        result["litellm_batch_completion"]["wall_s"] / result["llmops_auto"]["wall_s"], 2
    )
    result["llmops_vs_bare_client"] = round(
        result["bare_aiohttp_client"]["wall_s"] / result["llmops_auto"]["wall_s"], 3
    )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_batch.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
