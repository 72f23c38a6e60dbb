"""The steps llmops tasks run, without Airflow: settings in, the ``llmops_cli.entry`` entry points (the same ones the
``llmops`` commands call) run with a workspace, and a small summary plus the task's lineage out.

Operators, TaskFlow decorators and task groups (``operators.py``, ``decorators.py``, ``groups.py``) are thin shells
over these: they turn an Airflow connection and a run's context into settings, call one step, push the summary to
XCom and report the lineage. Summaries hold counts, metrics and locations, never a payload (chunks, embeddings,
answers of a whole table): what a step produces is in the store, the state database or a published file.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.airflow.lineage import DatasetName, Lineage, collection_dataset, location_dataset
from llmops_cli.entry.dag_support import (
    eval_outcome,
    eval_summary,
    ingest_outcome,
    ingest_summary,
    local_sources,
    publish_result,
    short_ledger,
    staging_output,
)
from llmops_cli.errors import GateFailed, InputError, NotFoundError, UsageError
from llmops_cli.settings import Settings
from llmops_cli.wiring import Workspace

# an embedded store's writer of another run, DAG or local command: wait for it rather than fail and retry
WRITER_WAIT_S = 1800.0
RECORDS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
SHARD_REPORT_KEYS = ("collection", "sources", "chunks_added", "chunks_removed", "chunks_total", "seconds", "skipped")


@dataclass
class StepResult:
    summary: dict[str, Any]
    lineage: Lineage
    outcome: dict[str, str] | None = None  # {"status": ok | partial | failed, "message"} where the step has one


def collection_of(settings: Settings) -> str:
    return settings.store.collection


def collection_lineage(settings: Settings, collection: str | None = None):
    from llmops_cli.entry.store import store_location

    return collection_dataset(store_location(settings), collection or collection_of(settings))


# ----------------------------------------------------------------------------------------------------- ingest
def _ingest(settings: Settings, sources: Sequence[str], *, globs=None, cleanup="incremental", only=None) -> dict:
    from llmops_cli.entry import ingest as ingest_entry

    with Workspace(settings) as ws, tempfile.TemporaryDirectory(prefix="llmops-sources-") as tmp:
        report = ingest_entry.ingest(
            ws,
            local_sources(_resolved("sources", sources), Path(tmp), only=set(only) if only is not None else None),
            collection=collection_of(settings),
            globs=list(globs) if globs else None,
            cleanup=cleanup,
            only=only,
            wait_lock=WRITER_WAIT_S,
        )
    return report.to_dict()


def ingest_sources(
    settings: Settings,
    sources: Sequence[str],
    *,
    globs: Sequence[str] | None = None,
    cleanup: str = "incremental",
) -> StepResult:
    """Ingest files/folders (absolute paths or URLs) into the collection in one task."""
    d = _ingest(settings, sources, globs=globs, cleanup=cleanup)
    summary = {k: d.get(k) for k in SHARD_REPORT_KEYS}
    summary["skipped"] = len(d.get("skipped") or [])
    summary["skipped_sources"] = (d.get("skipped") or [])[:20]
    lineage = Lineage([location_dataset(s) for s in _as_list(sources)], [collection_lineage(settings)])
    partial = f"{summary['skipped']} source(s) skipped" if summary["skipped"] else None
    return StepResult(summary, lineage, _outcome(partial))


def records_file(records: Sequence[Mapping[str, Any]], folder: Path, name: str, text_key: str, id_key: str) -> Path:
    """Records from an upstream task as one file llmops ingests: GitHub issues (title + number) or Slack messages
    (ts) as a JSON Lines export (read by the export loaders, one document per issue / thread), anything else as a CSV
    table with ``text_key`` as the text and ``id_key`` as the row id (the other scalar fields become metadata)."""
    if not RECORDS_NAME.match(name or ""):
        raise UsageError(
            f"records name {name!r}: use letters, digits, '.', '_' or '-' (it is the source id in the collection)"
        )
    rows = [dict(r) for r in records]
    if not rows:
        raise InputError(f"no records to ingest for {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    if all("title" in r and "number" in r for r in rows) or all("ts" in r for r in rows):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
        return path
    missing = [i for i, r in enumerate(rows) if not str(r.get(text_key) or "").strip()]
    if missing:
        raise InputError(
            f"record {missing[0]} of {name!r} has no {text_key!r} text",
            hint="pass text_key= naming the field that holds each record's text",
        )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v) for k, v in r.items()}
            )
    return path


def ingest_records(
    settings: Settings,
    records: Sequence[Mapping[str, Any]],
    *,
    name: str,
    text_key: str = "text",
    id_key: str = "id",
) -> StepResult:
    """Ingest records an upstream task produced (dicts, e.g. parsed from an API) as the source ``name``: the same
    records again change nothing; changed records replace that source's chunks."""
    from llmops_cli.core.loaders import TableOptions
    from llmops_cli.entry import ingest as ingest_entry

    with tempfile.TemporaryDirectory(prefix="llmops-records-") as tmp:
        path = records_file(records, Path(tmp), name, text_key, id_key)
        # source ids relative to the temporary folder: "<name>.jsonl" / "<name>.csv", the same on every run and worker
        local = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"source_root": tmp})})
        table = TableOptions(text_column=text_key, id_column=id_key) if path.suffix == ".csv" else None
        with Workspace(local) as ws:
            report = ingest_entry.ingest(
                ws, [str(path)], collection=collection_of(settings), table=table, wait_lock=WRITER_WAIT_S
            )
    d = report.to_dict()
    summary = {k: d.get(k) for k in SHARD_REPORT_KEYS}
    summary.update({"records": len(records), "source": path.name, "skipped": len(d.get("skipped") or [])})
    lineage = Lineage([DatasetName("llmops-records", name)], [collection_lineage(settings)])
    return StepResult(summary, lineage, _outcome(f"records {name!r} skipped" if summary["skipped"] else None))


