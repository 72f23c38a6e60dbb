"""What one ``llmops serve`` process is told besides the settings: API keys (kept as hashes), CORS origins, limits,
the Slack app's secrets. Read from flags and environment variables (``LLMOPS_SERVE_*``) by the command, and handed to
the worker processes as one JSON document in the environment (never on a command line, where ``ps`` shows it)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

from llmops_cli.errors import UsageError

OPTIONS_ENV = "LLMOPS_SERVE_OPTIONS"  # how the command hands its options to uvicorn's worker processes
KEYS_ENV = "LLMOPS_SERVE_API_KEYS"  # comma-separated: a key, or sha256:<hex of its SHA-256> (hashed at rest)
SLACK_SECRET_ENV = "LLMOPS_SERVE_SLACK_SIGNING_SECRET"
SLACK_TOKEN_ENV = "LLMOPS_SERVE_SLACK_BOT_TOKEN"
SLACK_API_ENV = "LLMOPS_SERVE_SLACK_API_BASE"  # Slack's Web API (tests point it at a local server)
CORS_ENV = "LLMOPS_SERVE_CORS_ORIGINS"
HASH_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """The form an API key is kept in: ``sha256:<hex>`` (a key given already hashed stays as it is)."""
    key = key.strip()
    if key.startswith(HASH_PREFIX):
        digest = key[len(HASH_PREFIX) :].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(
                "an API key given as sha256:... must be 64 hex digits", hint=f"check {KEYS_ENV} or --api-keys-file"
            )
        return HASH_PREFIX + digest
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    collection: str | None = None
    config: str | None = None
    profile: str | None = None
    api_key_hashes: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 64 * 1024
    max_question_chars: int = 2000
    rate_limit_per_minute: int = 120  # per API key (or client address without keys), for the whole service
    slack_signing_secret: str | None = None
    slack_bot_token: str | None = None
    slack_api_base: str = "https://slack.com/api"

    def key_matches(self, key: str | None) -> str | None:
        """The hash of ``key`` when it is one of the API keys (compared in constant time), else None."""
        if not key:
            return None
        h = hash_key(key) if not key.startswith(HASH_PREFIX) else None  # a hash is not a key
        if h is None:
            return None
        for known in self.api_key_hashes:
            if hmac.compare_digest(h, known):
                return h
        return None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServeOptions:
        environ = os.environ if environ is None else environ
        raw = environ.get(OPTIONS_ENV)
        return cls(**json.loads(raw)) if raw else cls()

    def __repr__(self) -> str:  # never the Slack secrets, even in a debugger or a log line
        return f"ServeOptions(host={self.host!r}, port={self.port}, keys={len(self.api_key_hashes)})"


def keys_from(lines: list[str] | None, environ: dict[str, str] | None = None) -> list[str]:
    """API key hashes from ``--api-keys-file``'s lines and ``LLMOPS_SERVE_API_KEYS``."""
    environ = os.environ if environ is None else environ
    raw = [*(lines or []), *environ.get(KEYS_ENV, "").split(",")]
    return sorted({hash_key(k) for k in raw if k.strip()})
