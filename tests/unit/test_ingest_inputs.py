"""Inputs that used to crash a run or vanish silently (issue 12 items 7, 8): each is skipped with its reason while
the good files beside it are ingested; odd content (headings only, NUL bytes, escape sequences) is kept safely."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmops_cli.core.ingest import IngestOptions, ingest
from tests.support.fakes import FakeEmbedder, MemoryStore

GOOD = "# Good page\n\nThe scheduler queues task instances for the executor.\n"


def opts(**kw) -> IngestOptions:
    base = dict(collection="inputs", chunk_size=64, chunk_overlap=8)
    base.update(kw)
    return IngestOptions(**base)


def folder_with_good_files(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(GOOD)
    (docs / "b.md").write_text(GOOD.replace("Good", "Other"))
    return docs


def run(docs: Path, **kw):
    store = MemoryStore()
    report = ingest([str(docs)], embedder=FakeEmbedder(), store=store, opts=opts(**kw))
    return report, store


def skipped(report) -> dict[str, str]:
    return {Path(s["source"]).name: s["reason"] for s in report.skipped}


def test_dangling_symlink_and_symlink_loop_are_skipped_and_the_rest_ingested(tmp_path):
    docs = folder_with_good_files(tmp_path)
    os.symlink(docs / "nowhere.md", docs / "dangling.md")
    os.symlink(docs / "loop2.md", docs / "loop1.md")
    os.symlink(docs / "loop1.md", docs / "loop2.md")
    report, store = run(docs)
    reasons = skipped(report)
    assert reasons["dangling.md"].startswith("unreadable: file not found")
    assert reasons["loop1.md"] == reasons["loop2.md"] == "unreadable: symbolic link loop"
    assert len(report.new) == 2 and len(store.read_manifest("inputs")) == 2


def _failing_open(monkeypatch, name: str, exc: OSError) -> None:
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file).endswith(name):
            raise exc
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(
        Path,
        "read_bytes",
        lambda self: (_ for _ in ()).throw(exc) if str(self).endswith(name) else real_read_bytes(self),
    )


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OSError(errno.EIO, "Input/output error"), "unreadable: Input/output error"),
        (PermissionError(errno.EACCES, "Permission denied"), "unreadable: permission denied"),  # root ignores chmod 0
    ],
)
def test_a_read_error_skips_that_file_only(tmp_path, monkeypatch, exc, reason):
    docs = folder_with_good_files(tmp_path)
    (docs / "bad.md").write_text(GOOD)
    _failing_open(monkeypatch, "bad.md", exc)
    report, store = run(docs)
    assert skipped(report) == {"bad.md": reason}
    assert len(report.new) == 2


def test_a_read_error_with_strict_is_an_input_error_not_an_internal_one(tmp_path, monkeypatch):
    from llmops_cli.errors import InputError

    docs = folder_with_good_files(tmp_path)
    os.symlink(docs / "nowhere.md", docs / "dangling.md")
    with pytest.raises(InputError, match="dangling.md: unreadable") as got:
        run(docs, strict=True)
    assert "link target" in got.value.hint  # not only "permissions": a dangling link is the common case


def test_fifos_and_archives_in_a_folder_are_listed_as_skipped(tmp_path):
    docs = folder_with_good_files(tmp_path)
    os.mkfifo(docs / "pipe.md")
    (docs / "more-docs.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    (docs / "old.tar.gz").write_bytes(b"\x1f\x8b")
    report, _ = run(docs)
    reasons = skipped(report)
    assert reasons["pipe.md"] == "not a regular file (a FIFO)"
    assert reasons["more-docs.zip"].startswith("an archive (.zip) is not opened")
    assert reasons["old.tar.gz"].startswith("an archive (.tar.gz) is not opened")
    assert len(report.new) == 2

    # named by their source ids, as every other skipped or ingested source is (they were absolute paths)
    report, _ = run(docs, source_root=str(tmp_path))
    assert {s["source"] for s in report.skipped} == {"docs/pipe.md", "docs/more-docs.zip", "docs/old.tar.gz"}
    assert sorted(report.new) == ["docs/a.md", "docs/b.md"]


def test_a_markdown_file_of_only_headings_keeps_its_headings_as_text(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "toc.md").write_text("# Operators\n\n## BashOperator\n\n## PythonOperator\n")
    for strategy in ("auto", "headings"):
        report, store = run(docs, strategy=strategy)
        assert report.skipped == [] and len(report.new) == 1
        texts = [text for _, text, _ in store.cols["inputs"].values()]
        assert any("PythonOperator" in t for t in texts)


def test_nul_bytes_are_stripped_at_load(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    # past the first 8 KB, so the file is not taken for binary
    (docs / "nul.md").write_bytes(("# Title\n\n" + "padding words here. " * 500 + "\nnul\x00here\n").encode())
    (docs / "issues.json").write_text('[{"number": 1, "title": "t\\u0000x", "body": "a\\u0000b"}]')
    report, store = run(docs)
    assert report.skipped == [] and len(report.new) == 2
    for _, text, metadata in store.cols["inputs"].values():
        assert "\x00" not in text and not any("\x00" in str(v) for v in metadata.values())
    assert any("nulhere" in text for _, text, _ in store.cols["inputs"].values())


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\u202etxt.exe"


def test_query_output_neutralises_control_characters_but_keeps_the_text(capsys):
    from llmops_cli.cli.output import Output
    from llmops_cli.cli.query_cmd import _hits_table

    hit = SimpleNamespace(source=f"docs/evil{ESCAPES}.md", heading=f"H{ESCAPES}", score=0.5, text=f"body {ESCAPES} end")
    out = Output(False)
    _hits_table(out, [hit], f"search for {ESCAPES}")
    out.table(["source"], [(hit.source,)])
    out.print(f"answer line 1\nline 2 {ESCAPES}", markup=False)
    out.info(f"note {ESCAPES}")
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert not any(ch in stream for ch in "\x1b\x07\x9b\u202e"), repr(stream)
        assert "\\x1b[31mred" in stream  # shown, visibly, not interpreted
    assert "answer line 1\nline 2" in captured.out  # newlines stay


def test_json_output_keeps_the_stored_text_exactly():
    import json

    from llmops_cli.cli.output import to_json

    assert json.loads(to_json({"text": ESCAPES}))["text"] == ESCAPES
