"""Heading-aware chunking for Markdown and reStructuredText: split by section, keep the heading path.

The heading path ("Guide > Install > Linux") is kept as metadata, shown in results, and embedded in
front of the chunk's text so a section's chunks stay findable by its title; the size includes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops_cli.core.chunking.base import Chunker, Piece
from llmops_cli.core.chunking.recursive import RecursiveChunker
from llmops_cli.core.documents import Document

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
            elif i + 1 < len(lines) and line.strip() and re.fullmatch(r"\s*(=+|-+)\s*", lines[i + 1]) and not line.startswith(("-", "*", " ")):
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
        if _RST_ADORN.match(line) and i + 2 < n and lines[i + 1].strip() and _RST_ADORN.match(lines[i + 2]) and lines[i + 2].strip()[0] == line.strip()[0]:
            title, style, step = lines[i + 1].strip(), (line.strip()[0], True), 3
        elif line.strip() and not _RST_ADORN.match(line) and i + 1 < n and _RST_ADORN.match(lines[i + 1]) \
                and len(lines[i + 1].rstrip()) >= len(line.rstrip()) and not line.startswith((" ", "\t")):
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
    name = "headings"

    def __init__(self, tokens, size, overlap):
        super().__init__(tokens, size, overlap)
        self._recursive = RecursiveChunker(tokens, size, overlap)

    def split(self, doc: Document) -> list[Piece]:
        sections = rst_sections(doc.text) if doc.format == "rst" else markdown_sections(doc.text)
        pieces: list[Piece] = []
        for sec in sections:
            heading = HEADING_SEP.join(sec.path)
            htoks = self.tokens.count([heading])[0] + 1 if heading else 0
            if htoks > self.size // 2:  # absurdly long heading path: keep only the last title
                heading = sec.path[-1][:200]
                htoks = self.tokens.count([heading])[0] + 1
            budget = max(self.size - htoks, 16)
            for text in self._recursive.split_text(sec.body, budget):
                pieces.append(Piece(text, heading))
        return pieces
