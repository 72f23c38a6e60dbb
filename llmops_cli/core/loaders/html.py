"""HTML: the text, not the tags. Scripts, styles and navigation are dropped; headings become Markdown-style
``#`` lines and code blocks are fenced, so the structure survives for a heading-aware chunker."""

from __future__ import annotations

import re
import warnings

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions, make_document
from llmops_cli.core.loaders.reading import read_text

DROPPED_TAGS = ("head", "script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "canvas")
HEADING_LEVELS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCK_TAGS = frozenset(
    "html body main article section header footer aside div p blockquote ul ol dl dt dd figure figcaption "
    "form fieldset address details summary hr caption center".split()
)
_SPACES = re.compile(r"\s+")


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class _TextRenderer:
    """Walks the parsed tree and collects paragraphs ("blocks"); inline text is gathered until a block ends."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def flush(self) -> None:
        lines = (line.strip() for line in "".join(self._inline).split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        self._inline = []
        if paragraph and paragraph != "-":
            self.blocks.append(paragraph)

    def walk(self, node) -> None:
        from bs4 import NavigableString, Tag
        from bs4.element import PreformattedString

        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA...
                    self._inline.append(_SPACES.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in HEADING_LEVELS:
                self.flush()
                heading = _collapse(child.get_text(" "))
                if heading:
                    self.blocks.append("#" * HEADING_LEVELS[name] + " " + heading)
            elif name == "pre":
                self.flush()
                code = child.get_text().strip("\n")
                if code.strip():
                    self.blocks.append(f"```\n{code}\n```")
            elif name == "br":
                self._inline.append("\n")
            elif name == "li":
                self.flush()
                self._inline.append("- ")
                self.walk(child)
                self.flush()
            elif name == "table":
                self.flush()
                rows = []
                for row in child.find_all("tr"):
                    cells = [_collapse(cell.get_text(" ")) for cell in row.find_all(["td", "th"], recursive=False)]
                    if any(cells):
                        rows.append(" | ".join(cells))
                if rows:
                    self.blocks.append("\n".join(rows))
            elif name in BLOCK_TAGS:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)


def html_to_text(html: str) -> tuple[str | None, str]:
    """(title, text) of an HTML page. The title is <title>, else the first <h1>."""
    from bs4 import BeautifulSoup

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 warns when markup "looks like a URL or file name"
        soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = _collapse(title_tag.get_text(" ")) if title_tag else ""
    if not title:
        h1 = soup.find("h1")
        title = _collapse(h1.get_text(" ")) if h1 else ""
    for tag in soup.find_all(DROPPED_TAGS):
        tag.decompose()
    renderer = _TextRenderer()
    renderer.walk(soup)
    renderer.flush()
    return title or None, "\n\n".join(renderer.blocks)


def load_html(sf: SourceFile, _options: TableOptions) -> list[Document]:
    try:
        title, text = html_to_text(read_text(sf))
    except RecursionError as exc:
        raise SkipSource("HTML nested too deeply to parse") from exc
    if not text.strip():
        raise SkipSource("empty: no text in the HTML")
    return [make_document(sf, text, "html", title=title)]
