"""discover(): globs, excludes, missing paths, ids, single files, hidden files, symbolic links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops_cli.core.loaders import discover
from llmops_cli.core.loaders.discovery import compile_glob
from llmops_cli.errors import InputError
from llmops_cli.settings import IngestSettings

DEFAULT_EXCLUDE = IngestSettings().exclude


def write(path: Path, text: str | bytes = "some text\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def ids(files) -> list[str]:
    return [f.source_id for f in files]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "index.md", "# Home\n")
    write(root / "guide" / "install.rst", "Install\n=======\n")
    write(root / "guide" / "deep" / "notes.txt")
    write(root / "api.html", "<p>x</p>")
    write(root / "script.py", "print(1)\n")
    write(root / "data.csv", "text\nhello\n")
    write(root / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    write(root / "archive.tar.gz", b"\x1f\x8b\x00")
    write(root / "README", "plain text without an extension\n")
    write(root / "program", b"\x7fELF\x00\x00\x00binary")
    write(root / "Dockerfile", "FROM python:3.11\n")
    write(root / ".env", "SECRET=1\n")
    write(root / ".github" / "workflow.yml", "on: push\n")
    write(root / ".git" / "config", "[core]\n")
    write(root / "node_modules" / "pkg" / "index.js", "x\n")
    write(root / "sub" / "__pycache__" / "m.py", "x\n")
    return root


def test_default_selection_takes_supported_files_and_text_without_extension(docs: Path):
    files, missing = discover([docs], None, DEFAULT_EXCLUDE)
    # an archive is listed as skipped (not silently ignored); other unsupported files (image.png, a binary) are not inputs
    assert missing == [(str(docs / "archive.tar.gz"), "an archive (.tar.gz) is not opened: unpack it to ingest its files")]
    assert ids(files) == [
        "docs/Dockerfile",
        "docs/README",
        "docs/api.html",
        "docs/data.csv",
        "docs/guide/deep/notes.txt",
        "docs/guide/install.rst",
        "docs/index.md",
        "docs/script.py",
    ]
    first = files[0]
    assert first.path == docs / "Dockerfile" and first.path.is_absolute()
    assert first.root == docs and first.size == len("FROM python:3.11\n")


def test_ids_are_relative_to_the_root_argument_whatever_its_spelling(docs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(docs / "guide")
    files, _ = discover(["../../docs"], ["*.rst"], [])
    assert ids(files) == ["docs/guide/install.rst"]
    assert files[0].path == docs / "guide" / "install.rst"
    monkeypatch.chdir(docs)
    files, _ = discover(["."], ["*.rst"], [])
    assert ids(files) == ["docs/guide/install.rst"]  # "." is named after the folder it is


def test_globs_select_files(docs: Path):
    assert ids(discover([docs], ["*.md", "**/*.rst"], [])[0]) == ["docs/guide/install.rst", "docs/index.md"]
    assert ids(discover([docs], ["guide/*"], [])[0]) == ["docs/guide/install.rst"]
    assert ids(discover([docs], ["guide/**"], [])[0]) == ["docs/guide/deep/notes.txt", "docs/guide/install.rst"]
    assert ids(discover([docs], ["docs/guide/**/*.txt"], [])[0]) == ["docs/guide/deep/notes.txt"]  # by source id
    # an explicit glob takes what it names, supported or not: loading reports the unsupported ones
    assert ids(discover([docs], ["*.png"], [])[0]) == ["docs/image.png"]


def test_exclude_patterns(docs: Path):
    files, _ = discover([docs], None, DEFAULT_EXCLUDE + ["guide/**", "*.csv"])
    assert "docs/data.csv" not in ids(files)
    assert not any(i.startswith("docs/guide/") for i in ids(files))
    assert "docs/index.md" in ids(files)
    # without the default excludes, node_modules and __pycache__ are walked
    everything = ids(discover([docs], None, [])[0])
    assert "docs/node_modules/pkg/index.js" in everything and "docs/sub/__pycache__/m.py" in everything


def test_hidden_entries_need_a_glob_that_names_them(docs: Path):
    assert ".env" not in " ".join(ids(discover([docs], None, [])[0]))
    assert ids(discover([docs], [".github/*.yml"], [])[0]) == ["docs/.github/workflow.yml"]


def test_missing_paths_are_reported_and_the_rest_is_found(docs: Path, tmp_path: Path):
    files, missing = discover([tmp_path / "nope", docs / "index.md", "also-missing.md"], None, [])
    assert ids(files) == ["index.md"]
    assert missing == [
        (str(tmp_path / "nope"), "no such file or directory"),
        ("also-missing.md", "no such file or directory"),
    ]


def test_a_single_file_argument_is_taken_as_named(docs: Path):
    files, _ = discover([docs / "image.png"], ["*.md"], ["*.png"])
    assert ids(files) == ["image.png"]
    assert files[0].root == docs / "image.png"


def test_a_file_named_twice_is_listed_once(docs: Path):
    files, _ = discover([docs, docs / "index.md"], ["*.md"], [])
    assert ids(files) == ["docs/index.md"]


def test_two_roots_with_the_same_name_would_collide(tmp_path: Path):
    write(tmp_path / "a" / "docs" / "x.md")
    write(tmp_path / "b" / "docs" / "x.md")
    with pytest.raises(InputError, match="docs/x.md"):
        discover([tmp_path / "a" / "docs", tmp_path / "b" / "docs"], None, [])


def test_order_is_deterministic(docs: Path):
    first = discover([docs], None, DEFAULT_EXCLUDE)[0]
    second = discover([docs / "..", docs], None, DEFAULT_EXCLUDE)[0]
    assert ids(first) == sorted(ids(first))
    assert ids(second) == sorted(ids(second))


def test_symbolic_link_loops_are_walked_once(tmp_path: Path):
    root = tmp_path / "root"
    write(root / "a" / "page.md")
    os.symlink(root, root / "a" / "loop")  # a/loop -> root
    os.symlink(root / "a", root / "again")  # the same folder under a second name
    os.symlink(root / "gone.md", root / "dangling.md")
    files, missing = discover([root], None, [])
    assert missing == []
    assert ids(files) == ["root/a/page.md", "root/dangling.md"]  # the broken link is listed; loading skips it


def test_glob_rules():
    assert compile_glob("**/.git/**").match(".git/config")
    assert compile_glob("**/.git/**").match("a/b/.git/config")
    assert not compile_glob("*.md").match("a/b.mdx")
    assert compile_glob("*.md").match("a/b/c.md")
    assert not compile_glob("guide/*").match("guide/deep/notes.txt")
    assert compile_glob("file[0-9].txt").match("file7.txt")
    assert not compile_glob("file[!0-9].txt").match("file7.txt")


def test_importing_the_loaders_loads_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys, llmops_cli.core.loaders; "
        "print([m for m in ('pandas', 'pypdf', 'bs4', 'pyarrow', 'torch', 'chromadb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
