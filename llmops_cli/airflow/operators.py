"""Operators for llmops steps. Each one: settings from the ``llmops`` connection (``LlmopsHook``) and its own
arguments (``collection``, ``config``, ``settings``: more run-param-style keys such as ``k``, ``mode``,
``chunk_size``), one call of ``steps.py`` (the entry points ``llmops`` runs), its small summary returned for XCom
(and the outcome under ``llmops_outcome``, as the shipped DAGs push it), its OpenLineage datasets reported through
``get_openlineage_facets_on_complete``/``_on_failure``.

Retries: a permanent error (bad configuration or usage, an embedder that does not match the collection, rejected
credentials, a failed quality gate) fails the task at once (``AirflowFailException``, no retry); anything else is
retried as ``retries`` say (errors.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from llmops_cli.airflow import steps
from llmops_cli.airflow.connection import DEFAULT_CONN_ID
from llmops_cli.airflow.errors import describe, is_permanent
from llmops_cli.airflow.hooks import LlmopsHook
from llmops_cli.airflow.lineage import Lineage
from llmops_cli.entry.dag_support import OUTCOME_XCOM_KEY, reported


@contextlib.contextmanager
def failures() -> Iterator[None]:
    """Permanent llmops errors fail the task without retrying; others propagate (and are retried)."""
    try:
        yield
    except Exception as exc:
        if is_permanent(exc):
            raise AirflowFailException(describe(exc)) from exc
        raise


def openlineage_facets(lineage: Lineage | None):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    lineage = lineage or Lineage()
    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.inputs],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.outputs],
    )


class LlmopsLineageMixin:
    """OpenLineage datasets of the step that ran (set by ``execute``; read by the OpenLineage listener)."""

    _llmops_lineage: Lineage | None = None

    def get_openlineage_facets_on_complete(self, task_instance):
        return openlineage_facets(self._llmops_lineage)

    def get_openlineage_facets_on_failure(self, task_instance):
        return openlineage_facets(self._llmops_lineage)


class LlmopsBaseOperator(LlmopsLineageMixin, BaseOperator):
    template_fields: Sequence[str] = ("collection", "config", "settings")
    ui_color = "#e7f0fd"

    def __init__(
        self,
        *,
        collection: str | None = None,
        llmops_conn_id: str = DEFAULT_CONN_ID,
        config: str | None = None,
        settings: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collection = collection
        self.llmops_conn_id = llmops_conn_id
        self.config = config
        self.settings = dict(settings or {})

    def llmops_settings(self):
        params = {**self.settings, "collection": self.collection, "config": self.config}
        return LlmopsHook(self.llmops_conn_id).get_settings(params)

    def run_step(self, settings, context) -> steps.StepResult | Any:
        raise NotImplementedError

    def execute(self, context):
        with failures():
            result = self.run_step(self.llmops_settings(), context)
        if not isinstance(result, steps.StepResult):
            return result
        self._llmops_lineage = result.lineage
        if result.outcome is not None:
            context["ti"].xcom_push(key=OUTCOME_XCOM_KEY, value=reported(result.outcome, result.summary))
            if result.outcome["status"] == "partial":
                self.log.warning("PARTIAL: %s", result.outcome["message"])
        return result.summary


class LlmopsIngestOperator(LlmopsBaseOperator):
    """Ingest ``sources`` (absolute paths or URLs) or ``records`` (dicts from an upstream task: GitHub issues, Slack
    messages, or any with ``text_key``/``id_key``) into the collection, in one task."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "sources", "records", "records_name")

    def __init__(
        self,
        *,
        sources: Sequence[str] | str | None = None,
        records: Any = None,
        records_name: str | None = None,
        text_key: str = "text",
        id_key: str = "id",
        glob: Sequence[str] | None = None,
        cleanup: str = "incremental",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (sources is None) == (records is None):
            raise ValueError("pass either sources= or records= to LlmopsIngestOperator")
        self.sources, self.records, self.records_name = sources, records, records_name
        self.text_key, self.id_key, self.glob, self.cleanup = text_key, id_key, glob, cleanup

    def run_step(self, settings, context):
        if self.records is not None:
            return steps.ingest_records(
                settings,
                list(self.records),
                name=self.records_name or self.task_id,
                text_key=self.text_key,
                id_key=self.id_key,
            )
        sources = [self.sources] if isinstance(self.sources, str) else list(self.sources)
        return steps.ingest_sources(settings, sources, globs=self.glob, cleanup=self.cleanup)


class LlmopsIngestPlanOperator(LlmopsBaseOperator):
    """First task of ``ingest_group``: shards of source ids (the return value, for ``.expand``); the ledger before
    the run and the unreadable paths go to XCom keys ``ledger_before`` / ``skipped_paths`` for the finalize task."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "sources")

    def __init__(self, *, sources, shards: int = 4, glob: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sources, self.shards, self.glob = sources, shards, glob

    def run_step(self, settings, context):
        plan = steps.plan_ingest_shards(settings, _as_list(self.sources), globs=self.glob, shards=self.shards)
        context["ti"].xcom_push(key="ledger_before", value=plan["ledger_before"])
        context["ti"].xcom_push(key="skipped_paths", value=plan["skipped_paths"])
        self.log.info("%d sources in %d shard(s)", sum(map(len, plan["shards"])), len(plan["shards"]))
        return plan["shards"]


class LlmopsIngestShardOperator(LlmopsBaseOperator):
    """A mapped ingest shard: only its own ``source_ids``."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "sources", "source_ids")

    def __init__(self, *, sources, source_ids, glob: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sources, self.source_ids, self.glob = sources, source_ids, glob

    def run_step(self, settings, context):
        report = steps.ingest_shard(settings, _as_list(self.sources), list(self.source_ids), globs=self.glob)
        self._llmops_lineage = None
        return report


class LlmopsIngestFinalizeOperator(LlmopsBaseOperator):
    """Last task of ``ingest_group``: full cleanup if asked, the summary from the store's ledger, the outcome."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "sources", "shards", "reports")

    def __init__(
        self, *, sources, shards, reports, plan_task_id: str, cleanup: str = "incremental", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sources, self.shards, self.reports = sources, shards, reports
        self.plan_task_id, self.cleanup = plan_task_id, cleanup

    def run_step(self, settings, context):
        ti = context["ti"]
        return steps.finalize_ingest(
            settings,
            _as_list(self.sources),
            list(self.shards),
            list(self.reports or []),
            ledger_before=ti.xcom_pull(task_ids=self.plan_task_id, key="ledger_before") or {},
            cleanup=self.cleanup,
            skipped_paths=ti.xcom_pull(task_ids=self.plan_task_id, key="skipped_paths") or [],
        )


class LlmopsQueryOperator(LlmopsBaseOperator):
    """Retrieval for one or more questions: top sources and scores per question."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "questions")

    def __init__(self, *, questions, k: int | None = None, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.questions, self.k, self.mode = questions, k, mode

    def run_step(self, settings, context):
        return steps.query(settings, self.questions, k=self.k, mode=self.mode)


class LlmopsAskOperator(LlmopsBaseOperator):
    """Answers (recorded in the answer log, so the feedback loop reviews them) with their sources."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "questions")

    def __init__(self, *, questions, k: int | None = None, mode: str | None = None, model: str | None = None, **kw):
        super().__init__(**kw)
        self.questions, self.k, self.mode, self.model = questions, k, mode, model

    def run_step(self, settings, context):
        return steps.ask(settings, self.questions, k=self.k, mode=self.mode, model=self.model)


class LlmopsEvalOperator(LlmopsBaseOperator):
    """``llmops eval`` of the collection on ``dataset``; a gate of ``fail_under`` (``["hit@5=0.8"]``) that is not
    met fails the task without retrying (after the summary and the report are out), unless ``fail_on_gates=False``
    (``eval_group`` checks them in a task of their own)."""

    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "dataset", "report_to", "fail_under")

    def __init__(
        self,
        *,
        dataset: str,
        metrics: Sequence[str] | None = None,
        fail_under: Sequence[str] | None = None,
        output: str | None = None,
        k: int | None = None,
        mode: str | None = None,
        fail_on_gates: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # (``output`` is BaseOperator's XComArg property: the location is kept as ``report_to``)
        self.dataset, self.metrics, self.fail_under, self.report_to = dataset, metrics, fail_under, output
        self.k, self.mode, self.fail_on_gates = k, mode, fail_on_gates

    def run_step(self, settings, context):
        return steps.evaluate(
            settings,
            self.dataset,
            metrics=self.metrics,
            fail_under=self.fail_under,
            k=self.k,
            mode=self.mode,
            output=self.report_to,
            label=f"airflow:{context['dag'].dag_id}.{self.task_id}:{context['run_id']}",
        )

    def execute(self, context):
        summary = super().execute(context)
        if self.fail_on_gates:
            with failures():
                steps.check_gates(summary)
        return summary


class LlmopsCheckGatesOperator(LlmopsLineageMixin, BaseOperator):
    """Fails (no retry) when a gate of an eval summary (an ``LlmopsEvalOperator``'s XCom) failed."""

    template_fields: Sequence[str] = ("summary",)

    def __init__(self, *, summary, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary = summary

    def execute(self, context):
        with failures():
            return steps.check_gates(self.summary)


class _BatchOperator(LlmopsBaseOperator):
    template_fields: Sequence[str] = (*LlmopsBaseOperator.template_fields, "input", "output_location", "options")

    def __init__(self, *, input: str, output: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (``output`` is BaseOperator's XComArg property)
        self.input, self.output_location, self.options = input, output, dict(options or {})


class LlmopsBatchPlanOperator(_BatchOperator):
    """Validate the input table and the prompt, split the requests into ``shards`` (the return value)."""

    def __init__(self, *, shards: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shards = shards

    def run_step(self, settings, context):
        return steps.batch_plan(settings, self.input, self.output_location, self.shards, **self.options)


class LlmopsBatchShardOperator(_BatchOperator):
    """One mapped shard of a batch: its rows, checkpointed (a retry resumes)."""

    template_fields: Sequence[str] = (*_BatchOperator.template_fields, "shard")

    def __init__(self, *, shard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def run_step(self, settings, context):
        return steps.batch_shard(settings, self.input, self.output_location, self.shard, **self.options)


class LlmopsBatchMergeOperator(_BatchOperator):
    """Join the shards, publish the results at ``output`` (never replacing an earlier result)."""

    template_fields: Sequence[str] = (*_BatchOperator.template_fields, "reports")

    def __init__(self, *, reports=None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reports = reports

    def run_step(self, settings, context):
        return steps.batch_merge(settings, self.input, self.output_location, list(self.reports or []), **self.options)


class LlmopsFeedbackReviewOperator(LlmopsBaseOperator):
    """Judge up to ``limit`` unreviewed answers, promote the good ones (``answers_of``: only answers from that
    collection)."""

    def __init__(self, *, limit: int = 50, answers_of: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit, self.answers_of = limit, answers_of

    def run_step(self, settings, context):
        return steps.review(settings, limit=self.limit, collection=self.answers_of)


class LlmopsPromoteOperator(LlmopsBaseOperator):
    """Bring every reviewed answer in line with the promotion rule (``llmops feedback promote``)."""

    def run_step(self, settings, context):
        return steps.promote(settings)


class LlmopsPrepareCollectionOperator(LlmopsBaseOperator):
    """Setup task of a temporary collection: it starts empty. Use with ``.as_setup()`` (``temporary_collection``)."""

    def run_step(self, settings, context):
        return steps.prepare_collection(settings)


class LlmopsDropCollectionOperator(LlmopsBaseOperator):
    """Teardown task of a temporary collection: drops it, whatever happened to the tasks between."""

    def run_step(self, settings, context):
        return steps.drop_collection(settings)


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
