"""`llmops dev airflow up | down | status | env` and `llmops dev up | env | status | down`: a local Airflow, and the
whole team set-up (PostgreSQL+pgvector, a Chroma server, Airflow with Celery workers), on 127.0.0.1 for trying
llmops. The servers and their installs are in llmops_cli/devstack; nothing heavy is imported before a command runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli.options import JsonOpt
from llmops_cli.errors import ExitCode, LlmopsError, UsageError

if TYPE_CHECKING:
    from llmops_cli.cli.output import Output

dev_app = typer.Typer(
    help="Local servers for trying llmops: Airflow (`dev airflow`), or the whole team stack (`dev up`).",
    no_args_is_help=True,
)
airflow_app = typer.Typer(
    help="A local Airflow 3 on 127.0.0.1 with the llmops DAGs (installed into its own venv on first use).",
    no_args_is_help=True,
)
dev_app.add_typer(airflow_app, name="airflow")

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="AIRFLOW_HOME of the local server (default: $LLMOPS_LOCAL_AIRFLOW_HOME, else ./.airflow)."
    ),
]
RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="Folder of the stack's servers (default: $LLMOPS_DEV_HOME, else ./.llmops-dev)."),
]
ExecutorOpt = Annotated[
    str,
    typer.Option("--executor", help="local (LocalExecutor, SQLite) | celery (Redis + PostgreSQL + Celery workers)."),
]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Celery workers (with --executor celery).", min=1, max=8)]
ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project", help="Folder whose llmops.yaml (and store, data dir) the Airflow tasks use (default: here)."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")


def _check_executor(executor: str) -> None:
    if executor not in ("local", "celery"):
        raise UsageError(f"--executor must be local or celery, not {executor!r}", hint="e.g. --executor celery")


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def _start_failed(e: Exception, where: Path) -> LlmopsError:
    if isinstance(e, subprocess.CalledProcessError):
        return LlmopsError(
            f"installing Airflow failed: {' '.join(map(str, e.cmd[:6]))}... exited {e.returncode}",
            hint="see pip's output above (the package index must be reachable on first use)",
        )
    if isinstance(e, FileNotFoundError) or "redis-server is not installed" in str(e):
        return LlmopsError(str(e).splitlines()[0], hint="apt-get install redis-server (Debian) for --executor celery")
    lines = str(e).splitlines()
    detail = "\n".join(lines[1:])[-3000:]
    if detail:
        typer.echo(detail, err=True)
    return LlmopsError(
        lines[0] if lines else type(e).__name__,
        hint=f"the component logs are in {where}",
        exit_code=ExitCode.FAILURE,
    )


# ------------------------------------------------------------------------------------------- dev airflow
@airflow_app.command("up", help="Install (first time) and start a local Airflow; prints its URL when healthy.")
def airflow_up(
    home: HomeOpt = None,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = 2,
    dags_folder: Annotated[
        list[Path] | None, typer.Option("--dags-folder", help="An extra DAGs folder (repeatable).")
    ] = None,
    project: ProjectOpt = None,
    venv: Annotated[
        Path | None, typer.Option("--venv", help="Airflow's venv (default: .venv-airflow in a source checkout).")
    ] = None,
) -> None:
    from llmops_cli.devstack import airflow as local

    _check_executor(executor)
    home = (home or local.default_home()).resolve()
    try:
        af = local.up(
            home,
            venv=venv,
            extra_dags=[str(d) for d in dags_folder or []],
            task_env=local.project_task_env(project or Path.cwd()),
            executor=executor,
            workers=workers,
            log=_log,
        )
    except (local.AirflowStartError, subprocess.CalledProcessError, FileNotFoundError) as e:
        raise _start_failed(e, home / "process-logs") from e
    typer.echo(af.url)
    _log(
        f"\nPoint llmops at it (test credentials of this local server; the password is in {af.passwords_file}):\n"
        f'  eval "$(llmops dev airflow env{_home_flag(home)})"\n'
        "  llmops dags list\n"
        f"UI: {af.url} (user {local.USERNAME}). Stop it with: llmops dev airflow down{_home_flag(home)}"
    )


def _home_flag(home: Path) -> str:
    from llmops_cli.devstack import airflow as local

    return "" if home == local.default_home().resolve() else f" --home {home}"


@airflow_app.command("down", help="Stop the local Airflow (and its Redis / PostgreSQL with --executor celery).")
def airflow_down(home: HomeOpt = None) -> None:
    from llmops_cli.devstack import airflow as local

    local.down(home, log=_log)


@airflow_app.command("status", help="Is the local Airflow up: URL, processes, workers (no secrets). Exit 1 if not.")
def airflow_status(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.devstack import airflow as local

    def show(out: Output, st: dict[str, Any]) -> None:
        out.print(f"home: {st['home']}", markup=False)
        if "url" in st:
            out.print(f"url: {st['url']}  executor: {st['executor']}  healthy: {'yes' if st['healthy'] else 'no'}")
        rows = [[name, pid] for name, pid in st["running"].items()]
        out.table(["process", "pid"], rows)
        if st.get("workers"):
            out.table(
                ["worker", "hostname", "folder"], [[w["name"], w["hostname"], w["folder"]] for w in st["workers"]]
            )

    _status(json_out, lambda: local.status(home), show, ok="healthy")


def _status(
    json_out: bool, read: Callable[[], dict[str, Any]], show: Callable[[Output, dict[str, Any]], None], ok: str
) -> None:
    """A status document as JSON or shown by ``show``; exit 1 when its ``ok`` field is false."""
    from llmops_cli.cli.output import Output

    out = Output(json_out)
    st = read()
    if out.json_mode:
        out.json(st)
    else:
        show(out, st)
    if not st[ok]:
        raise typer.Exit(int(ExitCode.FAILURE))


@airflow_app.command(
    "env", help='Shell lines that point llmops at the local Airflow: eval "$(llmops dev airflow env)".'
)
def airflow_env(home: HomeOpt = None) -> None:
    from llmops_cli.devstack import airflow as local

    home = (home or local.default_home()).resolve()
    af = local.LocalAirflow.load(home)
    if af is None:
        raise LlmopsError(f"no local Airflow set up in {home}", hint="run `llmops dev airflow up` first")
    typer.echo("\n".join(local.shell_env_lines(af)))


# ---------------------------------------------------------------------------------------------- dev stack
@dev_app.command("up", help="Start PostgreSQL+pgvector, a Chroma server (--store chroma) and Airflow; print env lines.")
def stack_up(
    root: RootOpt = None,
    store: Annotated[
        str, typer.Option("--store", help="pgvector (the store in PostgreSQL) | chroma (a Chroma server).")
    ] = "pgvector",
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = 2,
    project: ProjectOpt = None,
) -> None:
    from llmops_cli.devstack import airflow as local
    from llmops_cli.devstack import stack as dev

    _check_executor(executor)
    if store not in dev.STORES:
        raise UsageError(f"--store must be chroma or pgvector, not {store!r}", hint="e.g. --store chroma")
    root = (root or dev.default_root()).resolve()
    try:
        st = dev.up(root, store=store, executor=executor, workers=workers, project=project, log=_log)
    except (local.AirflowStartError, subprocess.CalledProcessError, FileNotFoundError, RuntimeError) as e:
        raise _start_failed(e, root) from e
    typer.echo("\n".join(st.env_lines()))
    _log(
        f'\nUse it from a shell: eval "$(llmops dev env{_root_flag(root)})"; stop it: llmops dev down{_root_flag(root)}'
    )


def _root_flag(root: Path) -> str:
    from llmops_cli.devstack import stack as dev

    return "" if root == dev.default_root().resolve() else f" --root {root}"


@dev_app.command("env", help='Shell lines for the running stack: eval "$(llmops dev env)" (passwords read from files).')
def stack_env(root: RootOpt = None) -> None:
    from llmops_cli.devstack import stack as dev

    root = (root or dev.default_root()).resolve()
    st = dev.Stack.load(root)
    if st is None:
        raise LlmopsError(f"no dev stack set up in {root}", hint="run `llmops dev up` first")
    typer.echo("\n".join(st.env_lines()))


@dev_app.command("status", help="Which servers of the dev stack run (no secrets). Exit 1 if not all.")
def stack_status(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.devstack import stack as dev

    def show(out: Output, st: dict[str, Any]) -> None:
        if "store" not in st:  # no stack.json: a table of "down" servers would describe a stack that is not there
            out.info(f"no dev stack in {st['root']}; llmops dev up starts one (--root or $LLMOPS_DEV_HOME for another)")
            return
        af = st.get("airflow") or {}
        airflow = "healthy" if af.get("healthy") else "down"
        rows = [
            ["postgres", "up" if st.get("postgres") else "down"],
            ["chroma", {True: "up", False: "down", None: "-"}[st.get("chroma")]],
            ["airflow", f"{af['url']} {airflow}" if af.get("url") else airflow],
        ]
        out.table(["server", "state"], rows, title=st["root"])

    _status(json_out, lambda: dev.status(root), show, ok="running")


@dev_app.command("down", help="Stop the dev stack's Airflow, Chroma server and PostgreSQL (data is kept).")
def stack_down(root: RootOpt = None) -> None:
    from llmops_cli.devstack import stack as dev

    stopped = dev.down(root)
    _log(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
