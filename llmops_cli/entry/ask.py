"""Search and answer entry points, shared by ``llmops query`` / ``llmops ask``, the eval step and the DAGs: the
question checked, the collection opened once, retrieval (and the LLM) run, the answer recorded.

One ``ask`` opens the store once, reads the collection's metadata once, opens the answer log at most once (the
semantic-cache lookup and the recording share it) and builds its LLM stack once (the CLI's fail-fast check and the
answer use the same one: ``answer_llm``).
"""

from __future__ import annotations

import difflib
import time
from typing import TYPE_CHECKING, Any

from llmops_cli.core import tracing
from llmops_cli.core.collection_meta import check_embedder
from llmops_cli.core.feedback.recording import record_ask
from llmops_cli.entry.store import collection_meta, collection_name
from llmops_cli.errors import LlmopsError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmops_cli.core.ask import AskResult, Turn
    from llmops_cli.core.documents import Hit
    from llmops_cli.core.feedback.log import AnswerLog
    from llmops_cli.core.ports import LLM
    from llmops_cli.core.prompts import PromptTemplate
    from llmops_cli.core.retrieval import Retriever
    from llmops_cli.wiring import Workspace

# core.ask, core.retrieval and core.feedback.cache load numpy: imported where they run, so that `llmops --help`
# stays cheap.


def check_search(text: str, where: dict[str, Any] | None) -> None:
    """Refuse a search that cannot mean anything, before any work: an empty question, or a --where that is not
    plain key=value pairs (check_where_matches then asks the store)."""
    if not text or not text.strip():
        raise UsageError(
            "the question is empty",
            hint='pass the text of the question, e.g. "exit code of a failed DAG run"',
        )
    check_where(where)


def check_where(where: dict[str, Any] | None) -> None:
    """Refuse a --where that is not plain key=value pairs (Chroma operators, an empty key)."""
    for key in where or {}:
        if not key or key.startswith("$"):
            raise UsageError(
                f"--where {key}=...: --where takes metadata key=value pairs that must all match, not Chroma operators",
                hint="e.g. --where format=markdown --where source=docs/ingest.md",
            )


def check_where_matches(r: Retriever, where: dict[str, Any] | None) -> None:
    """A --where that no chunk of the collection matches is a usage error naming the keys and values there are."""
    if not where or r.store.get(r.collection, where=where, limit=1, include_documents=False):
        return
    sample = r.store.get(r.collection, limit=2000, include_documents=False)
    values: dict[str, set[str]] = {}
    for h in sample:
        for mk, mv in h.metadata.items():
            values.setdefault(mk, set()).add(str(mv))
    for key, value in where.items():
        if key not in values:
            close = difflib.get_close_matches(key, list(values), n=1)
            raise UsageError(
                f"--where {key}={value}: no chunk of collection {r.collection!r} has the metadata key {key!r} "
                f"(keys: {', '.join(sorted(values))})",
                hint=f"did you mean --where {close[0]}=...?" if close else "use one of those keys",
            )
        if str(value) not in values[key]:
            seen = sorted(values[key])
            listed = ", ".join(seen[:12]) + (f" (+{len(seen) - 12} more)" if len(seen) > 12 else "")
            raise UsageError(
                f"--where {key}={value}: no chunk of collection {r.collection!r} has that value "
                f"(values seen: {listed})",
                hint=f"pick one of the values, e.g. --where {key}={seen[0]}" if seen else "pick another value",
            )
    pairs = " ".join(f"{k}={v}" for k, v in where.items())
    raise UsageError(
        f"no chunk of collection {r.collection!r} matches all of --where {pairs}",
        hint="each --where must match; drop one",
    )


