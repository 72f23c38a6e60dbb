"""Writing a question set from an ingested collection with the LLM: for sampled chunks, one question the
chunk answers, its reference answer, and the chunk's source and id as the relevant ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, ValidationError

from llmops_cli.core.eval.datasets import EvalItem
from llmops_cli.core.eval.judge import JudgeParseError, _extract_json
from llmops_cli.core.eval.llm_calls import bounded_gather, complete_parsed
from llmops_cli.errors import NotFoundError

MIN_CHUNK_CHARS = 60  # headings and fragments make no question
MAX_CHUNK_CHARS = 4000
SAMPLE_POOL = 5000


class GeneratedQuestion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: str
    answer: str


@dataclass
class GenerateResult:
    items: list[EvalItem]
    failed: list[dict[str, str]] = field(default_factory=list)  # chunk id + reason


def messages_for(chunk_text: str) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": "You write evaluation questions for a documentation search system. "
            "Reply with exactly one JSON object and nothing else.",
        },
        {
            "role": "user",
            "content": "Write one question a user might ask that this PASSAGE answers, and the answer, "
            "using only the PASSAGE. The question must make sense without seeing the passage.\n"
            'Reply as JSON: {"question": "...", "answer": "..."}\n\n'
            f"PASSAGE:\n{chunk_text[:MAX_CHUNK_CHARS]}",
        },
    ]


def sample_chunks(store, collection: str, n: int, seed: int) -> list:
    if store.collection_metadata(collection) is None:
        raise NotFoundError(
            f"collection {collection!r} does not exist",
            hint=f"ingest documents first: llmops ingest PATH --collection {collection}",
        )
    hits = [
        h
        for h in store.get(collection, include_documents=True, limit=SAMPLE_POOL)
        if len(h.text or "") >= MIN_CHUNK_CHARS
    ]
    if not hits:
        raise NotFoundError(
            f"collection {collection!r} has no chunks of {MIN_CHUNK_CHARS}+ characters to write questions from",
            hint="ingest more documents",
        )
    hits.sort(key=lambda h: h.id)  # the store's order is not guaranteed; the sample must be repeatable
    rng = random.Random(seed)
    return rng.sample(hits, min(n, len(hits)))


async def generate_questions(
    chunks: list, llm, *, concurrency: int = 8, progress: Callable[[int, int], None] | None = None
) -> GenerateResult:
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(chunks))

    def parse(text: str) -> GeneratedQuestion:
        try:
            return GeneratedQuestion.model_validate(_extract_json(text, "reply"))  # the question writer's, no judge
        except ValidationError as e:
            raise JudgeParseError(f"reply does not match {{question, answer}}: {e.errors()[0]['msg']}") from None

    async def one(h) -> GeneratedQuestion:
        # a malformed reply is asked again once; only parsed replies are cached
        return await complete_parsed(
            llm, messages_for(h.text), parse, temperature=0.0, response_format={"type": "json_object"}
        )

    results = await bounded_gather([(lambda h=h: one(h)) for h in chunks], concurrency, tick)
    out = GenerateResult(items=[])
    for n, (h, r) in enumerate(zip(chunks, results, strict=False), start=1):
        if isinstance(r, BaseException):
            out.failed.append({"chunk": h.id, "reason": (getattr(r, "message", None) or str(r)).splitlines()[0][:200]})
            continue
        if not r.question.strip():
            out.failed.append({"chunk": h.id, "reason": "empty question"})
            continue
        out.items.append(
            EvalItem(
                id=f"gen-{n}",
                question=r.question.strip(),
                reference_answer=r.answer.strip() or None,
                relevant_sources=[h.source] if h.source else [],
                relevant_chunks=[h.id],
            )
        )
    return out


def run_generate(chunks: list, llm, **kw) -> GenerateResult:
    return asyncio.run(generate_questions(chunks, llm, **kw))
