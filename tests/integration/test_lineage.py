"""Lineage after a source edit, with the real parts (bundled model, embedded Chroma, real HTTP to the local
OpenAI-compatible server): a promoted answer whose cited source changed is taken out by the next ingest and no longer
served by the semantic cache; `llmops lineage answer|source` show the change from both ends; a removed source shows
as removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_cli.entry import ask as ask_entry
from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.entry import ingest as ingest_entry
from tests.integration.test_feedback_loop import (  # noqa: F401 - the fixture is used by name
    ANSWERS,
    CORPUS,
    Q_BACKUP,
    Q_ROTATE,
    Q_SCALE,
    loop,
    promoted_ids,
)
from tests.support.fakes import run_step

pytestmark = pytest.mark.integration


def _lineage(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "lineage", *args, "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_changed_source_retires_the_answers_built_on_it(loop):  # noqa: F811 - the imported fixture
    settings, server = loop
    ids = {q: run_step(ask_entry.ask, settings, q).answer_id for q in ANSWERS}
    review = run_step(feedback_entry.review, settings, limit=10)
    assert sorted(review["promotion"]["promoted"]) == sorted([ids[Q_ROTATE], ids[Q_SCALE]])

    before = _lineage("answer", ids[Q_ROTATE])
    assert {s["status"] for s in before["sources"]} == {"current"} and before["promotion"]["active"]
    cited = [c for c in before["chunks"] if c["source"].endswith("frobnicator.md")]
    assert cited, before["chunks"]

    # the rotation procedure changes: the next ingest takes the answer built on the old text out
    docs = Path(settings.store_path).parent / "docs"
    (docs / "frobnicator.md").write_text(
        CORPUS["frobnicator.md"].replace("frob rotate --all", "frob credentials renew"), encoding="utf-8"
    )
    report = run_step(ingest_entry.ingest, settings, [str(docs)])
    stale = {r["id"]: r["reason"] for r in report.stale_answers}
    assert ids[Q_ROTATE] in stale and "frobnicator.md" in stale[ids[Q_ROTATE]], report.stale_answers
    assert ids[Q_ROTATE] not in promoted_ids(settings)

    # the semantic cache no longer serves it: the LLM is asked again
    chats = len(server.records())
    again = run_step(ask_entry.ask, settings, "How do I rotate the frobnicator's credentials")
    assert again.cache_hit is None and len(server.records()) > chats

    after = _lineage("answer", ids[Q_ROTATE][:8])
    assert any(s["source"].endswith("frobnicator.md") and s["status"] == "changed" for s in after["sources"])
    assert not after["promotion"]["active"] and after["promotion"]["removed_reason"].startswith("stale")

    src = _lineage("source", "docs/frobnicator.md", "--collection", "docs")
    by_id = {a["id"]: a for a in src["answers"]}
    assert by_id[ids[Q_ROTATE]]["status"] == "stale" and src["chunks"], src
    assert src["version"] and len(src["version"]) == 16

    # a removed source: its answers show it as removed
    (docs / "backups.md").unlink()
    run_step(ingest_entry.ingest, settings, [str(docs)], cleanup="full")
    gone = _lineage("answer", ids[Q_BACKUP])
    assert any(s["source"].endswith("backups.md") and s["status"] == "removed" for s in gone["sources"]), gone
    # and a source that is not there is one line with the fix
    r = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "lineage", "source", "docs/frobnicatr.md", "--collection", "docs"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert r.returncode == 9 and "did you mean docs/frobnicator.md" in r.stderr and "Traceback" not in r.stderr
