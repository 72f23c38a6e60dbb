"""Heading-aware chunking for Markdown and reStructuredText: split by section, keep the heading path.

The heading path ("Guide > Install > Linux") is kept as metadata, shown in results, and embedded in
front of the chunk's text so a section's chunks stay findable by its title; the size includes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops_cli.core.chunking.base import Chunker, Piece
from llmops_cli.core.chunking.recursive import RecursiveChunker
from llmops_cli.core.documents import Document, indexed_text

_MD_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")
HEADING_SEP = " > "


@dataclass
class Section:
    path: list[str]
    body: str


def markdown_sections(text: str) -> list[Section]:
    lines = text.splitlines()
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush():
        if "".join(body).strip():
            sections.append(Section([t for _, t in stack], "\n".join(body).strip("\n")))
        body.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        level, title = 0, ""
        if not in_fence:
            m = _MD_ATX.match(line)
            if m:
                level, title = len(m.group(1)), m.group(2).strip()
            elif (
                i + 1 < len(lines)
                and line.strip()
                and re.fullmatch(r"\s*(=+|-+)\s*", lines[i + 1])
                and not line.startswith(("-", "*", " "))
            ):
                level, title = (1 if "=" in lines[i + 1] else 2), line.strip()
                i += 1
        if level:
            flush()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
        else:
            body.append(line)
        i += 1
    flush()
    return sections


def rst_sections(text: str) -> list[Section]:
    """reST titles: a line underlined (optionally also overlined) by a run of one punctuation character.
    Levels follow the order in which adornment styles first appear, as docutils does."""
    lines = text.splitlines()
    styles: list[tuple[str, bool]] = []
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []

    def flush():
        if "".join(body).strip():
            sections.append(Section([t for _, t in stack], "\n".join(body).strip("\n")))
        body.clear()

    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        title = None
        style = None
        # overline + title + underline
        if (
            _RST_ADORN.match(line)
            and i + 2 < n
            and lines[i + 1].strip()
            and _RST_ADORN.match(lines[i + 2])
            and lines[i + 2].strip()[0] == line.strip()[0]
        ):
            title, style, step = lines[i + 1].strip(), (line.strip()[0], True), 3
        elif (
            line.strip()
            and not _RST_ADORN.match(line)
            and i + 1 < n
            and _RST_ADORN.match(lines[i + 1])
            and len(lines[i + 1].rstrip()) >= len(line.rstrip())
            and not line.startswith((" ", "\t"))
        ):
            title, style, step = line.strip(), (lines[i + 1].strip()[0], False), 2
        if title is not None and style is not None:
            if style not in styles:
                styles.append(style)
            level = styles.index(style) + 1
            flush()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            i += step
            continue
        body.append(line)
        i += 1
    flush()
    return sections


class HeadingChunker(Chunker):
    """One section's pieces carry its heading path. Runs of tiny sections (under ``min_section`` tokens, heading
    included; default size/8) are packed together up to ``size``: a file of 100k one-line sections would otherwise
    be 100k chunks of a few words. A packed piece's heading is the path the sections share; each section's own
    titles below it stay in the text, so nothing a search could match is dropped."""

    name = "headings"

    def __init__(self, tokens, size, overlap, min_section: int | None = None):
        super().__init__(tokens, size, overlap)
        self._recursive = RecursiveChunker(tokens, size, overlap)
        self.min_section = max(1, size // 8) if min_section is None else min_section

    def split(self, doc: Document) -> list[Piece]:
        sections = rst_sections(doc.text) if doc.format == "rst" else markdown_sections(doc.text)
        costs = self._small_costs(sections)
        pieces: list[Piece] = []
        run: list[Section] = []
        run_cost = 0
        for sec, cost in zip(sections, costs, strict=False):
            if cost is None:  # not small: on its own, as always
                self._flush(run, pieces)
                run, run_cost = [], 0
                pieces.extend(self._section_pieces(sec))
                continue
            if run and run_cost + cost > self.size:
                self._flush(run, pieces)
                run, run_cost = [], 0
            run.append(sec)
            run_cost += cost
        self._flush(run, pieces)
        return pieces

    def _small_costs(self, sections: list[Section]) -> list[int | None]:
        """Each section's tokens as a chunk of its own when under ``min_section``, else None. Only sections short in
        characters are counted (a word-piece holds at most a few characters): ordinary sections cost nothing more."""
        out: list[int | None] = [None] * len(sections)
        cand = [i for i, s in enumerate(sections) if len(s.body) + sum(map(len, s.path)) < self.min_section * 8]
        for b in range(0, len(cand), 256):
            batch = cand[b : b + 256]
            counts = self.tokens.count(
                [indexed_text(HEADING_SEP.join(sections[i].path), sections[i].body) for i in batch]
            )
            for i, n in zip(batch, counts, strict=False):
                if n < self.min_section:
                    out[i] = n
        return out

    def _flush(self, run: list[Section], pieces: list[Piece]) -> None:
        if len(run) == 1:
            pieces.extend(self._section_pieces(run[0]))
        elif run:
            common = run[0].path
            for sec in run[1:]:
                n = 0
                while n < min(len(common), len(sec.path)) and common[n] == sec.path[n]:
                    n += 1
                common = common[:n]
            # at most the sum of the sections' own counts (the shared path is written once): fits ``size``
            text = "\n\n".join(indexed_text(HEADING_SEP.join(sec.path[len(common) :]), sec.body) for sec in run)
            pieces.append(Piece(text, HEADING_SEP.join(common)))

    def _section_pieces(self, sec: Section) -> list[Piece]:
        heading = HEADING_SEP.join(sec.path)
        htoks = self.tokens.count([heading])[0] + 1 if heading else 0
        if htoks > self.size // 2:  # absurdly long heading path: keep only the last title
            heading = sec.path[-1][:200]
            htoks = self.tokens.count([heading])[0] + 1
        budget = max(self.size - htoks, 16)
        return [Piece(text, heading) for text in self._recursive.split_text(sec.body, budget)]
