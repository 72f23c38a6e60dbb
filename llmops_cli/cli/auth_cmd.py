"""`llmops auth login | status | logout`: an Airflow token kept between commands, so the password is sent once.

`login` exchanges the password at /auth/token and keeps the token (adapters/airflow/token_store.py: the OS keyring
when usable, else a 0600 file under $XDG_CONFIG_HOME/llmops); every Airflow command then sends that token until it
expires. With a password configured, an expired or rejected token is renewed by itself; without one the command exits
8 and says to log in again. The token itself is never printed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from llmops_cli import wiring
from llmops_cli.cli.options import JsonOpt, ProfileOpt, TimeoutOpt, UrlOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state
from llmops_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from llmops_cli.settings import LoadedSettings

auth_app = typer.Typer(
    help="Airflow login kept between commands: login (password exchanged once), status, logout.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(auth_app, name="auth")


def _loaded(url: str | None, profile: str | None) -> LoadedSettings:
    return state().load(flags={"airflow.url": url}, profile=profile)


def _server(loaded: LoadedSettings) -> str:
    from llmops_cli.adapters.airflow.client import display_url

    return display_url(loaded.settings.airflow.url)


@auth_app.command("login", help="Exchange the password for a token once and keep it (keyring, or a 0600 file).")
def login(
    username: Annotated[
        str | None, typer.Option("--username", help="Airflow user (default: airflow.username).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin (default: airflow.password, else ask)."),
    ] = False,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from pydantic import SecretStr

    from llmops_cli.adapters.airflow.token_store import TokenStore

    out = Output(json_out)
    loaded = _loaded(url, profile)
    conn = loaded.settings.airflow
    user = username or conn.username
    if not user:
        raise UsageError(
            "no Airflow user to log in as", hint="pass --username, or set LLMOPS_AIRFLOW_USERNAME (or the profile's)"
        )
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    elif conn.password is not None and (username is None or username == conn.username):
        password = conn.password.get_secret_value()
    elif sys.stdin.isatty():
        password = typer.prompt(f"Airflow password for {user}", hide_input=True, err=True)
    else:
        raise UsageError(
            f"no password for Airflow user {user!r}",
            hint="pipe it with --password-stdin, or set LLMOPS_AIRFLOW_PASSWORD",
        )
    with_password = conn.model_copy(update={"username": user, "password": SecretStr(password), "token": None})
    client = wiring.build_airflow_client(loaded.settings.model_copy(update={"airflow": with_password}))
    client.set_budget(timeout)
    token = client.login()
    saved = TokenStore().put(client.shown_url, user, token, profile=loaded.profile)
    doc = saved.as_dict()
    if out.json_mode:
        out.json(doc)
    else:
        until = f", valid until {doc['expires_at']}" if doc["expires_at"] else ""
        out.info(f"logged in to {doc['url']} as {user} (token kept in the {saved.storage}{until})")
    if conn.token is not None:
        out.warn("LLMOPS_AIRFLOW_TOKEN (airflow.token) is set and is used before the stored login")


@auth_app.command("status", help="The stored login for this connection: who, which server, expiry (never the token).")
def status(profile: ProfileOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.adapters.airflow.token_store import TokenStore

    out = Output(json_out)
    loaded = _loaded(url, profile)
    server = _server(loaded)
    login = TokenStore().get(server, loaded.settings.airflow.username)
    doc = {"url": server, "logged_in": login is not None and not login.expired()}
    if login is not None:
        doc.update(login.as_dict())
    if out.json_mode:
        out.json(doc)
    elif login is not None:
        state_txt = "valid" if doc["logged_in"] else ("rejected by the server" if login.rejected else "expired")
        out.table(
            ["server", "user", "profile", "kept in", "expires", "state"],
            [
                [
                    doc["url"],
                    login.username or "",
                    login.profile or "",
                    login.storage,
                    doc["expires_at"] or "",
                    state_txt,
                ]
            ],
        )
    if loaded.settings.airflow.token is not None:
        out.warn("LLMOPS_AIRFLOW_TOKEN (airflow.token) is set and is used before the stored login")
    out.finish(
        ExitCode.OK if doc["logged_in"] else ExitCode.AUTH,
        warning=None if doc["logged_in"] else f"no valid login for {server}: run `llmops auth login`",
    )


@auth_app.command("logout", help="Forget the stored token for this connection.")
def logout(profile: ProfileOpt = None, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    from llmops_cli.adapters.airflow.token_store import TokenStore

    out = Output(json_out)
    loaded = _loaded(url, profile)
    server = _server(loaded)
    gone = TokenStore().delete(server, loaded.settings.airflow.username)
    if out.json_mode:
        out.json({"url": server, "logged_out": gone is not None})
    else:
        out.info(f"logged out of {server}" if gone else f"no stored login for {server}")
