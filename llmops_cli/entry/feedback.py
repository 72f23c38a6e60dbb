"""Feedback entry points: ratings, LLM review, promotion into the store, fine-tuning export. Shared by
``llmops feedback`` / ``llmops history`` and the ``llmops_feedback`` DAG (plan review -> review batches -> promote).

The answer log, the store and the judge's LLM stack come from the workspace; the review's verdicts are stored on the
answers they judge (not as answer-log rows of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmops_cli.core import tracing
from llmops_cli.errors import LlmopsError, UsageError

if TYPE_CHECKING:
    from llmops_cli.core.feedback.log import AnswerLog
    from llmops_cli.core.feedback.promotion import Promoter, Thresholds
    from llmops_cli.settings import Settings
    from llmops_cli.wiring import Workspace

# core.feedback.promotion, .export and .review load numpy / pydantic: imported where they run, so that `llmops --help`
# stays cheap.


def thresholds(settings: Settings) -> Thresholds:
    """The promotion rule's thresholds from feedback settings."""
    from llmops_cli.core.feedback.promotion import Thresholds

    f = settings.feedback
    return Thresholds(
        min_helpfulness=f.min_helpfulness, min_relevance=f.min_relevance, require_rating_up=f.require_rating_up
    )


def _promoter(ws: Workspace, log: AnswerLog) -> Promoter:
    from llmops_cli.core.feedback.promotion import Promoter

    store = ws.store()
    # each collection is written with the embedder it was made with (an int8 collection gets int8 vectors)
    return Promoter(
        log,
        store,
        lambda coll: ws.collection_embedder(store.collection_metadata(coll)),
        thresholds(ws.settings),
        after_write=ws.after_store_write,
        write_lock=ws.write_lock,
    )


def rate(ws: Workspace, answer_id: str, rating: str, comment: str | None = None, *, rater: str | None = None) -> dict:
    """Rate an answer up or down as ``rater`` (one vote per rater: this replaces their earlier one), then bring the
    store in line: a down vote removes its promoted answer at once (for an answer served from the cache: the promoted
    answer it was served from)."""
    log = ws.answer_log()
    a = log.get(answer_id)
    log.rate(a.id, 1 if rating == "up" else -1, comment, rater=rater)
    target = a.cached_from or a.id
    report = _promoter(ws, log).reconcile([target])
    return {
        "id": a.id,
        "rating": rating,
        "rater": rater,
        "comment": comment,
        "promoted_answer": target,
        "promotion": report.to_dict(),
    }


def retire_stale(ws: Workspace, collection: str) -> list[dict[str, str]]:
    """Take out of the store and the semantic cache the promoted answers of ``collection`` whose sources changed or
    were removed (their chunks are gone), after an ingest that changed or removed sources; returns them with the
    reason. Nothing to do (and no answer log opened or created) where nothing was ever promoted."""
    if not ws.answer_log_exists():
        return []
    log = ws.answer_log()
    ids = log.active_promotion_ids(collection)
    if not ids:
        return []
    removed = _promoter(ws, log).reconcile(ids).removed
    return [r for r in removed if r["reason"].startswith("stale")]


