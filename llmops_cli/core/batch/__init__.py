"""Offline batch inference: resumable, rate-limited, retried, cached and costed (``llmops batch``).

Entry points (in ``llmops_cli.entry.batch``; a workspace in, its LLM stacks, cache and checkpoints used, this core
underneath). The CLI and the Airflow DAG ``llmops_batch_inference`` call the same functions; ``**options`` are the
fields of ``run.BatchOptions`` (model, template, prompt, system, output, concurrency, rpm, tpm, schema, id_column,
use_cache, retry_failed, max_attempts, timeout, temperature, max_tokens, limit, run_dir):

- ``batch(ws, input_path, progress=None, **options) -> BatchReport``: the whole run in one process.
  Writes the output (``--output``, default ``<input stem>.results.<ext>``) and ``<output stem>.errors.jsonl``.
- ``batch_dry_run(ws, input_path, **options) -> dict``: rendered prompts, counts, estimated tokens/cost.

For Airflow (map over shards; a re-triggered run resumes exactly like a local re-run):

1. ``batch_plan_shards(ws, input_path, num_shards, **options) -> list[dict]``: one dict per shard,
   ``{"shard_index": i, "num_shards": n, "requests": k}``; validates the input and the prompt up front.
2. ``batch_run_shard(ws, input_path, shard_index, num_shards, **options) -> dict``: runs only that
   shard's requests (chosen by a hash of the row id, stable across runs), appending to its own checkpoint
   (``<run dir>/checkpoints/shard-IIIII-of-NNNNN.jsonl``, or its rows in the shared state database); returns
   ``BatchReport.to_dict()`` (JSON-able, for XCom).
   Rows that end as errors are recorded, not raised; only fatal errors (bad input, rejected key) raise.
3. ``batch_merge_shards(ws, input_path, **options) -> dict``: makes no calls; joins every shard's
   checkpoint to the input and writes the output and the errors file. Rows whose shard did not finish are
   reported as ``pending`` (the output is not written then): re-trigger the DAG, or run ``llmops batch`` with
   the same options, which resumes from the same checkpoints.

All three must receive the same ``options`` (they define the run folder ``<data_dir>/batch/<stem>-<key>``),
and the workers must share the checkpoints: a shared state database (``state.url``, keyed by the run folder's name),
or the same ``data_dir`` (or ``run_dir``).

Modules: ``inputs`` (JSONL/CSV/parquet), ``requests`` (templates, OpenAI Batch rows, stable ids, shards),
``checkpoint`` (append-only JSONL, flushed per record, fsynced in groups; or state-database rows), ``ratelimit``
(rpm/tpm buckets), ``retry`` (backoff honouring Retry-After: core/retry.py's policy), ``validation`` (JSON schema),
``engine`` (async worker pool), ``outputs`` (joined output, errors file, OpenAI Batch output format), ``run`` (plan,
execute, estimate).
"""