def plan_ingest_shards(
    settings: Settings, sources: Sequence[str], *, globs: Sequence[str] | None = None, shards: int = 4
) -> dict[str, Any]:
    """Split the sources into shards (source ids) and note the store's ledger before the run (for the summary)."""
    from llmops_cli.entry import ingest as ingest_entry

    sources = _resolved("sources", sources)
    missing = [p for p in sources if p.startswith("/") and not Path(p).exists()]
    if missing:
        raise NotFoundError(
            f"source(s) not found on the worker: {', '.join(missing)}",
            hint="pass absolute paths of a folder every worker can read, or URLs",
        )
    with Workspace(settings) as ws, tempfile.TemporaryDirectory(prefix="llmops-sources-") as tmp:
        groups, skipped_paths = ingest_entry.plan_ingest(
            ws.settings, local_sources(list(sources), Path(tmp)), globs=list(globs) if globs else None, shards=shards
        )
        if not groups:
            raise InputError(
                f"no files to ingest under {list(sources)}" + (f" matching {list(globs)}" if globs else "")
            )
        before, _total = ingest_entry.ingest_ledger(ws, collection_of(settings), [s for g in groups for s in g])
    return {"shards": groups, "ledger_before": short_ledger(before), "skipped_paths": skipped_paths}


def ingest_shard(
    settings: Settings, sources: Sequence[str], source_ids: Sequence[str], *, globs: Sequence[str] | None = None
) -> dict[str, Any]:
    """One mapped shard: ingest only its own sources (a retry finds its finished sources done). Its report keeps
    every skipped source (finalize counts them)."""
    d = _ingest(settings, sources, globs=globs, only=list(source_ids))
    return {k: d[k] for k in SHARD_REPORT_KEYS}


