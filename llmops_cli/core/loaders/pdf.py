"""PDF via pypdf: the text of each page, pages separated by a blank line; "pages" in the metadata."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions, make_document, short_error
from llmops_cli.core.loaders.reading import read_source_bytes

PAGE_SEPARATOR = "\n\n"


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs and warns about every oddity of a malformed file; the skip reason is the one message we want."""
    logger = logging.getLogger("pypdf")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def load_pdf(sf: SourceFile, _options: TableOptions) -> list[Document]:
    from pypdf import PdfReader

    data = read_source_bytes(sf)
    if not data.strip():
        raise SkipSource("empty")
    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    opened = reader.decrypt("")  # readable when only an owner password is set
                except Exception:  # noqa: BLE001 - missing crypto backend, unsupported algorithm...
                    opened = 0
                if not opened:
                    raise SkipSource("encrypted PDF (a password is needed)")
            pages = [(page.extract_text() or "").strip() for page in reader.pages]
            info = reader.metadata
            title = info.title if info is not None else None
        except SkipSource:
            raise
        except Exception as exc:
            raise SkipSource(f"corrupt PDF: {short_error(exc)}") from exc
    text = PAGE_SEPARATOR.join(page for page in pages if page)
    if not text.strip():
        raise SkipSource("no extractable text in the PDF (scanned images?)")
    return [make_document(sf, text, "pdf", title=title, extra={"pages": len(pages)})]
