"""Dependency arrows point down: nothing under llmops_cli/core imports the entry layer, the wiring, the CLI, the
settings module or the adapters, at module level or inside a function (a static scan, so a lazy import cannot hide an
arrow). Adapters implement core's ports; core never reaches for one (the one exception is named in ALLOWED)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmops_cli

PACKAGE = Path(llmops_cli.__file__).parent
FORBIDDEN = (
    "llmops_cli.wiring",
    "llmops_cli.cli",
    "llmops_cli.settings",
    "llmops_cli.entry",
    "llmops_cli.adapters",
)
# (core file, imported module) pairs allowed to cross anyway, each with its reason:
ALLOWED = {
    # the stdlib SQLite driver as the default for a store given a file path (AnswerLog(path), RunHistory(path),
    # LLMCache(path)); everything the CLI and the DAGs open goes through adapters.state.open_state instead
    ("llmops_cli/core/state/__init__.py", "llmops_cli.adapters.state.sqlite"),
}


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"
    )


def upward_imports(source: str, where: str, package: str) -> list[str]:
    """``where:line module`` for each import of a forbidden module in ``source`` (a module of ``package``); imports
    under ``if TYPE_CHECKING:`` are left out (annotations only: no arrow at run time)."""
    tree = ast.parse(source, filename=where)
    found = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:
                visit(child)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{where}:{node.lineno} {name}")
                break
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def core_offenders(read=lambda f: f.read_text()) -> list[str]:
    hits = []
    for f in sorted((PACKAGE / "core").rglob("*.py")):
        rel = f.relative_to(PACKAGE.parent)
        for hit in upward_imports(read(f), str(rel), ".".join(rel.parts[:-1])):
            where, module = hit.split()
            if (where.rsplit(":", 1)[0], module) not in ALLOWED:
                hits.append(hit)
    return hits


def test_core_imports_nothing_above_it():
    offenders = core_offenders()
    assert offenders == [], "core imports an upper layer:\n" + "\n".join(offenders)


def test_the_scan_sees_lazy_relative_and_from_imports():
    """The scan itself can fail: an import inside a function, a relative one and ``from llmops_cli import wiring``
    are each found, an adapter too; one under ``if TYPE_CHECKING:`` is not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from llmops_cli.settings import Settings\n"
        "def f():\n    from llmops_cli import wiring\n"
        "def g():\n    from ... import entry\n"
        "def h():\n    import llmops_cli.cli.app\n"
        "from llmops_cli.adapters.llm.retry import RetryPolicy\n"
        "def i():\n    from ...adapters import vectorstores\n"
    )
    hits = upward_imports(source, "probe.py", "llmops_cli.core.batch")
    assert [h.split()[1] for h in hits] == [
        "llmops_cli.wiring",
        "llmops_cli.entry",
        "llmops_cli.cli.app",
        "llmops_cli.adapters.llm.retry",
        "llmops_cli.adapters",
    ]


def test_an_allowed_crossing_is_only_allowed_where_it_is_named(tmp_path):
    """The allow-list names a file and a module: the same import anywhere else in core is still an offender."""
    probe = "def f():\n    from llmops_cli.adapters.state.sqlite import SQLiteDB\n"
    assert core_offenders(read=lambda f: probe if f.name == "ports.py" else "") == [
        "llmops_cli/core/ports.py:2 llmops_cli.adapters.state.sqlite"
    ]
