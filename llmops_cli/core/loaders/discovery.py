"""Finding the files to ingest under the paths a user names, and the source id each one gets.

Source ids are unique and stable: a file's path relative to the *source root*, with ``/`` separators
(``docs/guide/install.md``), or its absolute path when it lies outside the root. The root is ``ingest.source_root``
(``$LLMOPS_INGEST_SOURCE_ROOT``; a relative value is taken from the project folder), by default the project folder:
``$LLMOPS_PROJECT_DIR``, else the folder of the config file found (``$LLMOPS_CONFIG``, ``./llmops.yaml``, or the
parent of ``./configs/llmops.yaml``), else the current directory; the entry points find that folder and pass the
root (a caller of this module that passes none gets the current directory). Like git paths, ids therefore do not
depend on how a file was named (``docs``, ``./docs/``, ``docs/a.md``), and the Airflow DAGs (same project folder)
give the same ids.
Symbolic links are not resolved (ids follow the path the user sees).

Patterns (``--glob`` and the ``exclude`` setting) are matched against a file's path relative to its root
argument and against its source id: ``*`` and ``?`` stay within one folder, ``**`` spans folders (also none),
and a pattern without ``/`` matches the file name at any depth (``*.rst`` = ``**/*.rst``).
A folder walk skips hidden files and folders (``.env``, ``.github``) unless a glob names a hidden part, keeps
only regular files (FIFOs, sockets and devices are listed as skipped, never opened), lists archives (``.zip``,
``.tar.gz``...) as skipped rather than ignoring them, visits each real folder once (no symbolic link loops),
and orders files by source id.
Files named directly are always taken (globs and excludes only filter folder walks).

A local copy of a URL (a DAG task reads ``s3://bucket/docs`` into a temporary folder) holds a hidden marker file,
``.llmops-source-url``, naming the URL it mirrors: the files under it get ids under that URL
(``s3://bucket/docs/guide/a.md``), the same on every worker whatever its temporary folder.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from llmops_cli.core.loaders.base import SourceFile
from llmops_cli.core.loaders.exports import SLACK_METADATA_FILES
from llmops_cli.core.loaders.reading import BINARY_SNIFF_BYTES, looks_binary
from llmops_cli.core.loaders.registry import archive_suffix, has_supported_name
from llmops_cli.errors import InputError

MISSING = "no such file or directory"
MIRROR_MARKER = ".llmops-source-url"  # in a local copy of a URL: the URL it mirrors (see the module docstring)


def _translate_segment(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in segment[i + 2 :]:
            end = segment.index("]", i + 2)
            body = segment[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex for a path glob (see the module docstring for the rules)."""
    pattern = pattern.strip().replace("\\", "/").removeprefix("./").lstrip("/")
    if "/" not in pattern:
        pattern = "**/" + pattern
    segments = pattern.split("/")
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
        else:
            parts.append(_translate_segment(segment) + ("" if last else "/"))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


class _Patterns:
    def __init__(self, patterns: Sequence[str]):
        self.regexes = [compile_glob(pattern) for pattern in patterns if pattern.strip()]
        # "x/**" excludes the folder x itself: the walk need not enter it.
        self.folder_regexes = [
            compile_glob(p.strip()[:-3]) for p in patterns if p.strip().endswith("/**") and p.strip() != "**"
        ]

    def match(self, *paths: str) -> bool:
        return any(regex.match(path) for regex in self.regexes for path in paths)

    def match_folder(self, *paths: str) -> bool:
        return any(regex.match(path) for regex in self.folder_regexes for path in paths)


def _looks_like_text(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return not looks_binary(handle.read(BINARY_SNIFF_BYTES))
    except OSError:
        return True  # let loading report why it cannot be read


def _names_hidden(pattern: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in pattern.replace("\\", "/").split("/"))


SOURCE_ROOT_ENV = "LLMOPS_INGEST_SOURCE_ROOT"


def resolve_source_root(
    configured: str | os.PathLike[str] | None = None, *, project: str | os.PathLike[str] | None = None
) -> Path:
    """The folder source ids are relative to (see the module docstring). ``project``: the project folder, which the
    settings layer finds (the entry points pass theirs, ``entry.store.source_root``); without one, the current
    directory."""
    base = Path(project) if project is not None else Path.cwd()
    value = configured or os.environ.get(SOURCE_ROOT_ENV)
    if value:
        chosen = Path(value).expanduser()
        return Path(os.path.abspath(chosen if chosen.is_absolute() else base / chosen))
    return Path(os.path.abspath(base))


def source_id_for(path: str, root: str) -> str:
    """``path`` (absolute) relative to ``root`` (absolute), posix-style; the absolute path when outside it."""
    bases = _bases(root)
    rel = _under(path, bases)
    if rel is None:
        # a root reached through a symbolic link (/home/me -> /data/me) still gives relative ids; resolved only when
        # the plain path is not under the root (realpath costs several system calls a file)
        rel = _under(os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)), bases)
    return rel if rel is not None else path.replace(os.sep, "/")


@functools.lru_cache(maxsize=16)
def _bases(root: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((root, os.path.realpath(root))))


def _under(candidate: str, bases: tuple[str, ...]) -> str | None:
    for base in bases:
        prefix = base.rstrip(os.sep) + os.sep
        if candidate != base and candidate.startswith(prefix):
            return candidate[len(prefix) :].replace(os.sep, "/")
    return None


