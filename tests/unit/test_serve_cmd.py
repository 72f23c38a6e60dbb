"""`llmops serve` refuses an address it cannot listen on before any worker starts: one error line and a documented
exit code (uvicorn's own failure came after warm-up with its exit code 3, "partial")."""

from __future__ import annotations

import os
import socket

import pytest
import typer

from llmops_cli.errors import ExitCode, LlmopsError


def serve(*args: str) -> LlmopsError:
    from llmops_cli.cli.app import app
    from llmops_cli.cli.state import AppState, set_state

    set_state(AppState())
    with pytest.raises(LlmopsError) as got:
        typer.main.get_command(app).main(["serve", *args], prog_name="llmops", standalone_mode=False)
    return got.value


@pytest.fixture
def no_uvicorn(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    import uvicorn

    def started(*a, **kw):
        raise AssertionError("uvicorn was started")

    monkeypatch.setattr(uvicorn, "run", started)


def test_a_port_in_use_is_a_conflict_before_uvicorn_starts(no_uvicorn):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        e = serve("--port", str(port))
    assert e.exit_code == ExitCode.CONFLICT and "--port" in e.hint
    assert e.message == f"cannot listen on --host 127.0.0.1 --port {port}: the port is in use"


def test_a_host_that_does_not_resolve_is_a_usage_error(no_uvicorn, monkeypatch):
    monkeypatch.setenv("LLMOPS_SERVE_API_KEYS", "k1")  # not loopback: keys first
    e = serve("--host", "no-such-host.invalid", "--port", "8000")
    assert e.exit_code == ExitCode.USAGE and "cannot listen on --host no-such-host.invalid" in e.message


def test_the_keys_file_skips_comments_and_blank_lines(tmp_path):
    from llmops_cli.cli.serve_cmd import _key_lines

    keys = tmp_path / "keys"
    keys.write_text("# team keys\n\nk-alpha\n  # rotated 2026-11\nsha256:" + "a" * 64 + "\n", encoding="utf-8")
    assert _key_lines(keys) == ["k-alpha", "sha256:" + "a" * 64]


def test_a_keys_file_that_is_not_text_is_a_usage_error(tmp_path):
    from llmops_cli.cli.serve_cmd import _key_lines

    keys = tmp_path / "keys"
    keys.write_bytes(b"\xff\xfe\x00k")
    with pytest.raises(LlmopsError) as got:
        _key_lines(keys)
    assert got.value.exit_code == ExitCode.USAGE and "not UTF-8" in got.value.message


def test_a_slack_secret_without_the_bot_token_is_a_warning_at_start(no_uvicorn, monkeypatch, capsys):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    monkeypatch.setenv("LLMOPS_SERVE_SLACK_SIGNING_SECRET", "not-a-real-signing-secret")
    from llmops_cli.cli.app import app
    from llmops_cli.cli.state import AppState, set_state

    set_state(AppState())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    typer.main.get_command(app).main(["serve", "--port", str(port)], prog_name="llmops", standalone_mode=False)
    err = capsys.readouterr().err
    assert started and "LLMOPS_SERVE_SLACK_BOT_TOKEN" in err and "not-a-real-signing-secret" not in err
