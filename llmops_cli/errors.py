"""The project's own errors and the documented exit codes.

Every layer raises these (adapters translate library errors into them); the CLI's ``main()`` maps them
to one line on stderr (message + hint) and an exit code. Tracebacks only with LLMOPS_DEBUG=1.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Exit codes: a public contract for scripts and CI (documented in README.md)."""

    OK = 0
    FAILURE = 1  # an error: the command did not do its job
    USAGE = 2  # bad flags, bad config, bad input file, missing configuration
    PARTIAL = 3  # finished, but some inputs were skipped (listed in the summary)
    GATE_FAILED = 4  # ran fine, but a quality gate (--fail-under) failed
    RUN_FAILED = 5  # an Airflow DAG run ended in a failed state
    TIMEOUT = 6  # waited longer than --timeout
    UNREACHABLE = 7  # a server (Airflow API, Chroma server, LLM endpoint) could not be reached
    AUTH = 8  # credentials rejected
    NOT_FOUND = 9  # no such DAG, run, task, collection, answer...
    CONFLICT = 10  # already exists (e.g. a DAG run id), or another process is writing the store (store_lock)
    DAMAGED = 11  # collections verify: the collection's ledger, chunks, vector or lexical index disagree
    INTERRUPTED = 130  # Ctrl-C; work already written is kept


def exit_code_of(result: Any) -> ExitCode:
    """The exit code a command's result carries: its ``exit_code`` (a report that can be partial, damaged or gated
    says so itself), an ExitCode or int as is, else OK. ``cli.output.Output.finish`` turns it into the process's exit
    status, the one way a command that did its job ends with a non-zero code ("partial" is never an error line)."""
    if isinstance(result, int):
        return ExitCode(result)
    code = getattr(result, "exit_code", None)
    return ExitCode.OK if code is None else ExitCode(int(code))


class LlmopsError(Exception):
    """Base error: a one-line message, an optional hint (the fix) and an exit code."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class UsageError(LlmopsError):
    exit_code = ExitCode.USAGE


class ConfigError(LlmopsError):
    """A bad config value: names the key, the file and what is allowed."""

    exit_code = ExitCode.USAGE


class InputError(LlmopsError):
    """A bad input file (dataset, table, template...)."""

    exit_code = ExitCode.USAGE


class NotConfiguredError(LlmopsError):
    """Something needed is not configured (e.g. no LLM model / key)."""

    exit_code = ExitCode.USAGE


class NotFoundError(LlmopsError):
    exit_code = ExitCode.NOT_FOUND


class ConflictError(LlmopsError):
    exit_code = ExitCode.CONFLICT


class UnreachableError(LlmopsError):
    exit_code = ExitCode.UNREACHABLE


class AuthError(LlmopsError):
    exit_code = ExitCode.AUTH


class TimeoutExceeded(LlmopsError):
    exit_code = ExitCode.TIMEOUT


class RunFailed(LlmopsError):
    exit_code = ExitCode.RUN_FAILED


class GateFailed(LlmopsError):
    exit_code = ExitCode.GATE_FAILED


class EmbedderError(LlmopsError):
    """The embedding model could not be loaded or used."""


class StoreError(LlmopsError):
    """The vector store failed."""


class LLMError(LlmopsError):
    """An LLM call failed for good (after the retries that make sense)."""


def listen_error(e: OSError, where: str, *, in_use_hint: str, other_hint: str) -> LlmopsError:
    """A server that cannot bind ``where`` ("cannot listen on H:P", ...): the port in use is a conflict (exit 10),
    anything else (an address not of this machine, a port out of range) a usage error (exit 2)."""
    import errno

    if e.errno == errno.EADDRINUSE:
        return ConflictError(f"{where}: the port is in use", hint=in_use_hint)
    return UsageError(f"{where}: {e.strerror or e}", hint=other_hint)


def closest(name: str, candidates: Iterable[str], *, cutoff: float = 0.75) -> str | None:
    """The candidate most like ``name`` (for a "did you mean ...?"), or None when none is close enough."""
    import difflib

    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=cutoff)
    return found[0] if found else None
