"""Markdown, reStructuredText, plain text, source code and HTML: one Document per file, with metadata."""

from __future__ import annotations

from pathlib import Path

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders import SourceFile, discover, load_source

MAX = 1 << 20


def load_one(path: Path) -> Document:
    files, missing = discover([path], None, [])
    assert missing == [] and len(files) == 1
    documents = load_source(files[0], max_bytes=MAX)
    assert len(documents) == 1
    return documents[0]


def assert_flat(metadata: dict) -> None:
    assert all(isinstance(value, str | int | float | bool) for value in metadata.values()), metadata


def test_markdown_title_text_and_metadata(tmp_path: Path):
    path = tmp_path / "guide.md"
    path.write_text("Intro line\n\n```bash\n# not a heading\n```\n\n## Install it ##\n\nRun `pip`.\n")
    doc = load_one(path)
    assert doc.format == "markdown" and doc.source_id == "guide.md"
    assert doc.metadata == {"source": "guide.md", "path": str(path), "format": "markdown", "title": "Install it"}
    assert doc.text.startswith("Intro line") and "Run `pip`." in doc.text


def test_markdown_front_matter_and_setext(tmp_path: Path):
    path = tmp_path / "page.markdown"
    path.write_text('---\ntitle: "From front matter"\ntags: [a]\n---\nBody\n=====\n\ntext\n')
    doc = load_one(path)
    assert doc.metadata["title"] == "From front matter"
    assert doc.text.startswith("Body\n=====")  # the front matter block is metadata, not content
    path.write_text("Setext Title\n============\n\ntext\n")
    assert load_one(path).metadata["title"] == "Setext Title"


def test_an_image_embedded_as_a_data_uri_is_not_indexed_as_text(tmp_path: Path):
    # before: 150 KB of base64 became hundreds of chunks of noise
    import base64

    blob = base64.b64encode(bytes(range(256)) * 600).decode()
    path = tmp_path / "report.md"
    path.write_text(f"# Report\n\nThe chart:\n\n![chart](data:image/png;base64,{blob})\n\nRetries went down.\n")
    doc = load_one(path)
    assert "![chart](data:image/png;base64,…)" in doc.text and "Retries went down." in doc.text
    assert len(doc.text) < 200
    path.write_text("A short inline one stays: data:text/plain;base64,aGVsbG8=\n")
    assert "aGVsbG8=" in load_one(path).text


def test_rst_title_skips_comments_and_labels(tmp_path: Path):
    path = tmp_path / "faq.rst"
    path.write_bytes(
        b" .. Licensed to the ASF\n    under the License.\n\n.. _faq:\n\n=====\n FAQ\n=====\n\n"
        b"Why?\r\n----\r\n\r\nBecause.\r\n"
    )
    doc = load_one(path)
    assert doc.format == "rst" and doc.metadata["title"] == "FAQ"
    assert "\r" not in doc.text and "Because." in doc.text


def test_plain_text_and_text_without_extension(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("\ufeffjust words\n")
    doc = load_one(tmp_path / "notes.txt")
    assert doc.format == "text" and doc.text == "just words" and "title" not in doc.metadata
    (tmp_path / "README").write_text("readme words\n")
    assert load_one(tmp_path / "README").format == "text"


def test_code_files_carry_their_language(tmp_path: Path):
    expected = {"m.py": "python", "a.ts": "typescript", "q.sql": "sql", "c.yaml": "yaml", "Dockerfile": "dockerfile"}
    for name, language in expected.items():
        (tmp_path / name).write_text("x = 1\n")
        doc = load_one(tmp_path / name)
        assert (doc.format, doc.metadata["language"]) == ("code", language)
        assert_flat(doc.metadata)


HTML = """<!doctype html>
<html><head><title> The  Page </title><style>body{color:red}</style><script>var x = 1;</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<!-- a comment -->
<h1>Main   heading</h1>
<p>First <b>bold</b> paragraph
spread over lines.</p>
<h2>Sub</h2>
<ul><li>one</li><li>two <em>items</em></li></ul>
<pre>def f():
    return 1</pre>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<p>line<br>break &amp; entity</p>
<script>document.write("hidden")</script>
</body></html>
"""


def test_html_keeps_text_and_structure_not_tags(tmp_path: Path):
    path = tmp_path / "page.html"
    path.write_text(HTML)
    doc = load_one(path)
    assert doc.format == "html" and doc.metadata["title"] == "The Page"
    assert doc.text == (
        "# Main heading\n\n"
        "First bold paragraph spread over lines.\n\n"
        "## Sub\n\n"
        "- one\n\n- two items\n\n"
        "```\ndef f():\n    return 1\n```\n\n"
        "k | v\na | 1\n\n"
        "line\nbreak & entity"
    )
    for gone in ("color:red", "var x", "hidden", "Docs", "a comment", "<"):
        assert gone not in doc.text


def test_html_title_falls_back_to_the_first_h1(tmp_path: Path):
    path = tmp_path / "x.htm"
    path.write_text("<body><h1>Only H1</h1><p>text</p></body>")
    assert load_one(path).metadata["title"] == "Only H1"


def test_source_file_can_be_built_by_hand(tmp_path: Path):
    path = tmp_path / "hand.md"
    path.write_text("# Hand\n")
    sf = SourceFile(path=path, source_id="custom/hand.md", root=tmp_path, size=7)
    [doc] = load_source(sf, max_bytes=MAX)
    assert doc.source_id == doc.metadata["source"] == "custom/hand.md"
