"""Evaluation's core (llmops_cli/core/eval) is handed its parts: no module there imports the entry layer, the wiring,
the CLI or the settings (statically, lazy imports included), and importing every one of them loads
none of those modules (so no import cycle can run through them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llmops_cli
from tests.unit.test_layering import upward_imports

PACKAGE = Path(llmops_cli.__file__).parent
EVAL_CORE = PACKAGE / "core" / "eval"
UPPER = ("llmops_cli.entry", "llmops_cli.wiring", "llmops_cli.cli", "llmops_cli.settings")


def test_no_core_eval_module_imports_an_upper_layer():
    modules = sorted(EVAL_CORE.glob("*.py"))
    assert len(modules) > 10  # the scan reads the real folder
    offenders = []
    for f in modules:
        offenders += upward_imports(f.read_text(), str(f.relative_to(PACKAGE.parent)), "llmops_cli.core.eval")
    assert offenders == [], "core/eval imports an upper layer:\n" + "\n".join(offenders)


def _upper_modules_loaded_by(names: list[str]) -> list[str]:
    probe = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({UPPER!r}))))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_importing_core_eval_loads_no_upper_layer():
    names = [f"llmops_cli.core.eval.{f.stem}" for f in sorted(EVAL_CORE.glob("*.py")) if f.stem != "__init__"]
    assert _upper_modules_loaded_by(names) == []
    # the probe itself sees an upper layer: the entry point (which builds the parts) loads the wiring
    assert "llmops_cli.wiring" in _upper_modules_loaded_by(["llmops_cli.entry.eval"])
