"""Integration fixtures: the external corpora, an isolated llmops environment for subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "corpora"


def corpus(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"needs ../shared/corpora/{name} (absent here)")
    return p


def llmops_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update(
        {
            "LLMOPS_STORE_PATH": str(tmp / "chroma"),
            "LLMOPS_DATA_DIR": str(tmp / "state"),
            "NO_COLOR": "1",
            "LLMOPS_INGEST_SOURCE_ROOT": str(tmp),
        }
    )  # tmp is the project: source ids relative to it
    env.update(extra)
    return env


def run_llmops(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=timeout,
    )
