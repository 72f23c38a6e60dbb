"""Moved to ``llmops_cli.entry.dag_support`` (DAG glue is entry-layer code: params -> settings -> workspace).

Kept only until the last importers switch (dags/llmops_eval.py, adapters/airflow/client.py,
tests/unit/test_airflow_commands.py); then this file is deleted.
"""

from llmops_cli.entry.dag_support import *  # noqa: F403
from llmops_cli.entry.dag_support import OUTCOME_XCOM_KEY, collection_uri, default_collection  # noqa: F401
