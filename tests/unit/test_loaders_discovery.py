"""discover(): globs, excludes, missing paths, ids, single files, hidden files, symbolic links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops_cli.core.loaders import discover
from llmops_cli.core.loaders.discovery import compile_glob
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
    # an archive is listed as skipped (not silently ignored);
    # other unsupported files (image.png, a binary) are not inputs
    assert missing == [
        (str(docs / "archive.tar.gz"), "an archive (.tar.gz) is not opened: unpack it to ingest its files")
    ]
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
    assert ids(files) == ["docs/index.md"]
    assert missing == [
        (str(tmp_path / "nope"), "no such file or directory"),
        ("also-missing.md", "no such file or directory"),
    ]


def test_a_single_file_argument_is_taken_as_named(docs: Path):
    files, _ = discover([docs / "image.png"], ["*.md"], ["*.png"])
    assert ids(files) == ["docs/image.png"]
    assert files[0].root == docs / "image.png"


def test_a_file_named_twice_is_listed_once(docs: Path):
    files, _ = discover([docs, docs / "index.md"], ["*.md"], [])
    assert ids(files) == ["docs/index.md"]


def test_two_roots_with_the_same_name_get_distinct_ids(tmp_path: Path):
    # ids relative to each root alone made both docs/x.md (and README.md for projA/README.md and projB/README.md)
    write(tmp_path / "r1" / "docs" / "x.md")
    write(tmp_path / "r2" / "docs" / "x.md")
    assert ids(discover([tmp_path / "r1" / "docs", tmp_path / "r2" / "docs"], None, [])[0]) == [
        "r1/docs/x.md",
        "r2/docs/x.md",
    ]
    write(tmp_path / "projA" / "README.md")
    write(tmp_path / "projB" / "README.md")
    assert ids(discover([tmp_path / "projA" / "README.md"], None, [])[0]) == ["projA/README.md"]
    assert ids(discover([tmp_path / "projB" / "README.md"], None, [])[0]) == ["projB/README.md"]


def test_an_id_does_not_depend_on_how_the_file_was_named_nor_on_the_working_folder(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    expected = ["docs/guide/install.rst"]
    assert ids(discover([docs], ["*.rst"], [])[0]) == expected
    assert ids(discover([docs / "guide"], ["*.rst"], [])[0]) == expected
    assert ids(discover([docs / "guide" / "install.rst"], None, [])[0]) == expected
    monkeypatch.chdir(docs / "guide")
    assert ids(discover(["."], ["*.rst"], [])[0]) == expected
    assert ids(discover(["install.rst"], None, [])[0]) == expected


def test_files_outside_the_root_get_their_absolute_path(tmp_path: Path):
    outside = write(tmp_path / "elsewhere" / "notes.md")
    root = tmp_path / "project"
    root.mkdir()
    assert ids(discover([outside.parent], None, [], root=root)[0]) == [str(outside)]
    assert ids(discover([outside], None, [], root=root)[0]) == [str(outside)]
    # a root reached through a symbolic link still gives relative ids for the files under it
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    assert ids(discover([outside], None, [], root=tmp_path / "link")[0]) == ["notes.md"]


def test_the_source_root_is_the_setting_else_the_project_folder_else_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from llmops_cli.core.loaders.discovery import resolve_source_root
    from llmops_cli.settings import project_root

    def root(configured=None):  # as an entry point calls it: the project folder found by the settings layer
        return resolve_source_root(configured, project=project_root()[0])

    for name in ("LLMOPS_INGEST_SOURCE_ROOT", "LLMOPS_PROJECT_DIR", "LLMOPS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work / "sub")
    assert root() == work / "sub"  # no project: the working folder
    write(work / "sub" / "configs" / "llmops.yaml", "{}\n")
    assert root() == work / "sub"  # the parent of configs/llmops.yaml
    monkeypatch.setenv("LLMOPS_PROJECT_DIR", str(work))
    assert root() == work
    assert root("sub") == work / "sub"  # a relative setting is taken from the project folder
    monkeypatch.setenv("LLMOPS_INGEST_SOURCE_ROOT", str(tmp_path))
    assert root() == tmp_path
    assert root("/srv/docs") == Path("/srv/docs")  # the setting (flag, file) wins


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
