"""Where inputs and results live: the rules for the locations a DAG run is given (pure; no I/O).

A location is a local ABSOLUTE path (``/srv/docs``) or a URL (``file:///srv/docs``, ``s3://bucket/docs``,
``gs://bucket/docs``, any fsspec protocol). A relative path is refused: on Airflow it would resolve against a
worker's own working directory, which differs between workers and from the machine that triggered the run.
``~`` is refused too (each worker has its own home). Reading and writing URLs is ``adapters/storage``'s job.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

# a URL's scheme (two characters or more, so a Windows drive letter "C:" is not one) followed by "://"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")

# The same rule as a JSON-schema pattern, for DAG params (Airflow checks it when the run is created)
LOCATION_PATTERN = r"^(/|[A-Za-z][A-Za-z0-9+.-]+://)"
LOCATION_HELP = (
    "an absolute path or URL every Airflow worker can reach (a relative path would resolve against a worker's own "
    "working directory), e.g. /srv/docs, file:///srv/docs or s3://bucket/docs"
)


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


def location_problem(location: str) -> str | None:
    """Why ``location`` cannot be handed to workers, or None when it is an absolute path or a URL."""
    if not isinstance(location, str) or not location.strip():
        return "empty location"
    if is_url(location) or location.startswith("/"):
        return None
    if location.startswith("~"):
        return f"{location!r} starts with '~': each worker has its own home; pass {LOCATION_HELP}"
    return f"{location!r} is a relative path; pass {LOCATION_HELP}"


def local_path(location: str) -> str | None:
    """The local path a location names (an absolute path, or a ``file://`` URL), or None for a remote URL."""
    if not is_url(location):
        return location
    u = urlsplit(location)
    if u.scheme.lower() == "file" and u.netloc in ("", "localhost"):
        return unquote(u.path) or "/"
    return None


def is_remote(location: str) -> bool:
    """True for a URL that is not a local file (s3://, gs://, http://...): read and written through fsspec."""
    return local_path(location) is None


def base_name(location: str) -> str:
    """The last part of a location's path (``s3://b/docs/a.csv`` -> ``a.csv``), never empty."""
    path = urlsplit(location).path if is_url(location) else location
    return PurePosixPath(path.rstrip("/")).name or "root"


def staging_key(location: str) -> str:
    """A short stable key for a location (the same on every worker): names its local copy or staging folder."""
    return hashlib.sha256(location.encode("utf-8")).hexdigest()[:16]


def join(location: str, name: str) -> str:
    """``name`` under the folder ``location`` (a URL or a path)."""
    return location.rstrip("/") + "/" + name.lstrip("/")


def refuse_folder(path: str | Path, what: str = "--output", *, hint: str | None = None) -> None:
    """A usage error (exit 2) when the output file ``path`` is a folder: writing it would fail after the work."""
    from llmops_cli.errors import UsageError

    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{what} {path} is a folder", hint=hint or f"name a file, e.g. {p / ('out' + p.suffix)}")


def check_output_file(path: str | Path, what: str = "--output", *, hint: str | None = None) -> None:
    """Refuse, before any work, an output file that could not be written at the end (where it was an internal error
    after the whole run was paid for): a folder by that name, or a folder that cannot be made or written in. ``what``
    names it in the error ("--output", "--html", "the errors file"); ``hint`` replaces the default fix for a folder."""
    import os

    from llmops_cli.errors import UsageError

    refuse_folder(path, what, hint=hint)
    folder = Path(path).expanduser().parent
    while not folder.exists() and folder != folder.parent:  # the first folder that is there: the rest is made
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{what} {path}: cannot write in {folder}" + ("" if folder.is_dir() else " (it is not a folder)"),
            hint=f"pass a {what} in a folder you can write",
        )