def finalize_ingest(
    settings: Settings,
    sources: Sequence[str],
    shards: Sequence[Sequence[str]],
    reports: Sequence[Mapping[str, Any]],
    *,
    ledger_before: Mapping[str, list[str]] | None = None,
    cleanup: str = "incremental",
    skipped_paths: Sequence[str] = (),
) -> StepResult:
    """After the shards: a full cleanup removes sources that are gone; the summary comes from the store's ledger
    (true across retried shards)."""
    from llmops_cli.entry import ingest as ingest_entry

    source_ids = [sid for shard in shards for sid in shard]
    collection = collection_of(settings)
    removed = 0
    with Workspace(settings) as ws:
        if cleanup == "full":
            removed = ingest_entry.remove_missing_sources(ws, collection, source_ids, skipped_paths=skipped_paths)
        after, total = ingest_entry.ingest_ledger(ws, collection, source_ids)
    summary = ingest_summary(
        collection,
        source_ids,
        dict(ledger_before or {}),
        short_ledger(after),
        [dict(r) for r in reports if r],
        sources_removed=removed,
        chunks_total=total,
    )
    lineage = Lineage([location_dataset(s) for s in _as_list(sources)], [collection_lineage(settings)])
    return StepResult(summary, lineage, ingest_outcome(summary))


# ------------------------------------------------------------------------------------------------ query / ask
def query(
    settings: Settings, questions: str | Sequence[str], *, k: int | None = None, mode: str | None = None
) -> StepResult:
    """Retrieval only: per question the top hits' sources and scores (not their text)."""
    from llmops_cli.entry import ask as ask_entry

    qs = [questions] if isinstance(questions, str) else list(questions)
    rows = []
    with Workspace(settings) as ws:
        for q in qs:
            hits = ask_entry.query(ws, q, collection=collection_of(settings), k=k, mode=mode)
            rows.append(
                {
                    "question": q,
                    "hits": [{"source": h.source, "id": h.id, "score": round(float(h.score), 4)} for h in hits],
                }
            )
    summary = {"collection": collection_of(settings), "questions": len(rows), "results": rows}
    return StepResult(summary, Lineage([collection_lineage(settings)], []))


def ask(
    settings: Settings,
    questions: str | Sequence[str],
    *,
    k: int | None = None,
    mode: str | None = None,
    model: str | None = None,
) -> StepResult:
    """Answers with their sources; each recorded in the answer log (its id in the summary, for feedback)."""
    from llmops_cli.entry import ask as ask_entry

    qs = [questions] if isinstance(questions, str) else list(questions)
    rows = []
    with Workspace(settings) as ws:
        for q in qs:
            res = ask_entry.ask(ws, q, collection=collection_of(settings), k=k, mode=mode, model=model)
            rows.append(
                {
                    "question": q,
                    "answer": res.answer[:2000],
                    "answer_id": res.answer_id,
                    "cached": bool(res.cache_hit),
                    "sources": [s["source"] for s in res.sources()],
                }
            )
    summary = {"collection": collection_of(settings), "questions": len(rows), "answers": rows}
    return StepResult(summary, Lineage([collection_lineage(settings)], []))


# ---------------------------------------------------------------------------------------------------- eval
def evaluate(
    settings: Settings,
    dataset: str,
    *,
    metrics: Sequence[str] | None = None,
    fail_under: Sequence[str] | None = None,
    k: int | None = None,
    mode: str | None = None,
    output: str | None = None,
    label: str | None = None,
    report_dir: Path | None = None,
) -> StepResult:
    """``llmops eval`` on the collection. The full report goes to ``output`` (absolute path or URL, never replaced;
    its format from the suffix: .json, .html, .jsonl, .csv, .parquet) and to a JSON file under
    ``<data_dir>/airflow-reports``; the summary has the metric means and the gates. A failed gate does NOT raise
    here: the outcome says "failed" and ``check_gates`` (or the operator) fails the task after the summary is out."""
    from llmops_cli.entry.eval import evaluate as run_evaluation

    _locations("output", [output] if output else [])
    staged = staging_output(output) if output else None
    report = run_evaluation(
        settings,
        _readable(dataset, "dataset"),
        collection=collection_of(settings),
        k=k,
        mode=mode,
        metrics=list(metrics) if metrics else None,
        fail_under=list(fail_under) if fail_under else None,
        label=label,
        outputs=[staged] if staged else (),
    )
    full = report.to_dict()
    folder = report_dir or settings.data_path / "airflow-reports" / "llmops_eval_tasks"
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / f"{full.get('run_id') or 'eval'}.json"
    local.write_text(json.dumps(full, indent=2, default=str) + "\n", encoding="utf-8")
    where = str(local)
    if staged and output:
        where = publish_result(staged, output)
    summary = eval_summary(full, where)
    outputs = [location_dataset(output)] if output else []
    lineage = Lineage([collection_lineage(settings), location_dataset(dataset)], outputs)
    return StepResult(summary, lineage, eval_outcome(summary))


