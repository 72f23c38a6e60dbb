"""Test-only hook: name every write boundary of the store and the lexical index, so that a test can kill the
process (SIGKILL, no cleanup) right after the Nth write and prove a re-run repairs everything.

``LLMOPS_TEST_KILL_AFTER_WRITE=N`` kills the process after its Nth write step; ``LLMOPS_TEST_WRITE_LOG=FILE``
appends each step's name to FILE (how a test learns how many boundaries a run has). Unset (always, outside tests),
a step costs one dict lookup.
"""

from __future__ import annotations

import os

_KILL = os.environ.get("LLMOPS_TEST_KILL_AFTER_WRITE")
_LOG = os.environ.get("LLMOPS_TEST_WRITE_LOG")
_ON = bool(_KILL or _LOG)
_count = 0


def step(name: str) -> None:
    """Call right after a write has reached disk (a Chroma call returned, a file was renamed into place)."""
    if not _ON:
        return
    global _count
    _count += 1
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(f"{_count}\t{name}\n")
    if _KILL and _count == int(_KILL):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
