"""Evaluation of retrieval and answers: question sets, metrics, LLM judge, robustness, run history, sweeps.

Modules: ``datasets`` (question sets), ``retrieval_metrics`` / ``answer_metrics`` (pure metric functions),
``judge`` (LLM-as-judge with structured JSON), ``llm_calls`` (bounded concurrency, cache, usage totals),
``robustness`` (perturbed questions), ``runner`` (one evaluation run), ``history`` (SQLite run store),
``compare`` (per-metric deltas and regressions), ``gates`` (--fail-under), ``results_files`` (JSON/CSV/parquet),
``html_report`` (self-contained HTML), ``generate`` (question sets from a collection), ``sweep`` (chunking
sweeps: values and ranking) and ``pipeline`` (one evaluation planned and run over the parts it is handed; the entry
point that builds them is ``llmops_cli.entry.eval``).
"""
