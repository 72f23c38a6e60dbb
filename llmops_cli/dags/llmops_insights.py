"""llmops_insights: refresh "what are people asking?" and "which sources serve them well?", daily.

Thin by design: one task calls ``llmops_cli.entry.insights.scheduled_refresh``, which runs the same entry points as
``llmops insights questions`` and ``llmops insights sources`` over the answer log (the shared database of
``state.url`` on a team deployment, else ``data_dir``'s) and writes questions.json, questions.html (the charts) and
sources.json into ``<data_dir>/insights/<run_id>/`` of the workers' settings, and with the param ``output`` (an
absolute path or URL every worker can reach; a relative one is refused when the run is triggered) also under
``<output>/<run_id>/``, never replacing an earlier run's files. The summary (questions, groups, gaps, sources and the
files) is the task's return value, the run's JSON report under ``<data_dir>/airflow-reports/llmops_insights/``, and
the outcome under ``llmops_outcome``.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from llmops_cli.entry.dag_support import OUTCOME_XCOM_KEY, location_schema, outcome, reported
from llmops_cli.entry.insights import scheduled_refresh

OPT_STR = ["null", "string"]


@dag(
    dag_id="llmops_insights",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["llmops"],
    doc_md=__doc__,
    params={
        "since": Param(
            "30d", type=OPT_STR, description="Questions asked in this span back (7d, 12h, 2w) or since a date."
        ),
        "clusters": Param(
            None, type=["null", "integer"], minimum=1, description="How many groups (default: by silhouette)."
        ),
        "collection": Param(None, type=OPT_STR, description="Only answers from this collection (default: all)."),
        "output": Param(
            None, type=OPT_STR, **location_schema("A folder for the files besides <data_dir>/insights/<run_id>.")
        ),
        "config": Param(None, type=OPT_STR, description="llmops config file on the workers (default: $LLMOPS_CONFIG)."),
    },
)
def llmops_insights():
    @task
    def refresh(params=None, run_id=None, ti=None) -> dict:
        summary = scheduled_refresh(params, run_id)
        print(f"insights: {summary}")
        ti.xcom_push(key=OUTCOME_XCOM_KEY, value=reported(outcome(None), summary))
        return summary

    refresh()


llmops_insights()
