"""`llmops ingest` in a real terminal (a pty): the progress line names its phases and counts chunks, not files; -q
prints nothing on stderr; a re-run that finds nothing to do says so instead of a 0.0 chunks/s rate."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import REPO, llmops_env

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


PAGES = ("json.md", "ingest.md", "batch.md", "serve.md", "retrieval.md")


def _run_in_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run llmops with stderr on a pty (a terminal, so rich draws its progress) and stdout on a pipe; returns
    (exit code, stdout, what the terminal showed with escape sequences removed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env={**env, "COLUMNS": "160", "TERM": "xterm-256color"},
        cwd=cwd,
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    rc = proc.wait(timeout=60)
    return rc, out, _ANSI.sub("", seen.decode(errors="replace"))


def test_ingest_progress_shows_phases_with_chunk_counts_and_quiet_shows_nothing(tmp_path):
    # two pages of the project's docs: a few dozen chunks, several progress steps (64 chunks each), little CI time
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for page in PAGES:
        shutil.copy(REPO / "docs" / page, corpus / page)
    env = llmops_env(tmp_path, NO_COLOR="")
    env.pop("NO_COLOR")

    rc, out, shown = _run_in_pty(["ingest", str(corpus), "--collection", "docs"], env, tmp_path)
    assert rc == 0, shown
    added = int(re.search(r"chunks: (\d+) added", out).group(1))
    assert added > 10
    # the phases, and counts of chunks against the chunks found (not files), moving as the work goes on
    for phase in ("plan", "parse", "embed", "index"):
        assert re.search(rf"\b{phase}\b", shown), (phase, shown[-2000:])
    counts = {(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) chunks", shown)}
    assert {total for _, total in counts} == {added}, counts
    # the count moves: chunks done are shown, not only the total (enough pages for several 64-chunk embed slices)
    assert any(done > 0 for done, _ in counts), counts
    assert f"{len(PAGES)}/{len(PAGES)} sources parsed" in shown
    assert "ETA" in shown  # once the total is final

    # nothing to do: -q keeps the terminal empty; the summary says nothing changed, no rate
    rc, out, shown = _run_in_pty(["ingest", str(corpus), "--collection", "docs", "-q"], env, tmp_path)
    assert rc == 0
    assert shown.strip() == ""
    assert "nothing changed" in out and "chunks/s" not in out
