"""Bad and odd inputs through the real CLI (issue 12 items 7, 8): `llmops` subprocesses, real Chroma, the bundled
embedding model. A folder holding a dangling symbolic link, a symbolic link loop, a FIFO and a .zip ingests its
good files and exits 3 listing each skip with its reason (was: rc 1, "internal error: SkipSource"); a document
with terminal escape sequences is shown by `llmops query` with visible escapes, never raw."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.conftest import llmops_env, run_llmops

pytestmark = pytest.mark.integration


def test_a_folder_of_bad_inputs_ingests_the_good_ones_and_query_output_is_safe(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Pools\n\nPools limit how many tasks run at once against a database.\n")
    (docs / "toc.md").write_text("# Operators\n\n## KubernetesPodOperator\n")
    (docs / "evil.md").write_text(
        "# Evil\n\nThe quokka \x1b]0;pwned\x07\x1b[2J\x1b[31mtakes over\x1b[0m your terminal.\n"
    )
    os.symlink(docs / "nowhere.md", docs / "dangling.md")
    os.symlink(docs / "loop2.md", docs / "loop1.md")
    os.symlink(docs / "loop1.md", docs / "loop2.md")
    os.mkfifo(docs / "pipe.md")
    (docs / "more.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    env = llmops_env(tmp_path)

    r = run_llmops("ingest", str(docs), "--collection", "odd", "--json", env=env, timeout=300)
    assert r.returncode == 3, r.stderr
    report = json.loads(r.stdout)
    reasons = {os.path.basename(s["source"]): s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"dangling.md", "loop1.md", "loop2.md", "pipe.md", "more.zip"}, reasons
    assert (
        reasons["loop1.md"] == "unreadable: symbolic link loop" and reasons["pipe.md"] == "not a regular file (a FIFO)"
    )
    assert sorted(report["new"]) == ["docs/evil.md", "docs/good.md", "docs/toc.md"]

    r = run_llmops("query", "KubernetesPodOperator", "--collection", "odd", "--json", env=env)
    assert json.loads(r.stdout)["hits"][0]["source"] == "docs/toc.md"  # a file of headings only is searchable
    r = run_llmops("query", "quokka takes over your terminal", "--collection", "odd", env=env)
    assert r.returncode == 0, r.stderr
    assert "quokka" in r.stdout and "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b[2J" in r.stdout  # shown as a visible escape
    r = run_llmops("query", "quokka takes over your terminal", "--collection", "odd", "--json", env=env)
    assert "\x1b[2J" in json.loads(r.stdout)["hits"][0]["text"]  # the stored text is exact
