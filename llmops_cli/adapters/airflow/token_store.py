"""Airflow access tokens kept between commands (`llmops auth login`): the password is exchanged once, not per command.

Where: the OS keyring (the optional ``keyring`` package, when it has a usable backend) or, without one, a 0600 file.
Either way an index file ``$XDG_CONFIG_HOME/llmops/tokens.json`` (default ``~/.config/llmops/tokens.json``, mode 0600,
written atomically) lists each login: server URL, user, profile, expiry and where the token lives. The client reads
only that file on each command and touches the keyring only for a connection that has a login, so a desktop keyring is
never unlocked (or even imported: ~0.5 s) for users who never ran `llmops auth login`.

A login is keyed by server URL and user; a connection without a user name finds the one login for its URL.
``LLMOPS_TOKEN_STORE=file`` keeps tokens in the file even where a keyring exists (CI runners, tests).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.errors import AuthError

KEYRING_SERVICE = "llmops-airflow"
EXPIRY_MARGIN_S = 60.0  # a token this close to its expiry is treated as expired: it could lapse mid-command


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llmops" / "tokens.json"


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (seconds since the epoch), read without verifying it; None when there is none."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _login_hint(url: str) -> str:
    return f"run `llmops auth login` (for {url}), or set LLMOPS_AIRFLOW_PASSWORD so llmops can log in by itself"


@dataclass(frozen=True)
class Login:
    """One stored login, as `llmops auth status` shows it (never the token)."""

    url: str
    username: str | None
    profile: str | None
    storage: str  # "keyring" | "file"
    obtained_at: float
    expires_at: float | None
    rejected: bool = False  # the server refused the token before its expiry (its key changed, it was revoked)

    def expired(self, now: float | None = None) -> bool:
        if self.rejected:
            return True
        return self.expires_at is not None and (now or time.time()) >= self.expires_at - EXPIRY_MARGIN_S

    def as_dict(self) -> dict[str, Any]:
        now = time.time()
        return {
            "url": self.url,
            "username": self.username,
            "profile": self.profile,
            "storage": self.storage,
            "obtained_at": _iso(self.obtained_at),
            "expires_at": _iso(self.expires_at) if self.expires_at else None,
            "expires_in_s": round(self.expires_at - now) if self.expires_at else None,
            "valid": not self.expired(now),
        }


def _iso(ts: float | None) -> str | None:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


class TokenStore:
    """Logins under one index file; tokens in the keyring or in that file (see the module docstring)."""

    def __init__(self, path: Path | None = None, *, backend: str | None = None):
        self.path = path or default_path()
        # "file", "keyring", or None = the keyring when usable, else the file (decided on the first put)
        self._backend = backend or os.environ.get("LLMOPS_TOKEN_STORE") or None

    # ---------------------------------------------------------------- the client's hook
    def token_for(self, url: str, username: str | None, *, can_refresh: bool) -> str | None:
        """The stored, unexpired token for this connection. None when there is no login, or when it expired and the
        password can get a new one (``can_refresh``). An expired or rejected login without a password is an
        AuthError (exit 8) that says to log in again."""
        key, entry = self._find(url, username)
        if entry is None:
            return None
        login = _login_of(entry)
        if login.expired():
            if can_refresh:
                return None
            why = "was rejected by the server" if login.rejected else f"expired at {_iso(login.expires_at)}"
            raise AuthError(f"the stored Airflow token for {url} {why}", hint=_login_hint(url))
        token = self._read_secret(key, entry)
        if token is None and not can_refresh:
            raise AuthError(
                f"the stored Airflow token for {url} is missing from the {login.storage}", hint=_login_hint(url)
            )
        return token

    def refreshed(self, url: str, username: str | None, token: str) -> None:
        """A new token from the password: replaces a stored login's token (connections without a login store
        nothing: only `llmops auth login` opts in to keeping tokens)."""
        key, entry = self._find(url, username)
        if entry is not None:
            self.put(url, entry.get("username") or username, token, profile=entry.get("profile"))

    def rejected(self, url: str, username: str | None) -> None:
        """The server refused the stored token: mark the login, so the next command does not send it again."""
        key, entry = self._find(url, username)
        if entry is None:
            return
        index = self._read_index()
        index["logins"][key] = {**entry, "rejected": True, "token": None}
        self._write_index(index)
        self._delete_secret(key, entry)

    # ---------------------------------------------------------------- auth login / status / logout
    def put(self, url: str, username: str | None, token: str, *, profile: str | None = None) -> Login:
        key = _key(url, username)
        index = self._read_index()
        old = index["logins"].get(key)
        storage = self._choose_backend()
        entry: dict[str, Any] = {
            "url": url,
            "username": username,
            "profile": profile,
            "storage": storage,
            "obtained_at": time.time(),
            "expires_at": token_expiry(token),
        }
        if storage == "keyring":
            try:
                _keyring().set_password(KEYRING_SERVICE, key, token)
            except Exception:  # noqa: BLE001 - a keyring that fails at use (no D-Bus session, locked): use the file
                storage = entry["storage"] = self._backend = "file"
        if storage == "file":
            entry["token"] = token
        if old and old.get("storage") == "keyring" and storage != "keyring":
            self._delete_secret(key, old)
        index["logins"][key] = entry
        self._write_index(index)
        return _login_of(entry)

    def get(self, url: str, username: str | None) -> Login | None:
        return _login_of(self._find(url, username)[1])

    def logins(self) -> list[Login]:
        return [_login_of(e) for e in self._read_index()["logins"].values()]

    def delete(self, url: str, username: str | None) -> Login | None:
        key, entry = self._find(url, username)
        if entry is None:
            return None
        index = self._read_index()
        index["logins"].pop(key, None)
        self._write_index(index)
        self._delete_secret(key, entry)
        return _login_of(entry)

    # ---------------------------------------------------------------- storage
    def _find(self, url: str, username: str | None) -> tuple[str, dict[str, Any] | None]:
        logins = self._read_index()["logins"]
        key = _key(url, username)
        if key in logins or username:
            return key, logins.get(key)
        same_url = [(k, e) for k, e in logins.items() if e.get("url") == url.rstrip("/")]
        return same_url[0] if len(same_url) == 1 else (key, None)

    def _read_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "logins": {}}
        except (OSError, ValueError):
            return {"version": 1, "logins": {}}  # unreadable or damaged: as if logged out (login rewrites it)
        if not isinstance(data, dict) or not isinstance(data.get("logins"), dict):
            return {"version": 1, "logins": {}}
        return data

    def _write_index(self, index: dict[str, Any]) -> None:
        """Atomically, created 0600 (never world-readable, not even for an instant), in a 0700 folder."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(index, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _choose_backend(self) -> str:
        if self._backend in ("file", "keyring"):
            return self._backend
        self._backend = "keyring" if keyring_usable() else "file"
        return self._backend

    def _read_secret(self, key: str, entry: dict[str, Any]) -> str | None:
        if entry.get("storage") == "keyring":
            try:
                return _keyring().get_password(KEYRING_SERVICE, key)
            except Exception:  # noqa: BLE001 - keyring gone or locked: treated as no stored token
                return None
        token = entry.get("token")
        return str(token) if token else None

    def _delete_secret(self, key: str, entry: dict[str, Any]) -> None:
        if entry.get("storage") == "keyring":
            with contextlib.suppress(Exception):
                _keyring().delete_password(KEYRING_SERVICE, key)


def _key(url: str, username: str | None) -> str:
    return f"{username or ''}@{url.rstrip('/')}"


def _login_of(entry: dict[str, Any] | None) -> Login | None:
    if entry is None:
        return None
    return Login(
        url=str(entry.get("url")),
        username=entry.get("username"),
        profile=entry.get("profile"),
        storage=str(entry.get("storage") or "file"),
        obtained_at=float(entry.get("obtained_at") or 0.0),
        expires_at=float(entry["expires_at"]) if entry.get("expires_at") else None,
        rejected=bool(entry.get("rejected")),
    )


def _keyring() -> Any:
    import keyring

    return keyring


def keyring_usable() -> bool:
    """Whether the ``keyring`` package is installed and has a real backend (not its fail/null stand-ins, priority 0
    or less, which is what a headless Linux without a Secret Service gets)."""
    try:
        kr = _keyring().get_keyring()
    except Exception:  # noqa: BLE001 - not installed, or a backend that breaks on load
        return False
    try:
        return float(getattr(kr, "priority", 0)) > 0
    except Exception:  # noqa: BLE001
        return False
