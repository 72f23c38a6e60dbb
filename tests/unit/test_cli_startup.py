"""`llmops --help` (and every group's --help) imports none of the heavy libraries; errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = [
    "torch",
    "sentence_transformers",
    "chromadb",
    "litellm",
    "pandas",
    "airflow_client",
    "onnxruntime",
    "transformers",
    "bm25s",
    "numpy",
]
REPO = Path(__file__).resolve().parents[2]

PROBE = f"""
import sys, json
from llmops_cli.cli.app import app
try:
    app(sys.argv[1:], prog_name="llmops")
except SystemExit:
    pass
heavy = {{h for h in {HEAVY!r} if h in sys.modules}}
sys.stderr.write("HEAVY=" + json.dumps(sorted(heavy)) + "\\n")
"""


def _help_targets() -> list[list[str]]:
    from typer.main import get_command

    from llmops_cli.cli.app import app

    root = get_command(app)
    targets = [["--help"]]
    for name in root.list_commands(None):
        cmd = root.get_command(None, name)
        targets.append([name, "--help"])
        for sub in getattr(cmd, "commands", {}) or {}:
            targets.append([name, sub, "--help"])
    return targets


def test_every_help_screen_imports_no_heavy_library():
    from concurrent.futures import ThreadPoolExecutor

    def probe(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, timeout=60
        )

    # one process per help screen, as many at once as there are cores: the suite runs one test at a time
    targets = _help_targets()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(probe, targets))
    for args, r in zip(targets, results, strict=True):
        line = [ln for ln in r.stderr.splitlines() if ln.startswith("HEAVY=")]
        assert line, (args, r.stderr[-2000:])
        assert json.loads(line[0][6:]) == [], f"llmops {' '.join(args)} imported {line[0]}"
        assert "Usage" in r.stdout, (args, r.stdout[:500])


def _llmops(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli", *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=120
    )


def test_bad_config_is_one_line_exit_2_without_traceback(tmp_path):
    (tmp_path / "llmops.yaml").write_text("chunking:\n  strategy: sentences\n")
    r = _llmops("config", "show", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "chunking.strategy" in r.stderr and "llmops.yaml" in r.stderr and "'headings'" in r.stderr


def test_debug_env_adds_the_traceback_and_changes_nothing_else(tmp_path):
    (tmp_path / "llmops.yaml").write_text("chunking:\n  strategy: sentences\n")
    plain = _llmops("config", "show", cwd=tmp_path)
    debug = _llmops("config", "show", cwd=tmp_path, env={"LLMOPS_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" in debug.stderr and "Traceback" not in plain.stderr
    # the same error line and hint close the debug output
    assert debug.stderr.strip().splitlines()[-2:] == plain.stderr.strip().splitlines()[-2:]
    assert "hint:" in debug.stderr


def test_debug_env_keeps_not_found_exit_code(tmp_path):
    for env in ({}, {"LLMOPS_DEBUG": "1"}):
        r = _llmops("history", "show", "no-such-answer", cwd=tmp_path, env=env)
        assert r.returncode == 9, (env, r.stderr[-800:])


def test_config_show_json_masks_secrets_and_names_sources(tmp_path):
    r = _llmops(
        "config",
        "show",
        "--json",
        cwd=tmp_path,
        env={"LLMOPS_LLM_API_KEY": "sk-abcdefghijklmnopqrstuvwx", "LLMOPS_RETRIEVAL_K": "9"},
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {row["key"]: row for row in doc["settings"]}
    assert rows["llm.api_key"]["value"] == "********" and rows["retrieval.k"] == {
        "key": "retrieval.k",
        "value": 9,
        "source": "env:LLMOPS_RETRIEVAL_K",
    }
    assert "sk-abcdefghijkl" not in r.stdout + r.stderr


def test_usage_errors_exit_2(tmp_path):
    r = _llmops("query", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _llmops("ingest", "x", "--cleanup", "sometimes", cwd=tmp_path)
    assert r.returncode == 2 and "--cleanup" in r.stderr


@pytest.mark.parametrize("args", [["ask", "what?"]])
def test_ask_without_a_model_says_how_to_configure_one(tmp_path, args):
    r = _llmops(*args, cwd=tmp_path)
    assert (
        r.returncode == 2
        and "no LLM is configured" in r.stderr
        and "LLMOPS_LLM_MODEL" in r.stderr
        and "Traceback" not in r.stderr
    )


def test_an_embedding_model_that_cannot_load_offline_is_a_clear_usage_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("# A\n\ntext\n")
    r = _llmops("ingest", "d", "--embed-model", "sentence-transformers/all-mpnet-base-v2", cwd=tmp_path)
    assert (
        r.returncode == 2
        and "not downloaded" in r.stderr
        and "bundled default" in r.stderr
        and "Traceback" not in r.stderr
    )


def test_config_show_masks_a_password_inside_a_url(tmp_path):
    env = {
        "LLMOPS_AIRFLOW_URL": "http://admin:S3cretPass@airflow.internal:8080",
        "LLMOPS_LLM_API_BASE": "https://bot:hunter2secret@llm.internal/v1",
    }
    for args in (["config", "show", "--json"], ["config", "show"], ["config", "get", "airflow.url"]):
        r = _llmops(*args, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert "S3cretPass" not in r.stdout + r.stderr and "hunter2secret" not in r.stdout + r.stderr, args
    rows = {
        row["key"]: row["value"]
        for row in json.loads(_llmops("config", "show", "--json", cwd=tmp_path, env=env).stdout)["settings"]
    }
    assert rows["airflow.url"] == "http://admin:********@airflow.internal:8080"  # user and host stay readable


def test_the_command_table_names_what_each_module_registers():
    """The root builds a command from its module on first use: its table must name exactly what the modules add."""
    from llmops_cli.cli.app import COMMANDS, build_commands

    for name, modules in COMMANDS.items():
        assert name in build_commands(modules), f"{modules} does not register `{name}`"
    every_module = tuple(dict.fromkeys(m for ms in COMMANDS.values() for m in ms))
    assert sorted(build_commands(every_module)) == sorted(COMMANDS), (
        "a module registers a command missing from COMMANDS"
    )


def test_a_command_imports_only_its_own_module():
    code = (
        "import sys\n"
        "from llmops_cli.cli.app import main\n"
        "sys.argv = ['llmops', 'config', 'path']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "mods = sorted(m for m in sys.modules if m.startswith('llmops_cli.cli.') and m.endswith('_cmd'))\n"
        "sys.stderr.write('MODS=' + ','.join(mods) + '\\n')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("MODS=")]
    assert line, r.stderr[-2000:]
    assert line[0] == "MODS=llmops_cli.cli.config_cmd", line[0]
