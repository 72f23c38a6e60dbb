"""`llmops trigger-dag`: start a DAG run on Airflow, optionally wait for it and fail like it did.

Exit codes: 0 run created (or, with --wait, succeeded); 5 the run failed (failed tasks named, their log tails
printed); 6 --timeout passed; 7 API server unreachable; 8 credentials rejected; 9 no such DAG; 10 run id exists;
2 conf rejected (by the DAG's params: the server's message is shown; a key the DAG does not declare, unless
--allow-unknown-params), or --wait on a paused DAG (its runs would stay queued forever: add --unpause, or `llmops dags
unpause`); 3 the run succeeded but its DAG reported a partial outcome (e.g. an ingest that skipped files; the reason
is printed). With --json the document names the run ``run_id``, and after --wait holds the DAG's reported outcome.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli.airflow_watch import finish_wait, public, session, watch_run
from llmops_cli.cli.options import DagArg, JsonOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.state import parse_key_values
from llmops_cli.core.orchestration import paused_error, undeclared_params
from llmops_cli.errors import InputError, UsageError


def register(app: typer.Typer) -> None:
    app.command(
        "trigger-dag",
        help="Trigger a DAG run on Airflow; --wait follows it and exits 5 if it fails, "
        "3 if it succeeded partially, 6 on --timeout.",
    )(trigger_dag)


ConfOpt = Annotated[str | None, typer.Option("--conf", help="Run conf as a JSON object.")]
ConfFileOpt = Annotated[Path | None, typer.Option("--conf-file", help="Run conf from a JSON or YAML file.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help='One conf key=value (repeatable; the value is parsed as JSON when it can be: 3, true, ["a"]).',
    ),
]
AllowUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unknown-params", help="Pass conf keys the DAG does not declare as params (else exit 2, naming them)."
    ),
]


def trigger_dag(
    dag_id: DagArg,
    conf: ConfOpt = None,
    conf_file: ConfFileOpt = None,
    param: ParamOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id (default: manual__<UTC time>).")] = None,
    logical_date: Annotated[
        str | None, typer.Option("--logical-date", help="Logical date, ISO 8601 (default: none, like a manual run).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note shown with the run in Airflow.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end, showing task states.")] = False,
    unpause: Annotated[
        bool, typer.Option("--unpause", help="Unpause the DAG first if it is paused (a paused DAG's runs stay queued).")
    ] = False,
    allow_unknown_params: AllowUnknownOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    body = build_conf(conf, conf_file, param)
    when = parse_iso_datetime(logical_date, "--logical-date") if logical_date else None
    out, client = session(url, json_out, timeout, wait=wait)
    dag = client.get_dag(dag_id)
    check_params(dag_id, body, dag, allow_unknown_params)
    paused = bool(dag.get("is_paused"))
    if paused and unpause:
        client.set_paused(dag_id, False)
        out.info(f"unpaused {dag_id}")
        paused = False
    if paused and wait:  # refuse before creating a run that would sit in "queued" forever
        raise paused_error(dag_id)
    run = client.trigger(dag_id, conf=body, run_id=run_id, logical_date=when, note=note)
    rid = run["dag_run_id"]
    if not wait:
        if out.json_mode:
            out.json(public(run))
        else:
            out.print(rid, markup=False)
            out.info(
                f"triggered {dag_id}: run {rid} ({run.get('state')}); follow it with `llmops runs wait {dag_id} {rid}`"
            )
            if paused:
                out.warn(f"{dag_id} is paused: the run stays queued until `llmops dags unpause {dag_id}`")
        return
    if not out.json_mode:
        out.print(rid, markup=False)
    result = watch_run(client, out, dag_id, rid, timeout_s=timeout)
    finish_wait(client, out, dag_id, rid, result, timeout_s=timeout)


def check_params(dag_id: str, body: dict[str, Any], dag: dict[str, Any], allow_unknown: bool) -> None:
    """Refuse conf keys the DAG does not declare (exit 2, with did-you-mean), unless ``allow_unknown``."""
    if body and not allow_unknown and (err := undeclared_params(dag_id, body, dag.get("params"))):
        raise err


def build_conf(conf: str | None, conf_file: Path | None, params: list[str] | None) -> dict[str, Any]:
    """--conf / --conf-file (exclusive), then -p key=value on top."""
    if conf is not None and conf_file is not None:
        raise UsageError(
            "--conf and --conf-file are exclusive", hint="give the conf one way (-p key=value adds to either)"
        )
    body: Any = {}
    if conf is not None:
        try:
            body = json.loads(conf)
        except ValueError as e:
            raise UsageError(f"--conf is not valid JSON: {e}", hint='write it as --conf \'{"key": "value"}\'') from None
    elif conf_file is not None:
        try:
            text = conf_file.read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(
                f"--conf-file {conf_file}: {e.strerror or e}", hint="pass an existing JSON or YAML file"
            ) from None
        is_yaml = conf_file.suffix.lower() in (".yaml", ".yml")
        try:
            if is_yaml:
                import yaml

                body = yaml.safe_load(text) or {}
            else:
                body = json.loads(text)
        except Exception as e:  # noqa: BLE001 - yaml.YAMLError or json's ValueError
            raise InputError(
                f"--conf-file {conf_file} is not valid {'YAML' if is_yaml else 'JSON'}: {str(e).splitlines()[0]}",
                hint="fix the file; it must hold one object",
            ) from None
    if not isinstance(body, dict):
        raise UsageError(
            "the run conf must be a JSON object (key: value pairs)", hint='e.g. --conf \'{"collection": "docs"}\''
        )

    def json_or_text(v: str) -> Any:  # -p n=3 and -p tags='["a"]' give JSON values, -p name=docs the text as written
        try:
            return json.loads(v)
        except ValueError:
            return v

    body.update(parse_key_values(params, "-p", value=json_or_text, hint="write it as -p key=value (repeatable)"))
    return body


def parse_iso_datetime(text: str, flag: str):
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not an ISO 8601 date-time", hint=f"e.g. {flag} 2026-01-31T12:00:00Z"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
