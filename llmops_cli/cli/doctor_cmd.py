"""`llmops doctor`: what works and what does not, one line each with the fix.

Checks the config, the vector store, the embedding model, the LLM endpoint, the Airflow API and the state database,
in that order, reading only (no store, log or database is created; no LLM tokens are spent: an endpoint is asked for
its model list). A part that is not configured is skipped, not failed; the exit is 1 when any check failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import typer

from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state, workspace
from llmops_cli.errors import ExitCode, LlmopsError

if TYPE_CHECKING:
    from llmops_cli.settings import LoadedSettings, Settings

HELP = (
    "Check the config, the store, the embedding model, the LLM endpoint, the Airflow API and the state database: one "
    "line each, with the fix. Exits 1 when something is broken; spends no LLM tokens and creates nothing."
)
EPILOG = "Examples:\n\n  llmops doctor\n\n  llmops doctor --json | jq '.checks[] | select(.status==\"fail\")'"


@dataclass
class Check:
    name: str
    status: str  # ok | fail | skip | warn
    detail: str
    fix: str | None = None


def register(app: typer.Typer) -> None:
    app.command(
        "doctor", help=HELP, short_help="What works and what does not: one line each, with the fix.", epilog=EPILOG
    )(doctor)


def doctor(
    timeout: float = typer.Option(
        5.0, "--timeout", help="Seconds the LLM endpoint and Airflow API checks may take.", min=0.1
    ),
    json_out: JsonOpt = False,
) -> None:
    out = Output(json_out)
    checks: list[Check] = []
    try:
        loaded = state().load()
    except LlmopsError as e:
        checks.append(Check("config", "fail", e.message, e.hint))
        loaded = None
    if loaded is not None:
        checks.append(_config(loaded))
        s = loaded.settings
        for name, check in (
            ("store", _store),
            ("embedder", _embedder),
            ("llm", _llm),
            ("airflow", _airflow),
            ("state database", _state_db),
        ):
            try:
                checks.append(check(s, loaded, timeout))
            except LlmopsError as e:
                checks.append(Check(name, "fail", e.message, e.hint))
            except Exception as e:  # noqa: BLE001 - a doctor reports what it finds, one line each
                checks.append(Check(name, "fail", f"{type(e).__name__}: {e}".splitlines()[0][:300]))
    from llmops_cli.core.redaction import mask_url_password

    for c in checks:  # a detail may quote a driver's message: no URL's password (or a configured one) leaves here
        c.detail, c.fix = mask_url_password(c.detail), mask_url_password(c.fix) if c.fix else c.fix
    failed = [c.name for c in checks if c.status == "fail"]
    if out.json_mode:
        out.json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        marks = {
            "ok": "[green]ok  [/green]",
            "fail": "[red]FAIL[/red]",
            "skip": "[dim]skip[/dim]",
            "warn": "[yellow]warn[/yellow]",
        }
        from rich.markup import escape

        for c in checks:
            line = f"{marks[c.status]} {c.name:<16} {escape(c.detail)}"
            if c.fix and c.status != "ok":
                line += f"\n     {'':<16} [dim]fix: {escape(c.fix)}[/dim]"
            out.out.print(line, soft_wrap=True, highlight=False)
    out.finish(ExitCode.FAILURE if failed else ExitCode.OK, warning=f"broken: {', '.join(failed)}" if failed else None)


def _config(loaded: LoadedSettings) -> Check:
    from llmops_cli import config_check

    typos = config_check.problems(loaded.config_file)
    where = str(loaded.config_file) if loaded.config_file else "none, built-in defaults"
    if typos:
        return Check("config", "warn", f"{where}; {typos[0]}", "fix the name (llmops config show lists the keys)")
    return Check("config", "ok", where)


def _store(s: Settings, loaded: LoadedSettings, timeout: float) -> Check:
    from llmops_cli.entry.store import store_location

    where = store_location(s)
    if not (s.store.url or s.store.host) and not s.store_path.exists():
        return Check("store", "ok", f"{where}: none yet", "llmops ingest PATH creates it")
    with workspace(s) as ws:
        store = ws.store(read_only=True)
        names = store.list_collections()
        # PostgreSQL without pgvector (or without the right to enable it) lists fine, and the first ingest fails
        no_vectors = store.vector_problem() if hasattr(store, "vector_problem") else None
    if no_vectors:
        return Check(
            "store",
            "fail",
            f"{where}: {no_vectors}",
            "grant this user CREATE on that schema"
            if "tables" in no_vectors
            else "install pgvector on the server and run CREATE EXTENSION vector in that database as a superuser",
        )
    shown = ", ".join(sorted(names)[:5]) + (f", +{len(names) - 5} more" if len(names) > 5 else "")
    detail = f"{where}: {len(names)} collection(s)" + (f" ({shown})" if names else "")
    if names and s.store.collection not in names:
        return Check(
            "store",
            "warn",
            detail + f"; store.collection {s.store.collection!r} is not one of them",
            "pass --collection, or set store.collection",
        )
    return Check("store", "ok", detail)


def _embedder(s: Settings, loaded: LoadedSettings, timeout: float) -> Check:
    with workspace(s) as ws:
        emb = ws.embedder()
        vec = emb.embed(["llmops doctor"])
    return Check("embedder", "ok", f"{emb.identity} loads and embeds ({len(vec[0])} dimensions)")


def _llm(s: Settings, loaded: LoadedSettings, timeout: float) -> Check:
    if not s.llm.model:
        return Check(
            "llm",
            "skip",
            "no LLM configured (query, ask --retrieval-only and ingest work without)",
            "set llm.model (or LLMOPS_LLM_MODEL), e.g. openai/gpt-4o-mini",
        )
    if not s.llm.api_base:
        return Check("llm", "ok", f"{s.llm.model} (the provider's endpoint: not called, it would cost tokens)")
    status, detail = _get(s.llm.api_base.rstrip("/") + "/models", timeout, s.llm.api_key)
    fix = {401: "check llm.api_key (LLMOPS_LLM_API_KEY)", 403: "check llm.api_key (LLMOPS_LLM_API_KEY)"}
    if status is None:
        return Check(
            "llm",
            "fail",
            f"{_masked(s.llm.api_base)} unreachable: {detail}",
            "start the server or fix llm.api_base (LLMOPS_LLM_API_BASE)",
        )
    if status in fix:
        return Check("llm", "fail", f"{_masked(s.llm.api_base)} refused the key (HTTP {status})", fix[status])
    if status == 404:
        # a server answers, but not as an OpenAI-compatible API there: ask would fail the same way (e.g. no /v1)
        return Check(
            "llm",
            "warn",
            f"{_masked(s.llm.api_base)} answers, but has no /models (HTTP 404): not an OpenAI-compatible API root",
            "set llm.api_base (LLMOPS_LLM_API_BASE) to the API's root, usually ending in /v1 "
            "(e.g. http://127.0.0.1:8000/v1)",
        )
    if status >= 400:
        return Check(
            "llm",
            "warn",
            f"{s.llm.model} at {_masked(s.llm.api_base)} answered HTTP {status}",
            "check the server's log; llm.api_base (LLMOPS_LLM_API_BASE) names it",
        )
    return Check("llm", "ok", f"{s.llm.model} at {_masked(s.llm.api_base)} answers (HTTP {status})")


def _airflow(s: Settings, loaded: LoadedSettings, timeout: float) -> Check:
    from llmops_cli import wiring
    from llmops_cli.adapters.airflow.ops import AirflowOps, unhealthy_components

    configured = loaded.source_of("airflow.url") != "default"
    client = wiring.build_airflow_client(s)
    client.set_budget(timeout)
    try:
        doc = AirflowOps(client).health()
    except LlmopsError as e:
        # the default URL unreachable: most likely no Airflow is used here, not a broken one
        status = "fail" if configured else "skip"
        return Check(
            "airflow",
            status,
            f"{_masked(s.airflow.url)}: {e.message}",
            e.hint if configured else "set airflow.url if you use Airflow; llmops dev up starts one",
        )
    bad = unhealthy_components(doc)
    version = (doc.get("version") or {}).get("version", "?")
    if bad:
        return Check(
            "airflow",
            "fail",
            f"Airflow {version} at {_masked(s.airflow.url)}: unhealthy {', '.join(bad)}",
            "llmops health shows each component; restart the ones not running",
        )
    return Check("airflow", "ok", f"Airflow {version} at {_masked(s.airflow.url)}, every component healthy")


def _state_db(s: Settings, loaded: LoadedSettings, timeout: float) -> Check:
    if not s.state.url:
        path = s.data_path
        if path.exists():
            return Check("state database", "ok", f"SQLite files under {path}")
        parent = next((p for p in path.parents if p.exists()), None)
        import os

        if parent is not None and os.access(parent, os.W_OK):
            return Check("state database", "ok", f"SQLite files under {path} (created on first use)")
        return Check("state database", "fail", f"{path} cannot be created", "set data_dir to a writable folder")
    from llmops_cli.adapters.state import open_state

    with open_state(s.state.url, s.data_path) as st:
        info = st.describe()
    return Check(
        "state database", "ok", f"{info.get('backend')} {info.get('url')}, schema {info.get('schema_version')}"
    )


def _masked(url: str) -> str:
    from llmops_cli.core.redaction import mask_url_password

    return mask_url_password(url)


def _get(url: str, timeout: float, key: Any) -> tuple[int | None, str]:
    """(HTTP status, "") of a GET, or (None, the reason) when nothing answered."""
    import httpx

    headers = {}
    secret = key.get_secret_value() if hasattr(key, "get_secret_value") else key
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    try:
        r = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        return None, type(e).__name__
    return r.status_code, ""
