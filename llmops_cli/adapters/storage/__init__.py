"""Reading inputs from and publishing results to locations given as URLs (fsspec: ``file://``, ``s3://``, ``gs://``,
...), for DAG tasks whose workers share no disk (the location rules are ``core/locations.py``).

- ``fetch_tree``: a folder or file URL copied into a local folder, with a marker naming the URL so discovery gives
  the files the URL's source ids (``s3://bucket/docs/a.md``), whichever worker and temporary folder read them.
- ``fetch_file``: one file URL copied to a local path (a batch input).
- ``publish``: a local result written to a location without ever replacing an earlier result: a temporary name, then
  an atomic no-clobber rename (local) or a single object put (object stores, whose puts are atomic). A target that
  exists already is refused (``ConflictError``), unless it holds exactly these bytes (a retried task that published
  before it failed).

fsspec is imported inside the functions (``llmops --help`` stays cheap); a protocol needs its fsspec package on
the workers (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``), credentials come from that package's usual places.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmops_cli.core.loaders.discovery import MIRROR_MARKER
from llmops_cli.core.locations import base_name, is_url, join, local_path
from llmops_cli.errors import ConflictError, InputError

# object stores: one put publishes a whole object or nothing, and they have no rename (a move is copy + delete)
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


def _fs(location: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs

        return url_to_fs(location)
    except ImportError as e:  # fsspec's message names the package: "Install s3fs to access S3"
        raise InputError(
            f"{location}: this URL's protocol is not installed on this machine ({e})",
            hint="install the fsspec package for it on every worker (s3fs for s3://, gcsfs for gs://)",
        ) from None
    except ValueError as e:
        raise InputError(
            f"{location}: not a location fsspec knows ({e})", hint="pass an absolute path or URL"
        ) from None


def _missing(location: str) -> InputError:
    return InputError(f"{location}: no such file or folder", hint="check the URL (and the workers' credentials for it)")


def fetch_tree(location: str, dest: Path, only: Collection[str] | None = None) -> Path:
    """Copy the file or folder at ``location`` under ``dest``; returns the local path to ingest. ``only``: just these
    source ids (URLs of files under ``location``; a shard reads its own files, not the whole prefix)."""
    fs, path = _fs(location)
    try:
        is_dir = fs.isdir(path)
        if not is_dir and not fs.isfile(path):
            raise _missing(location)
        folder = dest / base_name(location)
        if is_dir:
            prefix = location.rstrip("/")
            top = path.rstrip("/")
            for remote in sorted(fs.find(path)):
                rel = remote[len(top) :].lstrip("/") if remote.startswith(top) else Path(remote).name
                if only is not None and join(prefix, rel) not in only:
                    continue
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(target))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MIRROR_MARKER).write_text(prefix + "\n", encoding="utf-8")
            return folder
        # one file: it lies in a folder whose marker names the URL's parent, so its id is the URL itself
        parent = dest / "file"
        parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(parent / base_name(location)))
        (parent / MIRROR_MARKER).write_text(location.rsplit("/", 1)[0] + "\n", encoding="utf-8")
        return parent / base_name(location)
    except FileNotFoundError:
        raise _missing(location) from None
    except PermissionError as e:
        raise InputError(f"{location}: access denied ({e})", hint="check the workers' credentials") from None


def fetch_file(location: str, dest: Path) -> Path:
    """Copy the one file at ``location`` to ``dest`` (replaced atomically); a local location is returned as is."""
    local = local_path(location)
    if local is not None:
        return Path(local)
    fs, path = _fs(location)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, dest)
    except FileNotFoundError:
        raise _missing(location) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def exists(location: str) -> bool:
    local = local_path(location)
    if local is not None:
        return os.path.lexists(local)
    fs, path = _fs(location)
    return bool(fs.exists(path))


def _same_bytes(fs: Any, path: str, local: Path) -> bool:
    try:
        if fs.size(path) != local.stat().st_size:
            return False
        return hashlib.sha256(fs.cat_file(path)).digest() == hashlib.sha256(local.read_bytes()).digest()
    except (OSError, FileNotFoundError):
        return False


def _taken(location: str) -> ConflictError:
    return ConflictError(
        f"{location} exists already: an earlier result is never replaced",
        hint="pass another output location (or move the earlier one away first)",
    )


def publish(local: Path, location: str) -> str:
    """Write the file ``local`` to ``location`` unless something is there already (see the module doc); returns the
    location. A target holding exactly these bytes counts as published (a retry of the same task)."""
    target = local_path(location)
    if target is not None:
        dest = Path(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with local.open("rb") as src, tmp.open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, dest)  # atomic, and fails when dest exists: two runs cannot both win
            except FileExistsError:
                if dest.is_file() and dest.read_bytes() == local.read_bytes():
                    return location
                raise _taken(location) from None
            except OSError:  # a file system without hard links: the check and the rename are two steps
                if dest.exists():
                    if dest.is_file() and dest.read_bytes() == local.read_bytes():
                        return location
                    raise _taken(location) from None
                os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return location
    fs, path = _fs(location)
    if fs.exists(path):
        if _same_bytes(fs, path, local):
            return location
        raise _taken(location)
    protocol = location.split("://", 1)[0].lower() if is_url(location) else "file"
    if protocol in _ATOMIC_PUT:
        fs.put_file(str(local), path)
    else:
        tmp_path = path.rsplit("/", 1)[0] + f"/.{base_name(location)}.{uuid.uuid4().hex[:8]}.tmp"
        fs.put_file(str(local), tmp_path)
        fs.mv(tmp_path, path)
    return location
