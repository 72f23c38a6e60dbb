"""`llmops serve`: the Q&A API, the web page and the Slack adapter (llmops_cli/serve), run by uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli.options import CollectionOpt
from llmops_cli.cli.state import state
from llmops_cli.errors import UsageError, listen_error


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve the Q&A API (ask, query, feedback, recent good answers), a web page at / and a Slack endpoint, "
        "over the same answer log and store as the CLI (docs/serve.md).",
    )(serve)


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (anything but loopback needs API keys).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.", min=1, max=65535)] = 8000,
    collection: CollectionOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes (each with its own workspace).", min=1)
    ] = 1,
    api_keys_file: Annotated[
        Path | None,
        typer.Option(
            "--api-keys-file",
            help="API keys, one a line: a key, or sha256:HEX of one (also LLMOPS_SERVE_API_KEYS, comma-separated).",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="An origin web pages may call from (repeatable).")
    ] = None,
    rate_limit: Annotated[
        int,
        typer.Option(
            "--rate-limit",
            help="Requests a minute per API key (or client address), for the whole service; 0: off.",
            min=0,
        ),
    ] = 120,
    max_question_chars: Annotated[
        int, typer.Option("--max-question-chars", help="Longest question accepted.", min=1)
    ] = 2000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body accepted.", min=256)
    ] = 64 * 1024,
) -> None:
    from llmops_cli.serve import options as serve_options

    st = state()
    # settings are checked here, once, so a bad config is one error line before any worker starts
    s = st.load(flags={"store.collection": collection}).settings
    keys = serve_options.keys_from(_key_lines(api_keys_file))
    opts = serve_options.ServeOptions(
        host=host,
        port=port,
        collection=s.store.collection,
        config=str(Path(st.config).absolute()) if st.config else None,
        profile=st.profile,
        api_key_hashes=keys,
        cors_origins=list(cors_origin or os.environ.get(serve_options.CORS_ENV, "").split(",")),
        max_body_bytes=max_body_bytes,
        max_question_chars=max_question_chars,
        rate_limit_per_minute=rate_limit,
        slack_signing_secret=os.environ.get(serve_options.SLACK_SECRET_ENV) or None,
        slack_bot_token=os.environ.get(serve_options.SLACK_TOKEN_ENV) or None,
        slack_api_base=os.environ.get(serve_options.SLACK_API_ENV) or "https://slack.com/api",
    )
    opts.cors_origins = [o.strip() for o in opts.cors_origins if o.strip()]
    if not serve_options.is_loopback(host) and not keys:
        raise UsageError(
            f"serving on {host} (not loopback) needs API keys",
            hint=f"set {serve_options.KEYS_ENV} or pass --api-keys-file, or bind 127.0.0.1",
        )
    _check_address(host, port)
    if opts.slack_signing_secret and not opts.slack_bot_token:
        from llmops_cli.cli.output import Output

        Output(False).warn(
            f"{serve_options.SLACK_SECRET_ENV} is set without {serve_options.SLACK_TOKEN_ENV}: the slash command "
            "answers, answers to mentions cannot be posted (Slack refuses them without the bot token)"
        )
    # uvicorn's workers import the app by name: they get the options through the environment (not argv, which
    # `ps` shows), and build their own workspace from the same settings
    os.environ[serve_options.OPTIONS_ENV] = opts.to_env()
    import uvicorn

    uvicorn.run(
        "llmops_cli.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def _key_lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise UsageError(f"--api-keys-file {path} is not UTF-8 text", hint="one key (or sha256:<hex>) a line") from None
    except OSError as e:
        raise UsageError(f"cannot read --api-keys-file {path}: {e.strerror}", hint="check the path") from None
    return [line for line in lines if line and not line.startswith("#")]  # blank lines and # comments are not keys


def _check_address(host: str, port: int) -> None:
    """The address can be listened on, checked as uvicorn binds it but before any worker loads (seconds of warm-up):
    uvicorn's own failure came after warm-up, as its log line and its exit code 3 (which means "partial" here)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed server's port is free
        try:
            sock.bind((host, port))
        except OSError as e:
            raise listen_error(
                e,
                f"cannot listen on --host {host} --port {port}",
                in_use_hint="pass another --port, or stop the server that holds it",
                other_hint="pass an address of this machine (127.0.0.1, 0.0.0.0 or one of its interfaces)",
            ) from None
