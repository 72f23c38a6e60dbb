"""Training pairs for an embedding model: (question, relevant chunk) with a BM25 hard negative, split by group.

A *group* is what must not straddle the split (a source: a thread, a page), so held-out questions ask about
chunks the model never saw paired with a question.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.core.eval.runner import source_ranking


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    source: str


@dataclass
class Example:
    """One question with its relevant chunks (ids) and sources, and where it came from."""

    question: str
    relevant_chunks: list[str]
    relevant_sources: list[str]
    origin: str  # "dataset", "answer-log"
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = (sorted(self.relevant_sources) or sorted(self.relevant_chunks) or [self.question])[0]


@dataclass(frozen=True)
class Pair:
    """What the contrastive loss trains on: an anchor, its positive and (optionally) a hard negative."""

    anchor: str
    positive: str
    negative: str | None = None


@dataclass
class Split:
    train: list[Example] = field(default_factory=list)
    held_out: list[Example] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_questions": len(self.train),
            "held_out_questions": len(self.held_out),
            "train_groups": len({e.group for e in self.train}),
            "held_out_groups": len({e.group for e in self.held_out}),
        }


def examples_from_dataset(items: Iterable[Any]) -> list[Example]:
    """Eval dataset items (``EvalItem``: question, relevant_sources / relevant_chunks) that name something to find."""
    out = []
    for it in items:
        if it.relevant_chunks or it.relevant_sources:
            out.append(Example(it.question, list(it.relevant_chunks), list(it.relevant_sources), "dataset"))
    return out


def examples_from_answers(answers: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> list[Example]:
    """Good answers (question, the chunks the answer was made from: ``{id, source}``): those chunks were relevant
    enough for an answer that passed review and was not rated down."""
    out = []
    for question, chunks in answers:
        ids = [str(c["id"]) for c in chunks if c.get("id")]
        sources = sorted({str(c["source"]) for c in chunks if c.get("source")})
        if ids:
            out.append(Example(question, ids, sources, "answer-log"))
    return out


def dedupe(examples: Iterable[Example]) -> list[Example]:
    """One example per question text (the first, so datasets given first win over the answer log)."""
    seen: set[str] = set()
    out = []
    for e in examples:
        key = " ".join(e.question.lower().split())
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _bucket(group: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_by_group(examples: Sequence[Example], held_out: float, *, seed: int = 0) -> Split:
    """A deterministic split by group: every example of a group lands on the same side (a hash of the group, so the
    same group stays held out when more examples arrive)."""
    if not 0 < held_out < 1:
        raise ValueError("held_out must be between 0 and 1")
    s = Split()
    for e in examples:
        (s.held_out if _bucket(e.group, seed) < held_out else s.train).append(e)
    return s


def _basename(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1]


def matching_sources(relevant: Sequence[str], by_basename: dict[str, list[str]]) -> list[str]:
    """The collection's sources that the relevant ones name, by the eval's rule (equal, or one a path suffix of the
    other: ``a.md`` names ``docs/a.md``)."""
    out = []
    for r in relevant:
        for s in by_basename.get(_basename(r), []):
            if source_ranking([{"source": s}], [r])[0] == r and s not in out:
                out.append(s)
    return out


class ChunkIndex:
    """A collection's chunks by id, by source and by the source's file name (for the eval's suffix rule)."""

    def __init__(self, chunks: Sequence[Chunk]):
        self.by_id = {c.id: c for c in chunks}
        self.by_source: dict[str, list[Chunk]] = {}
        for c in chunks:
            self.by_source.setdefault(c.source, []).append(c)
        self.by_base: dict[str, list[str]] = {}
        for src in self.by_source:
            self.by_base.setdefault(_basename(src), []).append(src)

    def positives(self, example: Example) -> list[Chunk]:
        """The chunks an example names, by id, else every chunk of its relevant sources."""
        got = [self.by_id[c] for c in example.relevant_chunks if c in self.by_id]
        if not got:
            got = [c for s in matching_sources(example.relevant_sources, self.by_base) for c in self.by_source[s]]
        return got


def training_pairs(
    examples: Sequence[Example],
    chunks: Sequence[Chunk],
    lexical: Callable[[str, int], list[str]] | None,
    *,
    per_question: int = 2,
    negatives_from: int = 10,
) -> list[Pair]:
    """Up to ``per_question`` positives per question, each with the best BM25 hit (``lexical(text, k)`` -> chunk ids)
    that is not relevant: a hard negative, the kind of chunk that looks right and is not."""
    index = ChunkIndex(chunks)
    pairs = []
    for e in examples:
        every = index.positives(e)
        pos = every[:per_question]
        if not pos:
            continue
        relevant_ids = {c.id for c in every}
        relevant_sources = {c.source for c in every}
        negative = None
        if lexical is not None:
            for cid in lexical(e.question, negatives_from):
                c = index.by_id.get(cid)
                if c is not None and cid not in relevant_ids and c.source not in relevant_sources:
                    negative = c.text
                    break
        pairs.extend(Pair(e.question, p.text, negative) for p in pos)
    return pairs