def check_gates(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Raise GateFailed (permanent: the task fails without retrying) when a gate of an eval summary failed."""
    result = eval_outcome(dict(summary))
    if result["status"] == "failed":
        raise GateFailed(result["message"], hint=f"see the report: {summary.get('report')}")
    return {"gates": summary.get("gates") or [], "status": result["status"]}


# ---------------------------------------------------------------------------------------------------- batch
def batch_options(output: str, options: Mapping[str, Any]) -> dict[str, Any]:
    # the shards write to a local staging path (the same on every worker: the run key includes it); merge publishes
    return {**{k: v for k, v in options.items() if v is not None}, "output": staging_output(output)}


def batch_plan(settings: Settings, input: str, output: str, shards: int, **options: Any) -> list[dict[str, Any]]:
    from llmops_cli.entry import batch as batch_entry

    _locations("input/output", [input, output])
    with Workspace(settings) as ws:
        return batch_entry.batch_plan_shards(ws, _readable(input), shards, **batch_options(output, options))


def batch_shard(settings: Settings, input: str, output: str, shard: Mapping[str, Any], **options: Any) -> dict:
    from llmops_cli.entry import batch as batch_entry

    with Workspace(settings) as ws:
        return batch_entry.batch_run_shard(
            ws, _readable(input), shard["shard_index"], shard["num_shards"], **batch_options(output, options)
        )


def batch_provider(step: str, settings: Settings, input: str, output: str, **options: Any) -> dict:
    """One step of a provider batch ("submit", "poll" or "collect") with the run's options (the same in every task:
    they name the run, so a retried task finds the job its first try recorded)."""
    from llmops_cli.entry import batch as batch_entry

    fn = {
        "submit": batch_entry.batch_provider_submit,
        "poll": batch_entry.batch_provider_poll,
        "collect": batch_entry.batch_provider_collect,
    }[step]
    with Workspace(settings) as ws:
        return fn(ws, input, **batch_options(output, options))


def batch_merged(settings: Settings, input: str, output: str, reports: Sequence[Any], **options: Any) -> dict:
    """Join the shards' checkpoints into staged results (nothing published yet: ``publish_batch``)."""
    from llmops_cli.entry import batch as batch_entry

    with Workspace(settings) as ws:
        summary = batch_entry.batch_merge_shards(ws, _readable(input), **batch_options(output, options))
    summary = {**summary, "shards": len(list(reports))}
    if summary.get("output_kept"):  # the staging copy of the earlier results: name the location
        summary["output_kept"] = output
    return summary


def publish_batch(summary: Mapping[str, Any], output: str) -> dict[str, Any]:
    """Publish the staged results at ``output`` and the errors beside it (the errors first: the results' presence
    says the run published), never replacing an earlier result."""
    from llmops_cli.entry.dag_support import sibling

    staged = summary.get("output")
    if not staged:
        return dict(summary)
    errors = sibling(output, Path(summary["errors_file"]).name)  # the staged file has the output's name
    publish_result(summary["errors_file"], errors)
    publish_result(staged, output)
    return {**summary, "output": output, "errors_file": errors}


