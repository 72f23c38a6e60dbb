"""Which loader reads which file: by well-known file name, then by extension. Files without an extension
are read as plain text (binary ones are skipped when loaded)."""

from __future__ import annotations

from pathlib import Path

from llmops_cli.core.loaders.base import Loader
from llmops_cli.core.loaders.code import LANGUAGE_BY_FILENAME, LANGUAGE_BY_SUFFIX, load_code
from llmops_cli.core.loaders.exports import load_json_export
from llmops_cli.core.loaders.html import load_html
from llmops_cli.core.loaders.pdf import load_pdf
from llmops_cli.core.loaders.tables import load_csv, load_parquet, load_tsv
from llmops_cli.core.loaders.text import load_markdown, load_plain_text, load_rst

LOADER_BY_SUFFIX: dict[str, Loader] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".mdx": load_markdown,
    ".rst": load_rst,
    ".txt": load_plain_text,
    ".text": load_plain_text,
    ".html": load_html,
    ".htm": load_html,
    ".xhtml": load_html,
    ".pdf": load_pdf,
    ".json": load_json_export,
    ".jsonl": load_json_export,
    ".ndjson": load_json_export,
    ".csv": load_csv,
    ".tsv": load_tsv,
    ".parquet": load_parquet,
    ".pq": load_parquet,
    **{suffix: load_code for suffix in LANGUAGE_BY_SUFFIX},
}
LOADER_BY_FILENAME: dict[str, Loader] = {name: load_code for name in LANGUAGE_BY_FILENAME}

SUPPORTED_SUFFIXES = frozenset(LOADER_BY_SUFFIX)


def has_supported_name(path: Path) -> bool:
    """True for a known extension or file name (files without an extension are decided by sniffing)."""
    return path.name in LOADER_BY_FILENAME or path.suffix.lower() in LOADER_BY_SUFFIX


# Archives are not unpacked; a folder walk lists them as skipped so the documents inside are not silently missed.
ARCHIVE_SUFFIXES = (
    ".tar.gz",
    ".tar.bz2",
    ".tar.xz",
    ".zip",
    ".tar",
    ".tgz",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".7z",
    ".rar",
)


def archive_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((suffix for suffix in ARCHIVE_SUFFIXES if lower.endswith(suffix)), None)


def loader_for(path: Path) -> Loader | None:
    if path.name in LOADER_BY_FILENAME:
        return LOADER_BY_FILENAME[path.name]
    suffix = path.suffix.lower()
    if not suffix:
        return load_plain_text
    return LOADER_BY_SUFFIX.get(suffix)
