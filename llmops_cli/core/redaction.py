"""Redaction of secrets and personal data, for error messages and for answers promoted into the store."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("API_KEY", re.compile(r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}\b")),
    ("API_KEY", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}\b")),
    ("API_KEY", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    ("API_KEY", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("API_KEY", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("TOKEN", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b")),  # JWT
    ("TOKEN", re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-]{16,}")),
    ("SECRET", re.compile(r"(?i)\b(api[_-]?key|secret|password|passwd|token)(\s*[:=]\s*)(['\"]?)[^\s'\"]{6,}\3")),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
    ("PHONE", re.compile(r"(?<![\w.])\+?\d{1,3}[\s.\-]?\(?\d{2,4}\)?[\s.\-]\d{3,4}[\s.\-]\d{3,4}(?!\w|\.\d)")),  # a sentence's full stop may follow
]


def find_sensitive(text: str) -> list[str]:
    """Kinds of sensitive data found in ``text`` (e.g. ["API_KEY", "EMAIL"])."""
    return sorted({kind for kind, pat in _PATTERNS if pat.search(text)})


PERSONAL = frozenset({"EMAIL", "PHONE"})


def _apply(text: str, skip: frozenset[str] = frozenset()) -> str:
    for kind, pat in _PATTERNS:
        if kind in skip:
            continue
        if kind == "SECRET":
            text = pat.sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED_SECRET]", text)
        elif kind == "TOKEN" and pat.pattern.startswith("(?i)"):
            text = pat.sub(lambda m: f"{m.group(1)} [REDACTED_TOKEN]", text)
        else:
            text = pat.sub(f"[REDACTED_{kind}]", text)
    return text


def redact(text: str) -> str:
    """Replace secrets and personal data with ``[REDACTED_<KIND>]``."""
    return _apply(text)


def redact_secrets(text: str) -> str:
    """Only secrets (keys, tokens, passwords), for messages and logs; personal data is left alone."""
    return _apply(text, skip=PERSONAL)