def batch_merge(settings: Settings, input: str, output: str, reports: Sequence[Any], **options: Any) -> StepResult:
    """Merge and publish. Raises when every request failed (dag_support.batch_outcome), publishing nothing."""
    from llmops_cli.entry.dag_support import batch_outcome

    summary = batch_merged(settings, input, output, reports, **options)
    result = batch_outcome(summary)
    summary = publish_batch(summary, output)
    return StepResult(summary, Lineage([location_dataset(input)], [location_dataset(output)]), result)


# ------------------------------------------------------------------------------------------------- feedback
def review(settings: Settings, *, limit: int = 50, collection: str | None = None) -> StepResult:
    """Judge unreviewed answers and promote the good ones into their collections (``llmops feedback review``)."""
    from llmops_cli.entry import feedback as feedback_entry

    with Workspace(settings) as ws:
        out = feedback_entry.review(ws, limit=limit, collection=collection)
    promo = out.get("promotion") or {}
    summary = {
        "reviewed": out["reviewed"],
        "errors": len(out["errors"]),
        "failed": len(out["failed"]),
        "promoted": len(promo.get("promoted", [])),
        "removed": len(promo.get("removed", [])),
    }
    left = summary["errors"] + summary["failed"]
    return StepResult(
        summary,
        Lineage([], [collection_lineage(settings, collection)] if collection else []),
        _outcome(f"{left} answer(s) left unreviewed" if left else None),
    )


def promote(settings: Settings) -> StepResult:
    from llmops_cli.entry import feedback as feedback_entry

    with Workspace(settings) as ws:
        final = feedback_entry.promote(ws)
    summary = {"checked": final["checked"], "promoted": len(final["promoted"]), "removed": len(final["removed"])}
    return StepResult(summary, Lineage(), _outcome(None))


# ------------------------------------------------------------------------------------- temporary collections
def prepare_collection(settings: Settings) -> StepResult:
    """Setup of a temporary collection: it starts empty (a leftover of an earlier run is dropped)."""
    dropped = drop_collection(settings).summary["dropped"]
    return StepResult({"collection": collection_of(settings), "dropped_leftover": dropped}, Lineage())


def drop_collection(settings: Settings) -> StepResult:
    """Teardown: drop the collection, its ledger and lexical index; absent already is fine."""
    from llmops_cli.entry import store as store_entry

    with Workspace(settings) as ws:
        try:
            store_entry.delete_collection(ws, collection_of(settings))
            dropped = True
        except NotFoundError:
            dropped = False
    return StepResult({"collection": collection_of(settings), "dropped": dropped}, Lineage())


# ---------------------------------------------------------------------------------------------------- helpers
def _outcome(partial: str | None) -> dict[str, str]:
    return {"status": "partial", "message": partial} if partial else {"status": "ok", "message": ""}


def _locations(what: str, values: Sequence[str]) -> list[str]:
    """Locations handed to workers: absolute paths or URLs (a relative path is a usage error, never retried)."""
    from llmops_cli.core.locations import location_problem

    if isinstance(values, str):
        values = [values]
    out = []
    for v in values:
        problem = location_problem(v)
        if problem:
            raise UsageError(f"{what}: {problem}")
        out.append(v)
    return out


def _readable(location: str, key: str = "input") -> str:
    """A local path for an input file: as it is, a file:// URL's path, or a remote file copied here."""
    return _resolved(key, [location])[0]


def _resolved(key: str, values: Sequence[str] | str) -> list[str]:
    """dag_support.resolve_params for one path param: relative paths refused (a usage error, never retried),
    file:// URLs made local paths, a remote input file copied here (remote sources stay URLs)."""
    from llmops_cli.entry.dag_support import resolve_params

    try:
        return resolve_params({key: _as_list(values)})[key]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _as_list(values: Sequence[str] | str) -> list[str]:
    return [values] if isinstance(values, str) else list(values)
