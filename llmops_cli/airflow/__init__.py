"""llmops inside anyone's DAG: operators, TaskFlow decorators, task groups, setup/teardown tasks and a hook with the
``llmops`` connection type, all calling the same entry points as the ``llmops`` commands (``llmops_cli.entry``).

Importing this package imports no Airflow (``get_provider_info`` is read by Airflow's providers manager through the
``apache_airflow_provider`` entry point); the Airflow-facing parts live in submodules imported by the DAG file:

- ``llmops_cli.airflow.operators``: ``LlmopsIngestOperator`` (sources or records), ``LlmopsQueryOperator``,
  ``LlmopsAskOperator``, ``LlmopsEvalOperator`` (gates fail the task), ``LlmopsBatch*Operator`` (plan, mapped
  shards, merge), ``LlmopsFeedbackReviewOperator``, ``LlmopsPromoteOperator``, and the temporary-collection
  setup/teardown pair;
- ``llmops_cli.airflow.decorators``: ``llmops_task.ingest`` / ``.query`` / ``.ask`` / ``.evaluate`` / ``.batch``:
  the decorated function computes the step's input, the step runs on its return value;
- ``llmops_cli.airflow.groups``: ``ingest_group`` and ``batch_group`` (plan -> mapped shards -> finalize),
  ``eval_group`` (evaluate -> gates), ``temporary_collection``;
- ``llmops_cli.airflow.hooks``: ``LlmopsHook`` (connection -> llmops settings).

Every task returns a small summary for XCom (counts, metrics, locations), never the payload itself.
"""

from __future__ import annotations

from typing import Any

from llmops_cli.airflow.connection import CONN_TYPE, DEFAULT_CONN_ID

__all__ = ["CONN_TYPE", "DEFAULT_CONN_ID", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for Airflow's providers manager (entry point group ``apache_airflow_provider``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("llmops-cli")
    except PackageNotFoundError:  # a source tree that is not installed
        ver = "0.0.0"
    return {
        "package-name": "llmops-cli",
        "name": "llmops",
        "description": "RAG ingest, query, evaluation, batch inference and feedback steps as Airflow tasks.",
        "versions": [ver],
        "connection-types": [
            {"connection-type": CONN_TYPE, "hook-class-name": "llmops_cli.airflow.hooks.LlmopsHook"},
        ],
        "hook-class-names": ["llmops_cli.airflow.hooks.LlmopsHook"],
        "task-decorators": [
            {"name": f"llmops_{step}", "class-name": f"llmops_cli.airflow.decorators.{step}_task"}
            for step in ("ingest", "query", "ask", "evaluate", "batch")
        ],
        "operators": [
            {
                "integration-name": "llmops",
                "python-modules": ["llmops_cli.airflow.operators"],
            }
        ],
        "integrations": [{"integration-name": "llmops", "external-doc-url": "https://pypi.org/project/llmops-cli/"}],
    }
