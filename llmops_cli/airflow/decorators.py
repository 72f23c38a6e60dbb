"""TaskFlow decorators: the decorated function computes a step's input, the step runs on what it returns.

    from llmops_cli.airflow.decorators import llmops_task

    @llmops_task.ingest(collection="kb", records_name="slack")
    def slack_threads() -> list[dict]:
        return fetch_messages()          # records (dicts) or sources (paths / URLs)

    @llmops_task.evaluate(collection="kb", fail_under=["hit@5=0.8"])
    def golden_set() -> str:
        return "s3://bucket/eval/golden.jsonl"

Each returns the step's small summary for XCom (never the records themselves) and reports its OpenLineage
datasets. ``ingest`` takes a list of strings as sources and a list of dicts as records; ``query``/``ask`` a question
or a list of them; ``evaluate`` a dataset location; ``batch`` an input table location (``output=`` required). The
keyword arguments are the matching operator's (``operators.py``), plus any ``@task`` argument (``retries``...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

from llmops_cli.airflow import steps
from llmops_cli.airflow.connection import DEFAULT_CONN_ID
from llmops_cli.airflow.hooks import LlmopsHook
from llmops_cli.airflow.operators import LlmopsLineageMixin, failures
from llmops_cli.entry.dag_support import OUTCOME_XCOM_KEY, reported


def _run(step: str, settings, value: Any, kw: dict[str, Any], context) -> steps.StepResult:
    if step == "ingest":
        if isinstance(value, str):
            value = [value]
        if value and all(isinstance(v, str) for v in value):
            return steps.ingest_sources(settings, value, globs=kw.get("glob"), cleanup=kw.get("cleanup", "incremental"))
        return steps.ingest_records(
            settings,
            list(value or []),
            name=kw.get("records_name") or context["ti"].task_id.split(".")[-1],
            text_key=kw.get("text_key", "text"),
            id_key=kw.get("id_key", "id"),
        )
    if step == "query":
        return steps.query(settings, value, k=kw.get("k"), mode=kw.get("mode"))
    if step == "ask":
        return steps.ask(settings, value, k=kw.get("k"), mode=kw.get("mode"), model=kw.get("model"))
    if step == "evaluate":
        return steps.evaluate(
            settings,
            value,
            metrics=kw.get("metrics"),
            fail_under=kw.get("fail_under"),
            k=kw.get("k"),
            mode=kw.get("mode"),
            output=kw.get("output"),
            label=f"airflow:{context['ti'].dag_id}.{context['ti'].task_id}:{context['run_id']}",
        )
    if step == "batch":
        shards = steps.batch_plan(settings, value, kw["output"], 1, **kw.get("options", {}))
        reports = [steps.batch_shard(settings, value, kw["output"], s, **kw.get("options", {})) for s in shards]
        return steps.batch_merge(settings, value, kw["output"], reports, **kw.get("options", {}))
    raise ValueError(f"unknown llmops step {step!r}")


class LlmopsDecoratedOperator(LlmopsLineageMixin, DecoratedOperator, PythonOperator):
    """Runs the decorated function, then the llmops step on its return value."""

    custom_operator_name = "@llmops_task"
    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable,
        op_args,
        op_kwargs,
        llmops_step: str,
        llmops_kwargs: dict[str, Any] | None = None,
        collection: str | None = None,
        llmops_conn_id: str = DEFAULT_CONN_ID,
        config: str | None = None,
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            kwargs_to_upstream={"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs},
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )
        self.llmops_step, self.llmops_kwargs = llmops_step, dict(llmops_kwargs or {})
        self.collection, self.llmops_conn_id, self.config = collection, llmops_conn_id, config
        self.llmops_settings_params = dict(settings or {})

    def execute(self, context):
        value = super().execute(context)  # the user's function: the step's input
        with failures():
            params = {**self.llmops_settings_params, "collection": self.collection, "config": self.config}
            settings = LlmopsHook(self.llmops_conn_id).get_settings(params)
            result = _run(self.llmops_step, settings, value, self.llmops_kwargs, context)
            self._llmops_lineage = result.lineage
            if result.outcome is not None:
                context["ti"].xcom_push(key=OUTCOME_XCOM_KEY, value=reported(result.outcome, result.summary))
            if self.llmops_step == "evaluate" and self.llmops_kwargs.get("fail_on_gates", True):
                steps.check_gates(result.summary)
        return result.summary


STEP_KWARGS = {
    "ingest": ("glob", "cleanup", "records_name", "text_key", "id_key"),
    "query": ("k", "mode"),
    "ask": ("k", "mode", "model"),
    "evaluate": ("metrics", "fail_under", "k", "mode", "output", "fail_on_gates"),
    "batch": ("output", "options"),
}


def _factory(step: str) -> Callable:
    def decorator(python_callable: Callable | None = None, multiple_outputs: bool | None = None, **kwargs: Any):
        llmops_kwargs = {k: kwargs.pop(k) for k in STEP_KWARGS[step] if k in kwargs}
        if step == "batch" and not llmops_kwargs.get("output"):
            raise ValueError("@llmops_task.batch needs output= (an absolute path or URL; never replaced)")
        return task_decorator_factory(
            python_callable=python_callable,
            multiple_outputs=False,
            decorated_operator_class=LlmopsDecoratedOperator,
            llmops_step=step,
            llmops_kwargs=llmops_kwargs,
            **kwargs,
        )

    decorator.__name__ = f"{step}_task"
    return decorator


ingest_task = _factory("ingest")
query_task = _factory("query")
ask_task = _factory("ask")
evaluate_task = _factory("evaluate")
batch_task = _factory("batch")


class _LlmopsTask:
    """``llmops_task.ingest(...)``, ``.query``, ``.ask``, ``.evaluate``, ``.batch``."""

    ingest = staticmethod(ingest_task)
    query = staticmethod(query_task)
    ask = staticmethod(ask_task)
    evaluate = staticmethod(evaluate_task)
    batch = staticmethod(batch_task)


llmops_task = _LlmopsTask()
