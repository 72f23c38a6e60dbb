"""What ingest must not do because of an input it skipped: --cleanup full never removes the chunks behind a skipped
input (a missing or unreadable folder, a file that failed to load), and --strict stopping at the first bad input
leaves no empty collection behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from llmops_cli.core import ingest as core
from llmops_cli.core.ingest import IngestOptions, ingest
from llmops_cli.errors import InputError
from tests.support.fakes import FakeEmbedder, MemoryStore


class PathKeepingStore(MemoryStore):
    """MemoryStore that keeps each record's extra fields, as Chroma does."""

    keep_extra = True


def write_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"p{i}.md").write_text(
            f"# {root.name} page {i}\n\nText about {root.name} topic {i}, scheduler and retries.\n"
        )
    return root


def opts(**kw) -> IngestOptions:
    return IngestOptions(**{"collection": "col", "chunk_size": 64, "chunk_overlap": 8, **kw})


def sources(store: MemoryStore) -> set[str]:
    return {md["source_file"] for _, md in store.snapshot("col").values()}


@pytest.mark.parametrize("store_cls", [PathKeepingStore, MemoryStore])
def test_cleanup_full_keeps_the_chunks_of_a_folder_that_is_not_there(tmp_path, store_cls):
    a, b = write_folder(tmp_path / "a", 3), write_folder(tmp_path / "b", 2)
    store, emb = store_cls(), FakeEmbedder()
    ingest([str(a), str(b)], embedder=emb, store=store, opts=opts())
    assert sources(store) == {"a/p0.md", "a/p1.md", "a/p2.md", "b/p0.md", "b/p1.md"}
    shutil.move(b, tmp_path / "unmounted")  # the folder is gone for this run (unmounted share)
    (a / "p2.md").unlink()  # really deleted: cleanup may remove it

    rep = ingest([str(a), str(b)], embedder=emb, store=store, opts=opts(cleanup="full"))
    assert [s["source"] for s in rep.skipped] == [str(b)]
    assert {"b/p0.md", "b/p1.md"} <= sources(store)
    if store_cls is PathKeepingStore:  # records know their paths: only what lies behind the skipped folder is kept
        assert rep.removed == ["a/p2.md"] and "a/p2.md" not in sources(store)
    else:  # records without paths could lie anywhere: nothing is removed while an input is skipped
        assert rep.removed == []


def test_cleanup_full_keeps_the_chunks_behind_an_unreadable_subfolder(tmp_path, monkeypatch):
    a = write_folder(tmp_path / "a", 2)
    write_folder(a / "sub", 2)
    store, emb = PathKeepingStore(), FakeEmbedder()
    ingest([str(a)], embedder=emb, store=store, opts=opts())
    assert {"a/sub/p0.md", "a/sub/p1.md"} <= sources(store)

    real_discover = core.discover

    def discover_with_unreadable_sub(
        paths, globs, exclude, **kw
    ):  # as os.walk reports a folder it cannot list (EACCES, EIO)
        files, missing = real_discover(paths, globs, exclude, **kw)
        return (
            [f for f in files if "/sub/" not in f.source_id],
            missing + [(str(a / "sub"), "unreadable folder: Permission denied")],
        )

    monkeypatch.setattr(core, "discover", discover_with_unreadable_sub)
    rep = ingest([str(a)], embedder=emb, store=store, opts=opts(cleanup="full"))
    assert rep.removed == [] and {"a/sub/p0.md", "a/sub/p1.md"} <= sources(store)
    # named by its id, as the sources are (it was its absolute path); a path given on the command line stays as given
    assert rep.skipped == [{"source": "a/sub", "reason": "unreadable folder: Permission denied"}]


def test_cleanup_full_keeps_the_chunks_of_a_file_that_failed_to_load(tmp_path):
    a = write_folder(tmp_path / "a", 2)
    store, emb = PathKeepingStore(), FakeEmbedder()
    ingest([str(a)], embedder=emb, store=store, opts=opts())
    before = store.snapshot("col")
    (a / "p1.md").write_bytes(b"\x00\x01binary\xff" * 100)
    rep = ingest([str(a)], embedder=emb, store=store, opts=opts(cleanup="full"))
    assert [s["source"] for s in rep.skipped] == ["a/p1.md"] and rep.removed == []
    assert store.snapshot("col") == before


def test_strict_stopping_at_the_first_bad_input_leaves_no_empty_collection(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "a0.md").write_bytes(b"\x00\x01binary\xff" * 100)  # the first input, and bad
    write_folder(a, 2)
    store, emb = MemoryStore(), FakeEmbedder()
    with pytest.raises(InputError):
        ingest([str(a)], embedder=emb, store=store, opts=opts(strict=True))
    assert store.collection_metadata("col") is None and store.list_collections() == []


def test_a_run_that_skips_every_input_still_leaves_its_collection(tmp_path):
    """Without --strict a run goes to the end: its (empty) collection exists, as before."""
    a = tmp_path / "a"
    a.mkdir()
    (a / "a0.md").write_bytes(b"\x00\x01binary\xff" * 100)
    store, emb = MemoryStore(), FakeEmbedder()
    rep = ingest([str(a)], embedder=emb, store=store, opts=opts())
    assert len(rep.skipped) == 1 and store.collection_metadata("col") is not None and rep.chunks_total == 0


def test_new_records_carry_the_absolute_path(tmp_path):
    a = write_folder(tmp_path / "a", 1)
    store = PathKeepingStore()
    ingest([str(a)], embedder=FakeEmbedder(), store=store, opts=opts())
    assert store.read_manifest("col")["a/p0.md"].extra[core.PATH_KEY] == os.path.abspath(a / "p0.md")


def test_a_sharded_full_cleanup_keeps_the_chunks_behind_a_skipped_input(tmp_path):
    """The Airflow path: plan's shards name only what it found; finalize's cleanup gets the skipped paths too."""
    a, b = write_folder(tmp_path / "a", 2), write_folder(tmp_path / "b", 2)
    store, emb = PathKeepingStore(), FakeEmbedder()
    ingest([str(a), str(b)], embedder=emb, store=store, opts=opts())
    shutil.move(b, tmp_path / "unmounted")
    (a / "p1.md").unlink()
    from llmops_cli.core.loaders import discover

    files, missing = discover([str(a), str(b)], None, [])
    keep = {sf.source_id for sf in files}
    gone = core.remove_sources(store, "col", keep, skipped_paths=[os.path.abspath(p) for p, _ in missing])
    assert gone == ["a/p1.md"]
    assert sources(store) == {"a/p0.md", "b/p0.md", "b/p1.md"}
    # without the skipped paths the unmounted folder's chunks would go too (what the DAG did)
    assert core.remove_sources(store, "col", keep) == ["b/p0.md", "b/p1.md"]


def test_a_report_with_skipped_inputs_carries_exit_code_partial():
    from llmops_cli.errors import ExitCode, exit_code_of

    assert exit_code_of(core.IngestReport("docs", new=["a.md"])) == ExitCode.OK
    partial = core.IngestReport("docs", skipped=[{"source": "b.pdf", "reason": "encrypted"}])
    assert exit_code_of(partial) == ExitCode.PARTIAL == 3 and "exit_code" not in partial.to_dict()
