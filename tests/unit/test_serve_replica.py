"""The serve read replica (adapters/vectorstores/replica.py) against a real embedded Chroma: the same top-k ids and
scores as the store's own search, key=value filters as Chroma applies them, gets in the store's order."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_cli.adapters.vectorstores.chroma import ChromaStore
from llmops_cli.adapters.vectorstores.replica import ReplicaStore

N, DIM = 600, 32


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    path = tmp_path_factory.mktemp("replica") / "chroma"
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    writer = ChromaStore.embedded(path)
    writer.ensure_collection("col", metadata={"dimension": DIM})
    writer.upsert(
        "col",
        [f"id{i:04d}" for i in range(N)],
        vecs,
        [f"text {i}" for i in range(N)],
        [{"source": f"s{i % 7}.md", "part": i % 3, "odd": bool(i % 2)} for i in range(N)],
    )
    store = ChromaStore.embedded(path, read_only=True)
    return store, ReplicaStore(store), rng


def _pairs(hits):
    return [(h.id, round(h.score, 4)) for h in hits]


def test_query_matches_the_store(stores):
    store, replica, rng = stores
    for _ in range(20):
        q = rng.normal(size=DIM).astype(np.float32)
        want, got = store.query("col", q, 20), replica.query("col", q, 20)
        assert [h.id for h in got] == [h.id for h in want]
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
        assert [(h.text, h.metadata) for h in got] == [(h.text, h.metadata) for h in want]
    assert replica._snaps["col"] is not None  # answered from the snapshot, not passed through


@pytest.mark.parametrize(
    "where", [{"source": "s3.md"}, {"part": 2}, {"odd": True}, {"source": "s1.md", "part": 1}, {"part": "2"}]
)
def test_filters_as_chroma(stores, where):
    store, replica, rng = stores
    q = rng.normal(size=DIM).astype(np.float32)
    assert _pairs(replica.query("col", q, 10, where)) == _pairs(store.query("col", q, 10, where))
    assert [h.id for h in replica.get("col", where=where, limit=5)] == [
        h.id for h in store.get("col", where=where, limit=5)
    ]


def test_get_by_ids_in_the_callers_order(stores):
    store, replica, _ = stores
    ids = ["id0500", "id0003", "missing", "id0042"]
    for where in (None, {"part": 0}):
        want = store.get("col", ids=ids, where=where)
        got = replica.get("col", ids=ids, where=where)
        assert [(h.id, h.text, h.metadata) for h in got] == [(h.id, h.text, h.metadata) for h in want]
    assert [h.id for h in replica.get("col", offset=10, limit=3)] == [
        h.id for h in store.get("col", offset=10, limit=3)
    ]
    assert replica.count("col") == store.count("col") == N


def test_large_collections_and_operators_go_to_the_store(stores):
    store, _, rng = stores
    small = ReplicaStore(store, max_chunks=N - 1)
    q = rng.normal(size=DIM).astype(np.float32)
    assert _pairs(small.query("col", q, 5)) == _pairs(store.query("col", q, 5))
    assert small._snaps["col"] is None
    where = {"part": {"$in": [1, 2]}}
    full = ReplicaStore(store)
    assert _pairs(full.query("col", q, 5, where)) == _pairs(store.query("col", q, 5, where))
    assert "col" not in full._snaps  # an operator filter never builds a snapshot


def test_serve_answers_from_a_fresh_replica_after_the_store_changes(tmp_path):
    """The serve workspace's read-only store is the replica; a write by another process (a new stamp) gives a fresh
    workspace whose snapshot has the new chunk, while the replaced one keeps its own."""
    from llmops_cli.serve.service import Service
    from llmops_cli.settings import load_settings
    from llmops_cli.wiring import Workspace

    env = {"LLMOPS_STORE_PATH": str(tmp_path / "chroma"), "LLMOPS_DATA_DIR": str(tmp_path / "state")}
    settings = load_settings(environ=env, cwd=tmp_path).settings
    rng = np.random.default_rng(3)
    writer = ChromaStore.embedded(tmp_path / "chroma")
    writer.ensure_collection("col", metadata={"dimension": DIM})
    vecs = rng.normal(size=(50, DIM)).astype(np.float32)
    writer.upsert(
        "col", [f"a{i}" for i in range(50)], vecs, [f"t{i}" for i in range(50)], [{"i": i} for i in range(50)]
    )
    service = Service(settings, Workspace)
    try:
        old = service.workspace().store(read_only=True)
        assert isinstance(old, ReplicaStore)
        old.warm("col")
        new_vec = rng.normal(size=(1, DIM)).astype(np.float32)
        writer.upsert("col", ["new"], new_vec, ["the new chunk"], [{"i": 99}])
        fresh = service.workspace().store(read_only=True)
        assert fresh is not old and isinstance(fresh, ReplicaStore)
        assert fresh.query("col", new_vec[0], 1)[0].id == "new"
        assert fresh._snaps["col"] is not None and fresh.count("col") == 51
        assert "new" not in {h.id for h in old.query("col", new_vec[0], 60)}
    finally:
        service.close()
