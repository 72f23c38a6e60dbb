"""Every shell block of README.md and docs/*.md either runs here, as written, or says why it cannot: documentation
cannot rot in silence.

A block runs in a fresh folder with the package's ``llmops`` first on PATH and no LLMOPS_* variable set, under
``bash -e -o pipefail``. A block that needs a service names it in an HTML comment on the line before its fence:

    <!-- docs-test: needs airflow -->     (or: needs llm, needs network, needs make, synopsis)

Those run elsewhere: README's walkthroughs in tests/integration/test_readme_walkthrough.py and
test_readme_airflow.py, docs/ci.md's script in the Airflow CLI tests. UNMARKED lists the blocks written before this
rule, by their file and first line, until their page carries the comment; a block neither marked nor listed runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:^<!--\s*docs-test:\s*(?P<mark>[^>]*?)\s*-->\n)?^```(?:bash|sh|shell)\n(?P<body>.*?)^```", re.M | re.S
)

# (page, first line of the block) -> why it does not run here. Pages owned by others; to be replaced by markers.
UNMARKED = {
    ("README.md", "make demo"): "needs make (builds the venv)",
    ("README.md", "source .venv/bin/activate"): "needs llm (test_readme_walkthrough runs it)",
    ("README.md", "llmops ingest ../shared/corpora/"): "needs the shared corpora",
    ("README.md", "llmops history"): "needs llm (feedback review)",
    ("README.md", "make airflow-up"): "needs airflow (test_readme_airflow runs it)",
    ("batch.md", "llmops batch reviews.csv"): "needs llm",
    ("ci.md", "llmops trigger-dag llmops_ingest"): "needs airflow (the Airflow CLI tests run docs/ci.md)",
    ("ci.md", "llmops eval questions.jsonl"): "needs a dataset and a collection",
    ("ci.md", "llmops auth login"): "needs airflow",
    ("eval-metrics.md", "llmops eval questions.jsonl"): "needs llm",
    ("feedback.md", "llmops history [--limit N]"): "synopsis",
    ("feedback.md", "llmops feedback ID up|down"): "synopsis",
    ("feedback.md", "llmops feedback review [--limit N]"): "synopsis",
    ("feedback.md", "llmops feedback export --format"): "synopsis",
    ("ingest.md", "llmops trigger-dag llmops_ingest"): "needs airflow",
    ("team-deployment.md", "llmops trigger-dag llmops_ingest"): "needs airflow",
    ("team-deployment.md", "pip install -e"): "needs network",
    ("serve.md", "llmops serve"): "starts a long-running server",
}


def blocks() -> list[tuple[str, int, str | None, str]]:
    """(page, line, mark, body) of every shell block."""
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text[: m.start("body")].count("\n")
            out.append((page.name, line, m.group("mark"), m.group("body")))
    return out


def _skip_reason(page: str, mark: str | None, body: str) -> str | None:
    if mark and mark != "run":
        return mark
    if mark == "run":
        return None
    first = body.strip().splitlines()[0] if body.strip() else ""
    return next((why for (p, start), why in UNMARKED.items() if p == page and first.startswith(start)), None)


ALL = blocks()


def test_every_block_is_found_and_every_listed_exception_still_exists():
    assert len(ALL) >= 20, ALL  # the parser sees the pages' blocks
    firsts = {(p, b.strip().splitlines()[0]) for p, _, _, b in ALL if b.strip()}
    stale = [k for k in UNMARKED if not any(p == k[0] and f.startswith(k[1]) for p, f in firsts)]
    assert not stale, f"UNMARKED names blocks that are gone: {stale}"


@pytest.mark.parametrize(("page", "line", "mark", "body"), ALL, ids=[f"{p}:{n}" for p, n, _, _ in ALL])
def test_shell_block_runs_as_written(page, line, mark, body, tmp_path):
    why = _skip_reason(page, mark, body)
    if why:
        pytest.skip(f"{page}:{line}: {why}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    r = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, (
        f"{page}:{line} exited {r.returncode}\n{body}\nstdout: {r.stdout[-1500:]}\nstderr: {r.stderr[-1500:]}"
    )
