"""llmops: a command-line LLMOps toolkit.

The library core lives in ``llmops_cli.core`` (steps: ingest, retrieval, ask, eval, batch, feedback,
orchestration), adapters for Chroma, embedders, LLMs and Airflow in ``llmops_cli.adapters``, the one
wiring place in ``llmops_cli.wiring`` and the thin Typer CLI in ``llmops_cli.cli``.

Importing this package must stay cheap: no torch, sentence-transformers, chromadb, litellm, pandas or
Airflow client at import time (``llmops --help`` depends on it; a test checks it).
"""

__version__ = "0.1.0"
