"""Network helpers for tests that need an endpoint nobody answers at (all on loopback)."""

from __future__ import annotations

import socket


def closed_port() -> int:
    """A loopback port nothing listens on: a connection there is refused at once."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
