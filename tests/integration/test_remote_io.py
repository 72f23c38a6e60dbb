"""DAG inputs and results on a real S3-compatible server (moto's, started on 127.0.0.1 by this test) and on a shared
folder by ``file://`` URL, through the same glue the DAG tasks run (``entry.dag_support``): an ingest planned on one
"worker" and written by two shards on two others (each with its own temporary folder) ends with every chunk of an
ingest of the same files, under the URL's source ids, nothing duplicated; a batch input is read from S3 and the
results are published there without replacing an earlier result. Real embedding model, real embedded Chroma."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from llmops_cli.entry.dag_support import check_sources_exist, local_sources, publish_result, resolve_params
from llmops_cli.errors import ConflictError

pytestmark = pytest.mark.integration

DOCS = {
    "a.md": "# Alpha\n\nAirflow pools limit how many tasks run at once. " * 8,
    "guide/b.md": "# Beta\n\nA DAG run is created when a DAG is triggered over the REST API. " * 8,
    "guide/c.md": "# Gamma\n\nMapped tasks expand over a list at run time, one task instance each. " * 8,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on loopback with bucket 'team' holding docs/ and a batch input; s3fs finds it through
    AWS_ENDPOINT_URL, as workers would find a MinIO or any S3-compatible endpoint."""
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (pip install 'moto[server]')"
    )
    pytest.importorskip("s3fs", reason="s3fs (fsspec's S3 protocol) is not installed")
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    # moto keeps its buckets in process-wide memory: another module's server left its objects there
    urllib.request.urlopen(urllib.request.Request(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))
    client.create_bucket(Bucket="team")
    for name, text in DOCS.items():
        client.put_object(Bucket="team", Key=f"docs/{name}", Body=text.encode())
    client.put_object(
        Bucket="team", Key="batch/rows.jsonl", Body=b'{"id": "r1", "q": "one"}\n{"id": "r2", "q": "two"}\n'
    )
    import fsspec

    fsspec.filesystem("s3").invalidate_cache()
    try:
        yield client
    finally:
        fsspec.filesystem("s3").clear_instance_cache()
        mp.undo()
        server.stop()


def _settings(work: Path):
    from llmops_cli.settings import load_settings

    return load_settings(
        environ={},
        cwd=work,
        flags={"data_dir": str(work / "state"), "store.path": str(work / "chroma"), "ingest.source_root": str(work)},
    ).settings


def _dag_ingest(settings, sources: list[str], collection: str, work: Path, shards: int = 2):
    """What llmops_ingest's tasks do: plan on one worker, each shard on another (its own temporary folder)."""
    from llmops_cli.entry import ingest as ingest_entry
    from llmops_cli.wiring import Workspace

    params = resolve_params({"sources": sources})
    check_sources_exist(params)
    planned = local_sources(params["sources"], work / "plan-tmp")
    groups, skipped = ingest_entry.plan_ingest(settings, planned, shards=shards)
    assert len(groups) == shards and not skipped
    for i, ids in enumerate(groups):
        with Workspace(settings) as ws:
            report = ingest_entry.ingest(
                ws,
                local_sources(params["sources"], work / f"worker{i}-tmp", only=set(ids)),
                collection=collection,
                cleanup="incremental",
                only=ids,
            )
            assert not report.to_dict()["skipped"], report.to_dict()
    with Workspace(settings) as ws:
        return ingest_entry.ingest_ledger(ws, collection, [sid for g in groups for sid in g])