def _open_retriever(ws: Workspace, name: str, meta: dict[str, Any]) -> Retriever:
    from llmops_cli.core.retrieval import Retriever

    embedder = ws.collection_embedder(meta)
    check_embedder(meta, embedder, name, searching=True)
    r = ws.settings.retrieval
    prior = None
    if r.source_prior:  # off by default: the answer log is not read
        from llmops_cli.entry.insights import source_prior

        prior = source_prior(ws, name)
    return Retriever(
        ws.store(read_only=True),
        embedder,
        name,
        lexical=ws.lexical_index(name),
        candidates=r.candidates,
        rrf_k=r.rrf_k,
        source_prior=prior,
        prior_weight=r.source_prior_weight,
        fusion=r.fusion,
        vector_weight=r.vector_weight,
    )


def _open_collection(ws: Workspace, name: str) -> dict[str, Any]:
    """The collection's metadata, read once; not found is an error listing the collections there are."""
    ws.embedder()  # the configured embedder first: the onnx backend loads its model on a thread while the store opens
    return collection_meta(ws.store(read_only=True), name)


def retriever(ws: Workspace, collection: str | None = None) -> Retriever:
    """The hybrid retriever of a collection, searching with the embedder the collection was made with."""
    name = collection_name(ws.settings, collection)
    return _open_retriever(ws, name, _open_collection(ws, name))


@tracing.traced("llmops query")
def query(
    ws: Workspace,
    text: str,
    *,
    collection: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
) -> list[Hit]:
    check_search(text, where)
    r = retriever(ws, collection)
    check_where_matches(r, where)
    s = ws.settings.retrieval
    return r.search(text, k or s.k, mode=mode or s.mode, where=where)


def answer_llm(ws: Workspace, model: str | None = None, *, also: str | None = None) -> LLM:
    """The LLM stack ``ask`` answers with (built once per workspace; called from many threads at once by
    `llmops serve`, hence the "answer" client). Not recorded call by call: ``ask`` records its whole result
    (rewordings, chunks, answer, usage) as one answer-log row."""
    return ws.llm("ask", model=model, client="answer", record=False, also=also)


@tracing.traced("llmops ask")
def ask(
    ws: Workspace,
    question: str,
    *,
    collection: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
    retrieval_only: bool = False,
    model: str | None = None,
    on_token: Callable[[str], None] | None = None,
    use_cache: bool = True,
    on_phase: Callable[[str], None] | None = None,
    history: list[Turn] | None = None,
    conversation: dict[str, Any] | None = None,
    prompt: PromptTemplate | None = None,
    on_retrieved: Callable[[list[str], list[Hit]], None] | None = None,
) -> AskResult:
    """The answer path (rewordings -> retrieval per wording -> RRF -> answer with sources).

    Answers are recorded in the answer log (``result.answer_id``). With ``use_cache`` (and feedback.cache), a promoted
    answer to a near-identical question is served instead, without an LLM call (``result.cache_hit``). ``on_phase``
    hears each step as it starts (a status line). A turn of a conversation (``llmops chat``) passes the earlier turns
    (``history``) and ``conversation`` (its id and turn number): it is recorded as kind "chat" with them, and never
    served from the cache (a follow-up means what the conversation makes it mean). ``prompt``: the answer prompt
    (default: the built-in one); its name and hash are recorded with the answer (``result.prompt``), and the cache
    serves only a promoted answer that was made with a prompt of the same hash. ``on_retrieved`` hears the rewordings
    and the hits before the answer's first token (a cached answer: no rewordings, the promoted chunk)."""
    from llmops_cli.core.ask import ask as core_ask
    from llmops_cli.core.prompts import default_prompt

    prompt = prompt or default_prompt()

    settings = ws.settings
    check_search(question, where)
    name = collection_name(settings, collection)
    phase = on_phase or (lambda _name: None)
    phase("opening the collection")
    meta = _open_collection(ws, name)
    chat = conversation is not None
    # where no answer log exists nothing is promoted, and an ask that fails creates nothing
    if (
        use_cache
        and not chat
        and settings.feedback.cache
        and not retrieval_only
        and not where
        and ws.answer_log_exists()
    ):
        phase("checking the answer cache")
        cached = _cached_answer(ws, ws.answer_log(), question, name, meta, on_token, prompt, on_retrieved)
        if cached is not None:
            return cached
    llm = None if retrieval_only else answer_llm(ws, model)
    r = _open_retriever(ws, name, meta)
    check_where_matches(r, where)
    res = core_ask(
        question,
        r,
        llm,
        k=k or settings.retrieval.k,
        rewordings=settings.llm.rewordings,
        mode=mode or settings.retrieval.mode,
        where=where,
        on_token=on_token,
        on_phase=on_phase,
        history=history,
        prompt=prompt,
        on_retrieved=on_retrieved,
    )
    if not retrieval_only:
        res.prompt = prompt.ref()
        _record(ws, res, name, conversation=conversation)
    return res


