"""Reading a source's bytes and decoding them as text, with the skip reasons for bad input."""

from __future__ import annotations

import codecs
import errno
from pathlib import Path

from llmops_cli.core.loaders.base import SkipSource, SourceFile

BINARY_SNIFF_BYTES = 8192  # a NUL byte in the first 8 KB marks a file as binary


def unreadable_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "unreadable: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "unreadable: is a directory"
    if isinstance(exc, FileNotFoundError):
        return "unreadable: file not found (deleted, or a broken symbolic link)"
    if exc.errno == errno.ELOOP:
        return "unreadable: symbolic link loop"
    return f"unreadable: {exc.strerror or exc}"


def read_source_bytes(source: SourceFile | Path) -> bytes:
    """The bytes load_source already read for this source (see SourceFile.data), else the file's."""
    if isinstance(source, SourceFile):
        if source.data is not None:
            return source.data
        source = source.path
    try:
        return source.read_bytes()
    except OSError as exc:
        raise SkipSource(unreadable_reason(exc)) from exc


def looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:BINARY_SNIFF_BYTES]


def decode_text(data: bytes) -> str:
    """UTF-8 text (a UTF-8 BOM is dropped, newlines normalised to \\n), or SkipSource saying what is wrong."""
    if not data.strip():
        raise SkipSource("empty")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SkipSource("UTF-16 text is not supported (convert it to UTF-8)")
    if looks_binary(data):
        raise SkipSource("binary file")
    offset = 0
    if data.startswith(codecs.BOM_UTF8):
        data, offset = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkipSource(f"invalid UTF-8 at byte {exc.start + offset}") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SkipSource("empty")
    return text


def read_text(source: SourceFile | Path) -> str:
    return decode_text(read_source_bytes(source))