def promote(ws: Workspace, *, answer_ids: Sequence[str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Reconcile the store with the promotion rule for these answers (default: every reviewed or promoted one)."""
    log = ws.answer_log()
    ids = [log.resolve(i) for i in answer_ids] if answer_ids else log.reviewed_ids()
    report = _promoter(ws, log).reconcile(ids, dry_run=dry_run)
    return {**report.to_dict(), "dry_run": dry_run, "checked": len(ids)}


def plan_review(
    ws: Workspace,
    *,
    limit: int = 100,
    batch_size: int | None = None,
    collection: str | None = None,
    retry_errors: bool = False,
) -> list[list[str]]:
    """Ids of answers waiting for review, in batches (for Airflow task mapping)."""
    size = batch_size or ws.settings.feedback.review_batch_size
    todo = ws.answer_log().to_review(limit=limit, collection=collection, retry_errors=retry_errors)
    ids = [a.id for a in todo]
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# (the feedback setting in use, the words of the LLM clients' hints, the judge's own setting in their place)
_JUDGE_SETTINGS = (
    (
        "judge_api_base",
        "llm.api_base (LLMOPS_LLM_API_BASE)",
        "feedback.judge_api_base (LLMOPS_FEEDBACK_JUDGE_API_BASE)",
    ),
    ("judge_api_key", "llm.api_key, LLMOPS_LLM_API_KEY", "feedback.judge_api_key, LLMOPS_FEEDBACK_JUDGE_API_KEY"),
)


@tracing.traced("llmops feedback review")
def review(
    ws: Workspace,
    *,
    limit: int = 50,
    collection: str | None = None,
    retry_errors: bool = False,
    answer_ids: Sequence[str] | None = None,
    promote: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Review answers with the LLM judge (the next ``limit`` unreviewed ones, or ``answer_ids`` still unreviewed), store
    the verdicts, then promote or remove those answers. ``progress(phase, done, total)``: "review" per verdict, then
    "promote"."""
    from llmops_cli.core.feedback.review import review_answers

    f = ws.settings.feedback
    judge = ws.settings.llm.model_copy(
        update={k: v for k, v in {"api_base": f.judge_api_base, "api_key": f.judge_api_key}.items() if v}
    )
    llm = ws.llm(
        "review",
        model=f.judge_model,
        llm_settings=judge,
        record=False,  # the verdict is stored on the answer it judges
        setting="feedback.judge_model",
        also="or pass --judge-model MODEL to llmops feedback review",
    )
    log = ws.answer_log()
    if answer_ids is not None:
        todo = [
            a
            for a in log.get_many(answer_ids)
            if (rv := log.review_of(a.id)) is None or (retry_errors and rv.status == "error")
        ]
    else:
        todo = log.to_review(limit=limit, collection=collection, retry_errors=retry_errors)
    store = ws.store()

    def context(a) -> list[str]:
        try:
            return [h.text for h in store.get(a.collection, ids=[c["id"] for c in a.chunks])]
        except Exception:  # noqa: BLE001 - the context helps the judge but is optional (store may have changed)
            return []

    if progress:
        progress("review", 0, len(todo))
    try:
        report = review_answers(
            log,
            llm,
            todo,
            context=context,
            concurrency=f.review_concurrency,
            progress=(lambda done, total: progress("review", done, total)) if progress else None,
        )
    except LlmopsError as e:  # the LLM clients' hints name the answering model's settings, not the judge's
        for used, name, judge_name in _JUDGE_SETTINGS:
            if getattr(f, used) and e.hint:
                e.hint = e.hint.replace(name, judge_name)
        raise
    _evaluation_events(log, report.reviewed)
    out = report.to_dict()
    out["judge_model"] = llm.model
    if promote:
        ids = report.reviewed + [e["id"] for e in report.errors]
        if progress:
            progress("promote", 0, len(ids))
        out["promotion"] = _promoter(ws, log).reconcile(ids).to_dict()
    return out


def _evaluation_events(log: AnswerLog, reviewed: Sequence[str]) -> None:
    """The judge's verdicts as ``gen_ai.evaluation.result`` events on the review's span (OpenTelemetry GenAI); its
    reasons stay out (they may quote the answer)."""
    for answer_id, rv in log.reviews_of(list(reviewed)).items():
        for name, value in (("helpfulness", rv.helpfulness), ("relevance", rv.relevance)):
            if value is not None:
                tracing.event(
                    "gen_ai.evaluation.result",
                    **{
                        "gen_ai.evaluation.name": name,
                        "gen_ai.evaluation.score.value": float(value),
                        "gen_ai.response.id": answer_id,
                    },
                )
        if rv.public is not None:
            tracing.event(
                "gen_ai.evaluation.result",
                **{
                    "gen_ai.evaluation.name": "public",
                    "gen_ai.evaluation.score.label": "public" if rv.public else "private",
                    "gen_ai.response.id": answer_id,
                },
            )


def export(
    ws: Workspace, *, fmt: str = "openai-chat", system: str | None = None, collection: str | None = None
) -> list[dict[str, Any]]:
    """Good answers as fine-tuning rows (a list of dicts, one JSONL line each)."""
    from llmops_cli.core.feedback.export import DEFAULT_SYSTEM, FORMATS, openai_chat_rows

    if fmt not in FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}", hint="use --format openai-chat"
        )
    rows = openai_chat_rows(
        ws.answer_log(),
        thresholds(ws.settings),
        system=system if system is not None else DEFAULT_SYSTEM,
        collection=collection,
    )
    return list(rows)