def _record(
    ws: Workspace,
    res: AskResult,
    collection: str,
    cached_from: str | None = None,
    conversation: dict[str, Any] | None = None,
) -> None:
    """Record an ask result (a chat turn as kind "chat", with its conversation and the question searched); a log that
    cannot be written costs the answer its id, not the answer itself."""
    try:
        _record_now(ws, res, collection, cached_from, conversation)
    finally:
        tracing.annotate(
            **{
                "llmops.answer_id": res.answer_id,
                "llmops.collection": collection,
                "llmops.cache_hit": cached_from is not None,
                "llmops.chunk_ids": [h.id for h in res.hits],
                "gen_ai.usage.input_tokens": res.usage.input_tokens,
                "gen_ai.usage.output_tokens": res.usage.output_tokens,
                "llmops.cost_usd": res.usage.cost,
            }
        )


def _record_now(
    ws: Workspace,
    res: AskResult,
    collection: str,
    cached_from: str | None,
    conversation: dict[str, Any] | None,
) -> None:
    try:
        chat = conversation is not None
        res.answer_id = record_ask(
            ws.answer_log(),
            res,
            collection=collection,
            config_hash=ws.answer_config_hash(),
            cached_from=cached_from,
            kind="chat" if chat else "ask",
            extra={
                **({"standalone_question": res.standalone_question, **conversation} if chat else {}),
                **({"prompt": res.prompt} if res.prompt else {}),
            }
            or None,
        )
    except LlmopsError as e:
        res.record_error = e.message


def _cached_answer(
    ws: Workspace,
    log: AnswerLog,
    question: str,
    collection: str,
    meta: dict[str, Any],
    on_token: Callable[[str], None] | None,
    prompt: PromptTemplate | None = None,
    on_retrieved: Callable[[list[str], list[Hit]], None] | None = None,
) -> AskResult | None:
    """The promoted answer to a near-identical question, as an AskResult (recorded as served from it), or None.
    Only an answer made with a prompt of ``prompt``'s hash is served (one recorded without a prompt was made with
    the built-in one): the cache is keyed by prompt as well as by question."""
    from llmops_cli.core.ask import AskResult
    from llmops_cli.core.feedback.cache import find_cached
    from llmops_cli.core.prompts import default_prompt

    t0 = time.perf_counter()
    # runs on every ask and usually nothing is promoted: a one-row check first, so the common case embeds nothing
    # and reads no promotion rows
    if not log.has_active_promotions(collection):
        return None
    hit = find_cached(log, ws.collection_embedder(meta), collection, question, ws.settings.feedback.cache_threshold)
    found = ws.store(read_only=True).get(collection, ids=[hit.promotion.chunk_id]) if hit is not None else []
    if hit is None or not found:
        return None
    prompt = prompt or default_prompt()
    made = log.get(hit.answer_id)
    made_with = (made.extra.get("prompt") or {}).get("sha256") or default_prompt().sha256
    if made_with != prompt.sha256:
        return None
    found[0].score = hit.similarity
    res = AskResult(
        question=question,
        answer=hit.promotion.answer_text,
        rewordings=[],
        hits=found,
        model=made.model,
        latency_s=time.perf_counter() - t0,
        cache_hit=hit.to_dict(),
        prompt=prompt.ref(),
    )
    if on_retrieved is not None:
        on_retrieved([], list(res.hits))
    if on_token is not None:
        on_token(res.answer)
    _record(ws, res, collection, cached_from=hit.answer_id)
    return res
