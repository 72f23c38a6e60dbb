"""Which failures a task should retry (pure: unit-tested without Airflow).

Permanent: bad configuration or usage (a bad setting, a relative path, an embedder that does not match the
collection's, a bad input file: exit 2 in the CLI), rejected credentials (exit 8) and a failed quality gate (exit 4):
a retry would fail the same way, so the task fails at once (``AirflowFailException``). Everything else (a store or LLM
endpoint that is down, a timeout, a writer lock held by another run, an unexpected exception) is retried as the task's
``retries`` say.
"""

from __future__ import annotations

from llmops_cli.errors import ExitCode, LlmopsError

PERMANENT_CODES = frozenset({ExitCode.USAGE, ExitCode.AUTH, ExitCode.GATE_FAILED})


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, LlmopsError) and ExitCode(exc.exit_code) in PERMANENT_CODES


def describe(exc: BaseException) -> str:
    """One line for the task's failure: message, then the fix."""
    if isinstance(exc, LlmopsError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return str(exc)
