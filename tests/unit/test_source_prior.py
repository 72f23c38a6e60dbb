"""retrieval.source_prior on a planted case: two sources answer the same questions equally well; answers built on one
of them are rated down again and again (`feedback rate`); with the prior on that source ranks below the other, with
it off retrieval is exactly as before. The factor is bounded by its weight and leaves unrated sources alone."""

from __future__ import annotations

import pytest

from llmops_cli.core.documents import Hit
from llmops_cli.core.retrieval import Retriever
from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.entry import insights as insights_entry
from llmops_cli.entry.ingest import ingest
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore, ScriptedLLM

QUESTIONS = ["when does quokka rotation happen", "quokka rotation schedule", "how often is quokka rotation"]


def _retriever(prior=None, weight=0.2):
    return Retriever(MemoryStore(), FakeEmbedder(), "c", lexical=None, source_prior=prior, prior_weight=weight)


def test_the_factor_is_bounded_and_leaves_unrated_sources_alone():
    r = _retriever({"bad.md": 0.0, "good.md": 1.0, "even.md": 0.5, "meh.md": 0.25})
    assert r.prior_factor("unrated.md") == 1.0 and r.prior_factor("even.md") == 1.0
    assert r.prior_factor("bad.md") == pytest.approx(0.8) and r.prior_factor("good.md") == pytest.approx(1.2)
    assert r.prior_factor("meh.md") == pytest.approx(0.9)
    hits = [Hit("b", "", 1.0, {"source": "bad.md"}), Hit("u", "", 0.9, {"source": "unrated.md"})]
    assert [h.id for h in r._apply_prior(hits)] == ["u", "b"] and hits[1].score == 0.9
    # a negative (distance-like) score of a worse source moves down too
    neg = [Hit("b", "", -1.0, {"source": "bad.md"}), Hit("u", "", -1.1, {"source": "unrated.md"})]
    assert [h.id for h in r._apply_prior(neg)] == ["u", "b"]
    fresh = [Hit("b", "", 1.0, {"source": "bad.md"}), Hit("u", "", 0.9, {"source": "unrated.md"})]
    assert [(h.id, h.score) for h in _retriever({"bad.md": 0.0}, weight=0.0)._apply_prior(fresh)] == [
        ("b", 1.0),
        ("u", 0.9),
    ]  # weight 0: no effect
    with pytest.raises(ValueError, match="prior_weight"):
        _retriever(weight=1.5)


def _ranks(r: Retriever, source: str) -> list[int]:
    """The rank of ``source``'s first hit for each planted question (1 = first)."""
    out = []
    for q in QUESTIONS:
        hits = r.search(q, 4)
        out.append(next(i for i, h in enumerate(hits, 1) if h.source == source))
    return out


def test_a_source_rated_down_ranks_lower_with_the_prior_and_as_before_without(tmp_path):
    root = tmp_path / "p"
    (root / "docs").mkdir(parents=True)
    # b.md matches the questions a little better than a.md: first without a prior
    (root / "docs" / "a.md").write_text("# Rotation\n\nQuokka rotation happens every night.\n")
    (root / "docs" / "b.md").write_text("# Quokka rotation\n\nQuokka rotation happens often, quokka rotation.\n")
    (root / "docs" / "c.md").write_text("# Otters\n\nOtters sleep holding hands.\n")
    flags = {
        "data_dir": str(root / "state"),
        "ingest.source_root": str(root),
        "llm.model": "fake/llm",
        "llm.rewordings": 0,
        "tracing.enabled": False,
    }
    settings = load_settings(environ={}, cwd=root, flags=flags).settings
    store, emb, llm = MemoryStore(), FakeEmbedder(), ScriptedLLM(default="Every night [1].")
    with FakeWorkspace(settings, store=store, embedder=emb, llm=llm) as ws:
        ingest(ws, [str(root / "docs")], collection="docs")
        before = ask_entry.retriever(ws, "docs")
        bad, good = "docs/b.md", "docs/a.md"
        assert _ranks(before, bad) == [1, 1, 1] and insights_entry.source_prior(ws, "docs") is None  # off: unread
        # answers built on b.md, each rated down (as people do with `llmops feedback rate ID down`)
        for i in range(10):
            res = ask_entry.ask(ws, QUESTIONS[i % 3], collection="docs", where={"source": bad}, use_cache=False)
            assert {h.source for h in res.hits} == {bad}
            feedback_entry.rate(ws, res.answer_id, "down")
        ask_entry.ask(ws, QUESTIONS[0], collection="docs", where={"source": "docs/c.md"})  # cited, never rated

    on = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"source_prior": True})})
    with FakeWorkspace(on, store=store, embedder=emb, llm=llm) as ws:
        prior = insights_entry.source_prior(ws, "docs")
        assert set(prior) == {bad} and prior[bad] == pytest.approx(2 / 14)  # Beta(2, 2) + 10 down votes
        r = ask_entry.retriever(ws, "docs")  # what query, ask, eval and serve search with
        assert r.source_prior == prior and r.prior_weight == on.retrieval.source_prior_weight
        with_prior = _ranks(r, bad)
        good_with_prior = _ranks(r, good)
        r.source_prior = {}
        plain = [[(h.id, h.score) for h in r.search(q, 4)] for q in QUESTIONS]
    with FakeWorkspace(settings, store=store, embedder=emb, llm=llm) as ws:
        off = ask_entry.retriever(ws, "docs")
        assert insights_entry.source_prior(ws, "docs") is None and not off.source_prior
        assert [[(h.id, h.score) for h in off.search(q, 4)] for q in QUESTIONS] == plain  # off: as before
    assert with_prior == [2, 2, 2] and good_with_prior == [1, 1, 1]
    # the retrieval metric: mean reciprocal rank of the rated-down source, without vs with the prior
    mrr = {k: sum(1 / x for x in v) / len(v) for k, v in {"off": _ranks(off, bad), "on": with_prior}.items()}
    assert mrr == {"off": 1.0, "on": 0.5}
