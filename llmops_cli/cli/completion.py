"""Shell completion of values (Typer's --install-completion): collection names and DAG ids.

Called only when the shell asks for completions, never by --help; each completer imports what it needs itself and
answers nothing rather than fail (a completion must never print an error into the user's command line).
"""

from __future__ import annotations

from pathlib import Path


def collection_names(incomplete: str) -> list[str]:
    """The collections of the project's store (read-only: a store that does not exist yet completes nothing)."""
    try:
        from llmops_cli.cli.state import AppState, workspace

        settings = AppState().load().settings
        if not (settings.store.url or settings.store.host) and not settings.store_path.exists():
            return []
        with workspace(settings) as ws:
            names = ws.store(read_only=True).list_collections()
    except Exception:  # noqa: BLE001 - no completion rather than an error in the user's shell
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def dag_ids(incomplete: str) -> list[str]:
    """The llmops DAGs shipped with the package (the DAG id is the file's name): no Airflow call at a keypress."""
    folder = Path(__file__).resolve().parents[1] / "dags"
    return sorted(p.stem for p in folder.glob("llmops_*.py") if p.stem.startswith(incomplete))
