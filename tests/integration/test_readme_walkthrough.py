"""The README's local walkthrough ("Quick tour", tables and exports, the feedback loop), run verbatim.

The commands are read from README.md itself, so the README cannot drift from what works. They run in a fresh
project folder laid out like this repository (docs/, README.md, configs/, .venv and ../shared/corpora), with
the LLM calls going to the local OpenAI-compatible test server (LLMOPS_LLM_API_BASE; never the internet).

Two things a reader supplies are supplied here, and nothing else is changed:
- the placeholder ``ID`` (an answer id the reader copies from ``llmops history``) becomes the newest answer's id;
- the reader's own files: ``issues.jsonl`` and ``slack-export/`` are small real-shaped exports, and the Stack
  Overflow table at ``../shared/corpora/...`` is the first rows of the real corpus (all 921 threads would cost
  minutes of embedding; the command line is the README's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, SHARED
from tests.support.openai_server import OpenAIServer, last_user_text

pytestmark = pytest.mark.integration

SECTION_START, SECTION_END = "## Quick tour", "## Speed"


def readme_blocks(readme: str, start: str = SECTION_START, end: str = SECTION_END) -> list[str]:
    """The ```bash blocks of README.md between two headings."""
    section = readme[readme.index(start) : readme.index(end)]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def command_lines(block: str) -> list[str]:
    return [ln.rstrip() for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def responder(body: dict) -> str:
    """Replies shaped like a real model's for each prompt llmops sends: judge verdicts as JSON, answers citing [1]."""
    text = " ".join(str(m.get("content")) for m in body.get("messages") or [])
    if '"helpfulness"' in text and '"publicness"' in text:
        return json.dumps(
            {
                "helpfulness": {"score": 5, "reason": "complete"},
                "relevance": {"score": 5, "reason": "on topic"},
                "publicness": {"public": True, "reason": "general product usage"},
            }
        )
    if "reword" in text.lower() or "rephrase" in text.lower():
        q = last_user_text(body)
        return "\n".join(f"{i}. {q} (variant {i})" for i in range(1, 4))
    return "Set store.host and store.port to the Chroma server's address; llmops then stores and searches there [1]."


def _project(tmp: Path) -> Path:
    """A folder laid out like the repository, with the reader's own input files."""
    proj = tmp / "main"
    proj.mkdir()
    shutil.copytree(REPO / "docs", proj / "docs")
    shutil.copytree(REPO / "configs", proj / "configs")
    shutil.copy(REPO / "README.md", proj / "README.md")
    (proj / ".venv").symlink_to(REPO / ".venv")
    (proj / "issues.jsonl").write_text(
        "\n".join(
            json.dumps(i)
            for i in [
                {
                    "number": 101,
                    "title": "ingest exits 3 on a PDF",
                    "body": "The PDF has no text layer; ingest lists it as skipped.",
                    "state": "closed",
                    "comments": [],
                },
                {
                    "number": 102,
                    "title": "query is slow on first run",
                    "body": "The ONNX export runs once and is cached.",
                    "state": "open",
                    "comments": [],
                },
            ]
        )
        + "\n"
    )
    (proj / "slack-export" / "support").mkdir(parents=True)
    (proj / "slack-export" / "channels.json").write_text(json.dumps([{"id": "C1", "name": "support"}]))
    (proj / "slack-export" / "support" / "2026-11-02.json").write_text(
        json.dumps(
            [
                {"ts": "1762070400.000100", "user": "U1", "text": "How do I point llmops at our Chroma server?"},
                {
                    "ts": "1762070460.000200",
                    "user": "U2",
                    "text": "Set store.host and store.port.",
                    "thread_ts": "1762070400.000100",
                },
            ]
        )
    )
    so = tmp / "shared" / "corpora" / "stackoverflow-airflow"
    so.mkdir(parents=True)
    real = SHARED / "stackoverflow-airflow" / "base.parquet"
    if real.exists():
        import pandas as pd

        pd.read_parquet(real).head(24).to_parquet(so / "base.parquet")
    else:  # the same columns, made here
        import pandas as pd

        pd.DataFrame(
            {
                "docSource": ["stackoverflow"] * 3,
                "sha": ["a", "b", "c"],
                "content": [
                    "How do I pass params to a DAG run? Use --conf / params.",
                    "Why is my DAG paused? New DAGs start paused.",
                    "How do I retry a task? Set retries on the operator.",
                ],
                "docLink": [
                    "https://stackoverflow.com/q/1",
                    "https://stackoverflow.com/q/2",
                    "https://stackoverflow.com/q/3",
                ],
            }
        ).to_parquet(so / "base.parquet")
    return proj


def test_readme_local_walkthrough_runs_verbatim(tmp_path):
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 3, "the Quick tour, tables and feedback blocks"
    lines = [ln for b in blocks for ln in command_lines(b)]
    assert lines[0] == "source .venv/bin/activate"
    proj = _project(tmp_path)

    script = ["set -u"]
    for ln in lines:
        cmd = ln
        if re.search(r"\bID\b", ln):
            # the reader copies an id from `llmops history`; so does this
            script.append(
                "ID=$(llmops history --json | python3 -c "
                '\'import json,sys; print(json.load(sys.stdin)["answers"][0]["id"])\')'
            )
            cmd = re.sub(r"\bID\b", '"$ID"', ln)
        script.append(f"echo {json.dumps('$ ' + ln)} >&2")
        script.append(
            f"{cmd}\nrc=$?; if [ $rc -ne 0 ]; then "
            f'echo "WALKTHROUGH FAILED (exit $rc): "{json.dumps(ln)} >&2; exit $rc; fi'
        )
    with OpenAIServer(responder=responder) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "OPENAI_", "VIRTUAL_ENV"))}
        env.update({"LLMOPS_LLM_API_BASE": server.base_url, "NO_COLOR": "1", "COLUMNS": "200"})
        r = subprocess.run(
            ["bash", "-c", "\n".join(script)], cwd=proj, env=env, capture_output=True, text=True, timeout=900
        )
        calls = server.success_count()
    assert r.returncode == 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    assert "Traceback" not in r.stderr
    assert calls > 0, "ask and review went to the local server"
    assert (proj / "ft.jsonl").is_file() and (proj / "ft.jsonl").read_text().strip(), (
        "feedback export wrote the dataset"
    )
    # the walkthrough's int8 collection was searched with int8 vectors, and the tables and exports landed
    listed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), "collections", "list", "--json"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = {c["name"]: c for c in json.loads(listed.stdout)["collections"]}
    assert {"docs", "fast", "stackoverflow", "support"} <= set(names), names
    assert names["fast"]["embedder"].endswith(":int8") and names["support"]["chunks"] >= 3
