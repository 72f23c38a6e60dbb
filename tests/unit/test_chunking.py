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
    text = "\n\n".join(
        f"Paragraph {p}. " + ". ".join(words(7, f"p{p}s{s}x") for s in range(5)) + "." for p in range(12)
    )
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
    md = (
        "# Guide\n\nIntro.\n\n## Install\n\nSteps.\n\n```\n# not a heading\n```\n\n"
        "### Linux\n\nApt.\n\n## Use\n\nRun it.\n"
    )
    secs = markdown_sections(md)
    assert [" > ".join(s.path) for s in secs] == ["Guide", "Guide > Install", "Guide > Install > Linux", "Guide > Use"]
    assert "# not a heading" in secs[1].body


def test_rst_heading_levels_follow_first_appearance():
    rst = (
        ".. comment\n\n=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\n\nBody.\n\n"
        "Sub\n~~~\n\nDeep.\n\nOther\n-----\n\nMore.\n"
    )
    secs = rst_sections(rst)
    assert [" > ".join(s.path) for s in secs] == [
        "",
        "Title",
        "Title > Section",
        "Title > Section > Sub",
        "Title > Other",
    ]


def test_heading_is_embedded_and_counted():
    doc = Document("d", "# A very long heading title here\n\n" + words(200), format="markdown")
    pieces = HeadingChunker(TOK, 50, 0).split(doc)
    assert all(p.heading == "A very long heading title here" for p in pieces)
    assert max(TOK.count([embed_text(p) for p in pieces])) <= 50


def test_auto_picks_headings_for_markup_and_guard_recuts_overlong():
    cs = ChunkerSet("auto", TOK, 40, 0)
    assert isinstance(cs.chunker_for(Document("d", "", format="rst")), HeadingChunker)
    assert isinstance(cs.chunker_for(Document("d", "", format="code")), RecursiveChunker)


class _Recording(WordTokens):
    """WordTokens that remembers the longest text it tokenized and the largest batch it counted."""

    def __init__(self, max_tokens: int):
        super().__init__(max_tokens)
        self.longest = 0
        self.largest_batch = 0

    def token_spans(self, text):
        self.longest = max(self.longest, len(text))
        return super().token_spans(text)

    def count(self, texts):
        self.largest_batch = max(self.largest_batch, len(texts))
        return super().count(texts)


def _long_inputs() -> list[Document]:
    one_line = " ".join(f"w{i}" + ("." if i % 17 == 0 else "") for i in range(15_000))  # ~100 kB, no newline
    paras = "\n\n".join(words(40, f"p{p}_") + "\n" + words(9, f"q{p}_") for p in range(400))
    return [Document("line", one_line), Document("paras", paras), Document("md", "# T\n\n" + paras, format="markdown")]


@pytest.mark.parametrize("strategy", ["auto", "recursive", "tokens"])
def test_a_long_text_is_tokenized_a_block_at_a_time_into_the_same_chunks(monkeypatch, strategy):
    from llmops_cli.core.chunking import base, select

    whole = [ChunkerSet(strategy, WordTokens(60), 50, 10).split(d) for d in _long_inputs()]
    # memory goes with the longest text a tokenizer sees at once, and the largest batch it counts
    monkeypatch.setattr(base, "TOKENIZE_BLOCK", 5000)
    rec = _Recording(60)
    blocked = [ChunkerSet(strategy, rec, 50, 10).split(d) for d in _long_inputs()]
    assert rec.longest <= 5000 and rec.largest_batch <= select.COUNT_BATCH
    assert blocked == whole and sum(map(len, whole)) > 800


def test_a_run_without_whitespace_longer_than_a_block_is_cut_not_lost(monkeypatch):
    from llmops_cli.core.chunking import base

    monkeypatch.setattr(base, "TOKENIZE_BLOCK", 1000)
    text = "x" * 5000 + " tail"
    idx = base.TokenIndex(text, WordTokens())
    assert idx.count(0, len(text)) == 6  # five 1000-character runs (cut at block ends) and "tail"


def test_runs_of_tiny_sections_are_packed_up_to_the_size():
    md = "# Guide\n\n" + "".join(f"## S{i}\n\nr{i}\n\n" for i in range(300))
    pieces = HeadingChunker(TOK, 50, 0).split(Document("d", md, format="markdown"))
    assert 10 <= len(pieces) < 60  # each section is 4 tokens as a chunk of its own ("Guide > S1 r1"): ~12 to a piece
    assert all(TOK.count([embed_text(p)])[0] <= 50 for p in pieces)
    assert all(p.heading == "Guide" for p in pieces)  # the path the packed sections share
    joined = "\n\n".join(p.text for p in pieces)
    for i in (0, 137, 299):  # each section's own title stays in the text, before its body
        assert f"S{i}\nr{i}" in joined


def test_a_file_of_20k_tiny_sections_is_not_20k_chunks():
    md = "".join(f"## S{i}\nx{i} y\n" for i in range(20_000))
    cs = ChunkerSet("auto", WordTokens(254), 200, 30)
    pieces = cs.split(Document("d", md, format="markdown"))
    assert len(pieces) < 20_000 / 20 and max(cs.tokens.count([embed_text(p) for p in pieces])) <= 200
    assert "S19999\nx19999 y" in pieces[-1].text


def test_sections_of_ordinary_size_are_not_packed():
    big = words(30, "b")
    md = (
        f"# A\n\n{big}\n\n## Tiny 1\n\nt1\n\n## Tiny 2\n\nt2\n\n## Big\n\n{big}\n\n## Lone\n\nt3\n\n## Big 2\n\n{big}\n"
    )
    pieces = HeadingChunker(TOK, 50, 0).split(Document("d", md, format="markdown"))
    assert [(p.heading, p.text) for p in pieces] == [
        ("A", big),
        ("A", "Tiny 1\nt1\n\nTiny 2\nt2"),
        ("A > Big", big),
        ("A > Lone", "t3"),
        ("A > Big 2", big),
    ]