def _walk_folder(
    root: str,
    id_root: str,
    globs: _Patterns | None,
    exclude: _Patterns,
    include_hidden: bool,
    problems: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    """(absolute path, source id) of the selected files under one root folder; ids are relative to ``id_root``.
    Patterns match the path relative to the folder, the source id, and the path from the folder's own name
    (``docs/guide/*.md`` for the folder ``docs``, whatever the source root)."""
    name = os.path.basename(root)
    prefix = f"{name}/" if name else ""
    found: list[tuple[str, str]] = []
    visited: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        problems.append((exc.filename or root, f"unreadable folder: {exc.strerror or exc}"))

    for folder, dirnames, filenames in os.walk(root, topdown=True, onerror=on_error, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:  # a symbolic link back into what was walked already
            dirnames[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        kept = []
        for name in sorted(dirnames):
            rel = rel_folder + name
            if (name.startswith(".") and not include_hidden) or exclude.match_folder(
                rel, f"{prefix}{rel}", source_id_for(os.path.join(folder, name), id_root)
            ):
                continue
            kept.append(name)
        dirnames[:] = kept
        # the top of a Slack export (channel folders beside channels.json / users.json): its metadata files describe
        # the export (the day files' loader reads users.json for names); they are not sources, nor skipped inputs
        slack_top = bool(dirnames) and bool({"channels.json", "users.json"} & set(filenames))
        for name in sorted(filenames):
            if name.startswith(".") and not include_hidden:
                continue
            if slack_top and name in SLACK_METADATA_FILES:
                continue
            full = os.path.join(folder, name)
            rel = rel_folder + name
            source_id = source_id_for(full, id_root)
            if exclude.match(rel, f"{prefix}{rel}", source_id):
                continue
            try:
                mode = os.stat(full).st_mode
            except OSError:
                mode = None  # a broken symbolic link or a loop: listed, and planning says why it is skipped
            if globs is not None:
                if not globs.match(rel, f"{prefix}{rel}", source_id):
                    continue
            elif archive_suffix(name):
                # an archive may hold the very documents meant: say it was not opened rather than ignore it
                problems.append(
                    (full, f"an archive ({archive_suffix(name)}) is not opened: unpack it to ingest its files")
                )
                continue
            elif (
                mode is not None
                and stat.S_ISREG(mode)
                and not has_supported_name(Path(name))
                and not (Path(name).suffix == "" and _looks_like_text(full))
            ):
                continue
            if mode is not None and not stat.S_ISREG(mode):
                # never opened (reading a FIFO blocks), but listed: the user named a folder holding it
                if not stat.S_ISDIR(mode):
                    problems.append((full, f"not a regular file ({_file_kind(mode)})"))
                continue
            found.append((full, source_id))
    return found


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _mirrored_url(folder: str) -> str | None:
    """The URL a local copy mirrors (its marker file's first line), or None for an ordinary folder."""
    try:
        with open(os.path.join(folder, MIRROR_MARKER), encoding="utf-8") as handle:
            url = handle.readline().strip().rstrip("/")
    except OSError:
        return None
    return url or None


def discover(
    paths: Sequence[str | Path],
    globs: Sequence[str] | None,
    exclude: Sequence[str],
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Walk the paths (files or folders): the files to ingest, and the paths skipped with their reasons.

    Returns (files sorted by source id, [(path, reason)] for paths that do not exist, folders that cannot be
    read, and special files or archives inside folders). ``globs`` select files in folders (default: every
    file with a supported extension or name, and text files without an extension).

    ``root``: the source root ids are relative to (default: ``resolve_source_root()``).
    """
    glob_patterns = _Patterns(globs) if globs else None
    exclude_patterns = _Patterns(exclude)
    include_hidden = any(_names_hidden(pattern) for pattern in globs or ())
    missing: list[tuple[str, str]] = []
    by_id: dict[str, SourceFile] = {}
    seen_real: set[object] = set()
    id_root = os.fspath(root) if root is not None else os.fspath(resolve_source_root())
    id_root = os.path.abspath(id_root)
    for argument in paths:
        root = os.path.abspath(os.fspath(argument))
        if not os.path.lexists(root):
            missing.append((os.fspath(argument), MISSING))
            continue
        if os.path.isdir(root):
            candidates = _walk_folder(root, id_root, glob_patterns, exclude_patterns, include_hidden, missing)
            mirror = root
        elif os.path.isfile(root) or os.path.islink(root):
            candidates = [(root, source_id_for(root, id_root))]
            mirror = os.path.dirname(root)
        else:
            missing.append((os.fspath(argument), "not a file or folder"))
            continue
        url = _mirrored_url(mirror)
        if url is not None:
            candidates = [
                (full, url + "/" + os.path.relpath(full, mirror).replace(os.sep, "/")) for full, _ in candidates
            ]
        for full, source_id in candidates:
            try:  # the file's identity: one stat, where realpath costs a system call per path component
                st = os.stat(full)
                real: object = (st.st_dev, st.st_ino)
            except OSError:  # a broken link: loading says why it is skipped
                st, real = None, full
            if real in seen_real:  # named twice (a folder and a file in it, or two links): the first wins
                continue
            seen_real.add(real)
            if source_id in by_id:  # cannot happen with path-based ids; a guard against silently merging two files
                raise InputError(
                    f"two inputs would share the source id {source_id!r}: {by_id[source_id].path} and {full}",
                    hint="report this as a bug; meanwhile ingest them in separate runs",
                )
            by_id[source_id] = SourceFile(
                path=Path(full), source_id=source_id, root=Path(root), size=st.st_size if st else 0
            )
    return [by_id[source_id] for source_id in sorted(by_id)], missing
