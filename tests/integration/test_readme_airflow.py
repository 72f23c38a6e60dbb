"""README's "Airflow: try it locally" block, run as written against a real local Airflow (`make airflow-up`).

The bash block is extracted from README.md at test time, so the README and this test cannot drift apart. It runs
in the repository (as a reader would), with two things moved aside so a developer's own set-up is untouched:
LLMOPS_LOCAL_AIRFLOW_HOME (the server's AIRFLOW_HOME) and LLMOPS_STORE_PATH / LLMOPS_DATA_DIR (the store `llmops`
and the Airflow tasks share) point into a temporary folder. The lines up to `make airflow-down` run in one bash
with `set -euo pipefail`; then the test checks what the walkthrough promised (the asset event started llmops_eval on
the collection the walkthrough ingested, and it succeeded; a relative `sources` is refused at trigger time), then the
last line stops the server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Airflow: try it locally"
FOR_HUMANS = "# (for a human)"  # a line ending with this is skipped (none today): say why in the README next to it


def readme_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, f"no bash block in README's {SECTION!r}"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.rstrip().endswith(FOR_HUMANS)]


def test_the_readme_block_is_what_this_test_runs():
    lines = readme_block()
    assert lines[0].startswith("make airflow-up") and lines[-1].startswith("make airflow-down")
    assert any("trigger-dag llmops_ingest" in ln and "--wait" in ln for ln in lines)
    assert any("assets event llmops://collections/" in ln for ln in lines)


def _bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_readme_airflow_walkthrough_runs_verbatim(tmp_path):
    from llmops_cli.devstack.airflow import LocalAirflow, down

    lines = readme_block()
    stop_at = next(i for i, ln in enumerate(lines) if ln.startswith("make airflow-down"))
    home = tmp_path / "airflow-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "AIRFLOW", "VIRTUAL_ENV"))}
    env.update(
        {
            "LLMOPS_LOCAL_AIRFLOW_HOME": str(home),
            "LLMOPS_STORE_PATH": str(tmp_path / "store"),
            "LLMOPS_DATA_DIR": str(tmp_path / "data"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    try:
        r = _bash("\n".join(lines[:stop_at]), env, timeout=780)
        out = r.stdout + r.stderr
        assert r.returncode == 0, f"the README block failed (exit {r.returncode}):\n{out[-6000:]}"
        assert "Traceback" not in out
        af = LocalAirflow.load(home)
        assert af is not None and af.password not in out, "the password was printed"
        assert "docs/" in r.stdout  # the query found chunks the DAG wrote (sources under docs/)

        # the asset event started llmops_eval, on the collection the walkthrough ingested, and it succeeded
        client_env = {**env, **af.client_env()}
        llmops = [str(REPO / ".venv" / "bin" / "llmops")]
        deadline, runs = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            got = subprocess.run(
                [*llmops, "runs", "list", "llmops_eval", "--json"],
                cwd=REPO,
                env=client_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            runs = json.loads(got.stdout or "[]")
            if any(x["run_type"] == "asset_triggered" for x in runs) and all(
                x["state"] in ("success", "failed") for x in runs
            ):
                break
            time.sleep(2)
        assert runs and all(x["state"] == "success" for x in runs), runs
        reports = list((tmp_path / "data" / "airflow-reports" / "llmops_eval").glob("*.json"))
        assert reports and all(json.loads(p.read_text())["collection"] == "docs" for p in reports)

        # a relative path is refused when the run is triggered (Airflow checks the param's schema), saying what to pass
        r = subprocess.run(
            [*llmops, "trigger-dag", "llmops_ingest", "-p", 'sources=["docs"]', "-p", "collection=docs"],
            cwd=REPO,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        said = re.sub(r"'\s*'", "", " ".join(r.stderr.split()))  # the schema's long strings come wrapped
        assert r.returncode == 2 and "'docs' does not match" in said, r.stderr
        assert "an absolute path or URL every Airflow worker can reach" in said and "Traceback" not in r.stderr

        r = _bash("\n".join(lines[stop_at:]), env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not LocalAirflow.load(home).running()
    finally:
        down(home, log=lambda m: None)
