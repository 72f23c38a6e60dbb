"""Bad input is skipped with a clear reason, never a crash; content_hash is streamed and stable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from llmops_cli.core.loaders import SkipSource, SourceFile, content_hash, discover, load_source
from llmops_cli.core.loaders.loading import format_size
from llmops_cli.core.loaders.reading import unreadable_reason


def source(path: Path) -> SourceFile:
    files, missing = discover([path], None, [])
    assert missing == []
    return files[0]


def skip_reason(path: Path, max_bytes: int = 1 << 20) -> str:
    with pytest.raises(SkipSource) as raised:
        load_source(source(path), max_bytes=max_bytes)
    return raised.value.reason


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b"  \n\t\n", "empty"),
        ("bom-only.md", b"\xef\xbb\xbf\n", "empty"),
        ("nul.md", b"# title\n\x00\x01\x02", "binary file"),
        ("program", b"\x7fELF\x02\x01\x00\x00", "binary file"),
        ("latin1.rst", "Title\n=====\n\ncaf\xe9\n".encode("latin-1"), "invalid UTF-8 at byte 16"),
        ("bom-latin1.txt", b"\xef\xbb\xbfab\xff", "invalid UTF-8 at byte 5"),
        ("utf16.txt", "hello".encode("utf-16"), "UTF-16 text is not supported (convert it to UTF-8)"),
        ("empty.html", b"<html><script>x()</script></html>", "empty: no text in the HTML"),
        ("image.png", b"\x89PNG\r\n", "unsupported file type .png"),
        ("empty.pdf", b"", "empty"),
    ],
)
def test_skip_reasons(tmp_path: Path, name: str, content: bytes, reason: str):
    path = tmp_path / name
    path.write_bytes(content)
    assert skip_reason(path) == reason


def test_utf8_bom_is_accepted(tmp_path: Path):
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf# Title\n")
    [doc] = load_source(source(path), max_bytes=1 << 20)
    assert doc.text == "# Title" and doc.metadata["title"] == "Title"


def test_size_limit_is_checked_before_reading(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"\x00" * 3000)  # binary, but too big comes first: the content is never looked at
    assert skip_reason(path, max_bytes=2048) == "over the 2 KB size limit (2.9 KB)"
    pdf = tmp_path / "big.pdf"
    pdf.write_bytes(b"not a pdf" * 500)
    assert skip_reason(pdf, max_bytes=1000).startswith("over the 1000 bytes size limit")


def test_size_limit_wording():
    assert format_size(20 << 20) == "20 MB"
    assert format_size(int(2.5 * (1 << 20))) == "2.5 MB"
    assert format_size(512) == "512 bytes"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "secret.md"
    path.write_text("# x\n")
    path.chmod(0)
    try:
        assert skip_reason(path) == "unreadable: permission denied"
        with pytest.raises(SkipSource, match="permission denied"):
            content_hash(source(path))
    finally:
        path.chmod(0o644)


def test_unreadable_reasons_name_the_cause():
    # the permission test above cannot run as root; the wording it relies on is checked here
    assert unreadable_reason(PermissionError(13, "Permission denied")) == "unreadable: permission denied"
    assert unreadable_reason(OSError(5, "Input/output error")) == "unreadable: Input/output error"


def test_broken_link_directory_and_vanished_file(tmp_path: Path):
    os.symlink(tmp_path / "nowhere.md", tmp_path / "link.md")
    assert skip_reason(tmp_path / "link.md").startswith("unreadable: file not found")
    (tmp_path / "folder.md").mkdir()
    sf = SourceFile(path=tmp_path / "folder.md", source_id="folder.md", root=tmp_path, size=0)
    with pytest.raises(SkipSource, match="is a directory"):
        load_source(sf, max_bytes=1 << 20)
    gone = tmp_path / "gone.md"
    gone.write_text("# soon gone\n")
    sf = source(gone)
    gone.unlink()
    with pytest.raises(SkipSource, match="unreadable"):
        load_source(sf, max_bytes=1 << 20)
    with pytest.raises(SkipSource, match="unreadable"):
        content_hash(sf)


def test_content_hash_is_the_sha256_of_the_bytes(tmp_path: Path):
    path = tmp_path / "big.bin.txt"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one streamed block
    path.write_bytes(data)
    sf = source(path)
    assert content_hash(sf) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + b"!")
    assert content_hash(sf) != hashlib.sha256(data).hexdigest()