def test_an_s3_folder_ingested_in_shards_on_two_workers_keeps_the_urls_as_source_ids(s3, tmp_path):
    from llmops_cli.entry import ingest as ingest_entry
    from llmops_cli.wiring import Workspace

    settings = _settings(tmp_path)
    ledger, total = _dag_ingest(settings, ["s3://team/docs"], "from-s3", tmp_path)
    assert sorted(ledger) == sorted(f"s3://team/docs/{n}" for n in DOCS)
    chunk_ids = [c for ids in ledger.values() for c in ids]
    assert chunk_ids and len(chunk_ids) == len(set(chunk_ids)) == total

    # the same files from a local folder: the same number of chunks per file, none lost in the copies
    local = tmp_path / "docs"
    for name, text in DOCS.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_text(text)
    with Workspace(settings) as ws:
        ingest_entry.ingest(ws, [str(local)], collection="from-disk", cleanup="incremental")
        disk, _ = ingest_entry.ingest_ledger(ws, "from-disk", [f"docs/{n}" for n in DOCS])
    assert {n: len(disk[f"docs/{n}"]) for n in DOCS} == {n: len(ledger[f"s3://team/docs/{n}"]) for n in DOCS}

    # a second run changes nothing: same ids, nothing duplicated
    assert _dag_ingest(settings, ["s3://team/docs"], "from-s3", tmp_path / "rerun") == (ledger, total)


def test_a_shared_folder_by_file_url_is_read_in_place(tmp_path):
    shared = tmp_path / "shared" / "docs"
    shared.mkdir(parents=True)
    (shared / "a.md").write_text(DOCS["a.md"])
    params = resolve_params({"sources": [f"file://{shared}"], "output": f"file://{tmp_path}/out/r.jsonl"})
    assert params["sources"] == [str(shared)] and params["output"] == f"{tmp_path}/out/r.jsonl"
    assert local_sources(params["sources"], tmp_path / "never-used") == [str(shared)]
    assert not (tmp_path / "never-used").exists()  # nothing copied


def test_a_batch_reads_its_input_from_s3_and_publishes_its_results_there_once(s3, tmp_path):
    params = resolve_params({"input": "s3://team/batch/rows.jsonl"}, fetch_dir=tmp_path / "inputs")
    assert Path(params["input"]).read_text().count("\n") == 2
    good = tmp_path / "good.jsonl"
    good.write_text('{"llmops_id": "r1", "llmops_status": "ok"}\n')
    assert publish_result(good, "s3://team/out/rows.results.jsonl") == "s3://team/out/rows.results.jsonl"
    assert publish_result(good, "s3://team/out/rows.results.jsonl")  # a retried task publishing the same bytes
    later = tmp_path / "later.jsonl"
    later.write_text('{"llmops_id": "r1", "llmops_status": "error"}\n')
    with pytest.raises(ConflictError, match="exists already"):
        publish_result(later, "s3://team/out/rows.results.jsonl")
    body = s3.get_object(Bucket="team", Key="out/rows.results.jsonl")["Body"].read()
    assert body == good.read_bytes()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="team", Prefix="out/")["Contents"]]
    assert keys == ["out/rows.results.jsonl"]


def test_a_missing_s3_source_fails_naming_the_url(s3, tmp_path):
    from llmops_cli.errors import InputError

    with pytest.raises(InputError, match="s3://team/no-such-folder: no such file or folder"):
        local_sources(["s3://team/no-such-folder"], tmp_path)


def test_llmops_ingest_reads_an_s3_folder_from_the_command_line(s3, tmp_path):
    """`llmops ingest s3://bucket/prefix` as a user runs it: the files keep their URLs as source ids, `query` finds
    them, a second run changes nothing, and a missing prefix is one line naming the URL (exit 2, as a missing local
    path does)."""
    import json
    import os

    from tests.integration.conftest import llmops_env, run_llmops

    env = llmops_env(tmp_path, **{k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")})
    env.update({"AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "HF_HUB_OFFLINE": "1"})
    first = run_llmops("ingest", "s3://team/docs", "--collection", "cli-s3", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["sources"]["new"] == len(DOCS)
    hits = run_llmops("query", "how do mapped tasks expand", "--collection", "cli-s3", "--json", env=env)
    assert hits.returncode == 0, hits.stderr
    assert json.loads(hits.stdout)["hits"][0]["source"] == "s3://team/docs/guide/c.md"
    again = run_llmops("ingest", "s3://team/docs", "--collection", "cli-s3", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["sources"]["unchanged"] == len(DOCS), again.stdout
    missing = run_llmops("ingest", "s3://team/nothing-here", "--collection", "cli-s3", env=env)
    assert missing.returncode == 2 and "s3://team/nothing-here" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr and "testing" not in missing.stderr
