"""Text formats: Markdown, reStructuredText and plain text. One Document per file; the title is the first
heading (Markdown front matter ``title:`` wins), found without a full parser."""

from __future__ import annotations

import re

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SourceFile, TableOptions, make_document
from llmops_cli.core.loaders.reading import read_text

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$")
# an image embedded as a data: URI (![chart](data:image/png;base64,...)): its base64 is not text; 150 KB of it made
# hundreds of chunks of noise. The URI's type stays, so the text still says an image was there.
_DATA_URI = re.compile(r"(data:[\w.+-]+/[\w.+-]+;base64,)[A-Za-z0-9+/=\s]{64,}")
_RST_ADORNMENT_CHARS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter title, text without the YAML front matter block)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None, text
    for end in range(1, min(len(lines), 300)):
        if lines[end].strip() in ("---", "..."):
            title = None
            for line in lines[1:end]:
                match = _FRONT_MATTER_TITLE.match(line)
                if match:
                    title = match.group(1).strip().strip("'\"")
                    break
            return title, "\n".join(lines[end + 1 :])
    return None, text


def markdown_title(text: str) -> str | None:
    """The first ATX (``# T``) or setext (``T`` over ``===``) heading outside fenced code blocks."""
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue
        atx = _ATX.match(line)
        if atx:
            return atx.group(1)
        if (
            line.strip()
            and not line.startswith(("    ", "\t"))
            and i + 1 < len(lines)
            and _SETEXT_UNDERLINE.match(lines[i + 1])
            and (i == 0 or not lines[i - 1].strip())
        ):
            return line.strip()
    return None


def _is_rst_adornment(line: str) -> bool:
    stripped = line.rstrip()
    return len(stripped) >= 2 and stripped[0] in _RST_ADORNMENT_CHARS and stripped == stripped[0] * len(stripped)


def rst_title(text: str) -> str | None:
    """The first section title: an unindented line under a punctuation underline (with or without overline)."""
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        title = line.strip()
        if not title or _is_rst_adornment(line) or title.startswith(".. "):
            continue
        underline = lines[i + 1]
        if not _is_rst_adornment(underline) or underline[0].isspace():
            continue
        if len(underline.rstrip()) < min(len(title), 4):
            continue
        overlined = i > 0 and _is_rst_adornment(lines[i - 1]) and not lines[i - 1][0].isspace()
        if line[0].isspace() and not overlined:
            continue  # only an overlined title may be inset
        if i > 0 and lines[i - 1].strip() and not overlined:
            continue  # a paragraph's continuation line, not a title
        return title
    return None


# A leading comment that is a licence header ("Licensed to the Apache Software Foundation ...", a copyright line):
# boilerplate repeated on every page of a project's docs. Indexed, it is a near-identical chunk per page that
# matches every licence question and that `eval generate` writes questions from; so it is dropped at load time.
_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|spdx-license-identifier", re.IGNORECASE)
_RST_EXPLICIT = re.compile(r"^\.\.(?:\s|$)")
_RST_NOT_COMMENT = re.compile(r"^\.\.\s+(?:_[^:]*:|\[[^\]]*\]|\|[^|]*\||[\w:+-]+::)")
_HTML_COMMENT = re.compile(r"\A\s*<!--(.*?)-->[ \t]*\n?", re.DOTALL)


def strip_rst_licence_header(text: str) -> str:
    """``text`` without its leading reST comment blocks when one of them is a licence header."""
    lines = text.split("\n")
    i, end, licence = 0, 0, False
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if not _RST_EXPLICIT.match(line.lstrip()) or _RST_NOT_COMMENT.match(line.lstrip()):
            break
        # a comment: its first line and every following line indented more than its marker (or blank)
        indent = len(line) - len(line.lstrip())
        block = [line]
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        licence = licence or bool(_LICENCE_WORDS.search("\n".join(block)))
        end = i
    return "\n".join(lines[end:]) if licence else text


def strip_html_licence_comment(text: str) -> str:
    """``text`` without a leading HTML comment (Markdown's) that is a licence header."""
    m = _HTML_COMMENT.match(text)
    return text[m.end() :] if m and _LICENCE_WORDS.search(m.group(1)) else text


def load_markdown(sf: SourceFile, _options: TableOptions) -> list[Document]:
    front_title, text = split_front_matter(read_text(sf))
    text = strip_html_licence_comment(text.lstrip("\n")).strip("\n")
    text = _DATA_URI.sub(r"\1…", text)
    return [make_document(sf, text, "markdown", title=front_title or markdown_title(text))]


def load_rst(sf: SourceFile, _options: TableOptions) -> list[Document]:
    text = strip_rst_licence_header(read_text(sf).strip("\n")).strip("\n")
    return [make_document(sf, text, "rst", title=rst_title(text))]


def load_plain_text(sf: SourceFile, _options: TableOptions) -> list[Document]:
    return [make_document(sf, read_text(sf).strip("\n"), "text")]
