"""Chunkers: sizes in model tokens, never over the model's maximum, heading paths, invariants."""

from __future__ import annotations

import pytest

from llmops_cli.core.chunking import HeadingChunker, RecursiveChunker, TokenWindowChunker
from llmops_cli.core.chunking.headings import markdown_sections, rst_sections
from llmops_cli.core.chunking.select import ChunkerSet, embed_text
from llmops_cli.core.documents import Document
from llmops_cli.errors import ConfigError
from tests.support.fakes import WordTokens

TOK = WordTokens(max_tokens=60)


def words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_invariants_checked_at_construction():
    with pytest.raises(ConfigError, match="overlap"):
        RecursiveChunker(TOK, 20, 20)
    with pytest.raises(ConfigError, match="maximum of 60"):
        RecursiveChunker(TOK, 61, 0)


@pytest.mark.parametrize("cls", [RecursiveChunker, TokenWindowChunker, HeadingChunker])
def test_no_chunk_exceeds_size_and_no_word_is_lost(cls):
    text = "\n\n".join(f"Paragraph {p}. " + ". ".join(words(7, f"p{p}s{s}x") for s in range(5)) + "." for p in range(12))
    doc = Document("d", text, format="markdown")
    pieces = cls(TOK, 40, 5).split(doc)
    assert pieces and all(TOK.count([embed_text(p)])[0] <= 40 for p in pieces)
    joined = " ".join(p.text for p in pieces)
    for w in ("p0s0x0", "p11s4x6", "p5s2x3"):
        assert w in joined


def test_recursive_prefers_paragraph_boundaries_and_overlaps():
    paras = [words(15, f"a{i}_") for i in range(6)]
    pieces = RecursiveChunker(TOK, 32, 16).split(Document("d", "\n\n".join(paras)))
    assert pieces[0].text == paras[0] + "\n\n" + paras[1]
    assert pieces[1].text.startswith(paras[1])  # the previous paragraph carried over as overlap


def test_token_windows_step_by_size_minus_overlap():
    pieces = TokenWindowChunker(TOK, 10, 4).split(Document("d", words(22)))
    assert [p.text.split()[0] for p in pieces] == ["w0", "w6", "w12"]
    assert all(len(p.text.split()) <= 10 for p in pieces)


def test_a_run_without_separators_is_cut_not_truncated():
    doc = Document("d", "-".join(["x"] * 200))  # 399 tokens, no whitespace
    pieces = RecursiveChunker(TOK, 50, 0).split(doc)
    assert sum(TOK.count([p.text])[0] for p in pieces) == 399 and max(TOK.count([p.text for p in pieces])) <= 50


def test_markdown_heading_paths_and_code_fences():
    md = "# Guide\n\nIntro.\n\n## Install\n\nSteps.\n\n```\n# not a heading\n```\n\n### Linux\n\nApt.\n\n## Use\n\nRun it.\n"
    secs = markdown_sections(md)
    assert [" > ".join(s.path) for s in secs] == ["Guide", "Guide > Install", "Guide > Install > Linux", "Guide > Use"]
    assert "# not a heading" in secs[1].body


def test_rst_heading_levels_follow_first_appearance():
    rst = ".. comment\n\n=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\n\nBody.\n\nSub\n~~~\n\nDeep.\n\nOther\n-----\n\nMore.\n"
    secs = rst_sections(rst)
    assert [" > ".join(s.path) for s in secs] == ["", "Title", "Title > Section", "Title > Section > Sub", "Title > Other"]


def test_heading_is_embedded_and_counted():
    doc = Document("d", "# A very long heading title here\n\n" + words(200), format="markdown")
    pieces = HeadingChunker(TOK, 50, 0).split(doc)
    assert all(p.heading == "A very long heading title here" for p in pieces)
    assert max(TOK.count([embed_text(p) for p in pieces])) <= 50


def test_auto_picks_headings_for_markup_and_guard_recuts_overlong():
    cs = ChunkerSet("auto", TOK, 40, 0)
    assert isinstance(cs.chunker_for(Document("d", "", format="rst")), HeadingChunker)
    assert isinstance(cs.chunker_for(Document("d", "", format="code")), RecursiveChunker)
