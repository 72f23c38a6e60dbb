"""Redaction of secrets and personal data, for error messages and for answers promoted into the store.

Three shapes of secret are recognised:
- well-known key formats (``sk-...``, ``ghp_...``, ``AKIA...``, JWTs, ``Bearer ...``);
- a value assigned to a key whose NAME says it is secret (``smtp_password = ...``, ``AIRFLOW__SMTP__SMTP_PASSWORD=...``,
  ``db_passwd: ...``, ``"api_key": "..."``, ``fernet_key = ...``): the key stays, the value goes;
- the password in a URL's userinfo (``postgres://user:pw@db/x``): scheme, user and host stay, the password goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# --- key = value, where the key's name marks the value as secret ---------------------------------------------------

# Words that make a key secret wherever they appear in one of its parts ("smtppassword", "db_passwd").
_STRONG = ("password", "passwd", "passphrase")
# Words that make a key secret as a whole part or a part's end ("secret", "client_secret", "authtoken"), but not as a
# prefix: "secrets_backend" names a class, "tokens"/"max_tokens" a count, "tokenizer" a tool.
_WHOLE_OR_SUFFIX = ("secret", "token", "pwd", "apikey", "credentials")
# Two-part names ("api_key", "FERNET_KEY", "privateKey").
_PAIRS = {
    ("api", "key"),
    ("fernet", "key"),
    ("private", "key"),
    ("secret", "key"),
    ("access", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("master", "key"),
    ("auth", "key"),
    ("session", "key"),
}
# Shell variables whose names look secret but are not ($PWD is the working directory).
_NOT_SECRET = {"PWD", "OLDPWD"}
# "token" next to one of these counts tokens (input_cost_per_token, max_token), it is not one.
_TOKEN_COUNTS = {"per", "max", "min", "num", "count", "limit", "cost", "budget", "length", "size", "usage", "total"}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _key_parts(key: str) -> list[str]:
    return [p for p in re.split(r"[_.\-]+", _CAMEL.sub("_", key).lower()) if p]


def is_secret_key(key: str) -> bool:
    """Whether a setting / variable named ``key`` holds a secret (``smtp_password``, ``AIRFLOW__CORE__FERNET_KEY``)."""
    if key in _NOT_SECRET:
        return False
    parts = _key_parts(key)
    if any(w in p for p in parts for w in _STRONG):
        return True
    words = [w for w in _WHOLE_OR_SUFFIX if w != "token" or not _TOKEN_COUNTS & set(parts)]
    if any(p == w or p.endswith(w) for p in parts for w in words):
        return True
    return any(pair in _PAIRS for pair in zip(parts, parts[1:], strict=False))


# A key (optionally quoted, as in JSON or Python), ":" or "=", then a quoted value or an unquoted word of 4+ characters
# (a Markdown backtick ends it). Not a value: a reference to one ($VAR, {{ var }}, <placeholder>, %(name)s), something
# already masked, an ellipsis, or null/none/true/false. The value is a lookahead: a match consumes only the key, so a
# key inside another key's value ("YAML: db_passwd: x") is still seen.
_ASSIGNMENT = re.compile(
    r"""(?<![\w.])(?P<q>["']?)(?P<key>[A-Za-z_][\w.\-]*)(?P=q)(?P<sep>[ \t]*[:=][ \t]*)"""
    r"""(?=(?P<value>(?!["']?(?:[$<{*%]|\[REDACTED|\.\.\.|…|(?i:null|none|true|false)(?![^\s'"`,;])))"""
    r"""(?:"[^"\n]+"|'[^'\n]+'|[^\s'"`,;]{4,})))"""
)


def _mask_assignments(text: str) -> str:
    out, pos = [], 0
    for m in _ASSIGNMENT.finditer(text):
        if m.start() < pos or not is_secret_key(m.group("key")):
            continue  # a key inside a value already masked, or an ordinary setting
        v = m.group("value")
        quote = v[0] if v[0] in "\"'" else ""
        out.append(text[pos : m.end()] + f"{quote}[REDACTED_SECRET]{quote}")
        pos = m.end() + len(v)
    return "".join(out) + text[pos:]


# --- passwords in URLs ---------------------------------------------------------------------------------------------

# scheme://user:password@host (user may be empty: redis://:pw@host). The password runs to the last "@" before the
# host, so a password with an unencoded "@" is masked whole.
_URL_USERINFO = re.compile(
    r"(?i)\b(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^\s:/@]*):(?P<pw>[^\s/]*)@(?=[^\s@/]*(?:[/?#\s]|$))"
)


def mask_url_password(url: str, mask: str = "********") -> str:
    """``url`` (or any text with URLs in it) with the password of each ``scheme://user:password@host`` replaced by
    ``mask``; scheme, user, host, path and query are kept. Text without such a URL comes back unchanged."""
    return _URL_USERINFO.sub(
        lambda m: f"{m.group('scheme')}{m.group('user')}:{mask}@" if m.group("pw") else m.group(0), url
    )


# --- all rules -----------------------------------------------------------------------------------------------------


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    pat = re.compile(pattern)
    return lambda text: pat.sub(repl, text)


# (kind, rewrite). Order matters: URL passwords before e-mail addresses ("user:pw@db.example.com" is not an address);
# known key formats before assignments, so "api_key: sk-..." says API_KEY (an assignment skips a value already masked).
_RULES: list[tuple[str, Callable[[str], str]]] = [
    ("SECRET", lambda text: mask_url_password(text, "[REDACTED_SECRET]")),
    ("API_KEY", _sub(r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bAKIA[0-9A-Z]{16}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bAIza[0-9A-Za-z_\-]{35}\b", "[REDACTED_API_KEY]")),
    ("TOKEN", _sub(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b", "[REDACTED_TOKEN]")),  # JWT
    ("TOKEN", _sub(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-]{16,}", r"\1 [REDACTED_TOKEN]")),
    ("SECRET", _mask_assignments),
    ("EMAIL", _sub(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", "[REDACTED_EMAIL]")),
    # a sentence's full stop may follow
    (
        "PHONE",
        _sub(r"(?<![\w.])\+?\d{1,3}[\s.\-]?\(?\d{2,4}\)?[\s.\-]\d{3,4}[\s.\-]\d{3,4}(?!\w|\.\d)", "[REDACTED_PHONE]"),
    ),
]

PERSONAL = frozenset({"EMAIL", "PHONE"})


def _apply(text: str, skip: frozenset[str] = frozenset()) -> tuple[str, set[str]]:
    found = set()
    for kind, rewrite in _RULES:
        if kind not in skip:
            new = rewrite(text)
            if new != text:
                found.add(kind)
                text = new
    return text, found


def find_sensitive(text: str) -> list[str]:
    """Kinds of sensitive data found in ``text`` (e.g. ["API_KEY", "EMAIL"]), each once, as redaction replaces it."""
    return sorted(_apply(text)[1])


def redact(text: str) -> str:
    """Replace secrets and personal data with ``[REDACTED_<KIND>]``."""
    return _apply(text)[0]


def redact_secrets(text: str) -> str:
    """Only secrets (keys, tokens, passwords), for messages and logs; personal data is left alone."""
    return _apply(text, skip=PERSONAL)[0]
