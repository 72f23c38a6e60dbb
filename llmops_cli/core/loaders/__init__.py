"""Document loaders for ``llmops ingest``: find files (``discover``), hash them (``content_hash``), and parse
one into Documents (``load_source``; ``load_source_hashed`` also gives the hash of the bytes it parsed),
skipping bad input with a reason (``SkipSource``).

Formats: Markdown, reStructuredText, plain text, HTML, PDF, source code, GitHub issue and Slack exports
(JSON/JSONL), and tables (CSV/TSV/parquet). Heavy libraries (pandas, pypdf, bs4) are imported when used.
"""

from llmops_cli.core.loaders.base import SkipSource, SourceFile, TableOptions
from llmops_cli.core.loaders.discovery import discover
from llmops_cli.core.loaders.loading import content_hash, load_source, load_source_hashed
from llmops_cli.core.loaders.registry import SUPPORTED_SUFFIXES

__all__ = [
    "SUPPORTED_SUFFIXES",
    "SkipSource",
    "SourceFile",
    "TableOptions",
    "content_hash",
    "discover",
    "load_source",
    "load_source_hashed",
]
