"""Licence headers (the leading reST comment or Markdown HTML comment of every page of a project's docs) are not
content: they are dropped at load time, and a leading comment that is no licence is kept."""

from __future__ import annotations

from pathlib import Path

from llmops_cli.core.loaders import discover, load_source
from llmops_cli.core.loaders.text import strip_html_licence_comment, strip_rst_licence_header

ASF_RST = (
    " .. Licensed to the Apache Software Foundation (ASF) under one\n"
    "    or more contributor license agreements.\n"
    "\n"
    " ..   http://www.apache.org/licenses/LICENSE-2.0\n"
    "\n"
    " .. Unless required by applicable law or agreed to in writing,\n"
    "    under the License.\n"
    "\n"
)


def _load(path: Path):
    files, _ = discover([path], None, [])
    return load_source(files[0], max_bytes=1 << 20)[0]


def test_rst_licence_comment_blocks_are_dropped_and_the_page_kept(tmp_path: Path):
    path = tmp_path / "pools.rst"
    path.write_text(ASF_RST + ".. _concepts:pool:\n\nPools\n=====\n\nSome systems can get overwhelmed.\n")
    doc = _load(path)
    assert "License" not in doc.text and "Apache" not in doc.text
    assert doc.text.startswith(".. _concepts:pool:") and doc.metadata["title"] == "Pools"


def test_rst_comments_that_are_no_licence_and_directives_are_kept():
    note = ".. a note for editors\n   kept as it is\n\nTitle\n=====\n"
    assert strip_rst_licence_header(note) == note
    directive = ".. note::\n   Licensed plugins need a key.\n\nText\n"
    assert strip_rst_licence_header(directive) == directive
    # a licence mentioned after the first paragraph is content
    later = "Title\n=====\n\n.. Licensed to the ASF\n"
    assert strip_rst_licence_header(later) == later


def test_markdown_licence_comment_is_dropped(tmp_path: Path):
    path = tmp_path / "README.md"
    path.write_text("<!--\n Licensed to the Apache Software Foundation (ASF)\n-->\n\n# Guide\n\nRun it.\n")
    doc = _load(path)
    assert doc.text == "# Guide\n\nRun it." and doc.metadata["title"] == "Guide"
    kept = "<!-- TOC -->\n# Guide\n"
    assert strip_html_licence_comment(kept) == kept
