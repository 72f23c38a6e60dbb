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
# host, so a password with an unencoded "@" or "/" (a base64 one) is masked whole.
_URL_USERINFO = re.compile(
    r"(?i)\b(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^\s:/@]*):(?P<pw>[^\s]*)@(?=[^\s@/]*(?:[/?#\s]|$))"
)

# Passwords of the URLs this process was configured with (register_url_password): a driver may echo one without
# its URL ('unexpected spaces found in "pa ss"', 'invalid percent-encoded token: "pa%ss"'), and a password with a
# space is not recognised inside a URL. Masked in messages (mask_url_password, redact_secrets), not in documents.
_KNOWN_PASSWORDS: set[str] = set()
_MIN_KNOWN = 4  # shorter ones would mask ordinary words; the URL rule still masks them inside their URL


def url_password(url: str) -> str | None:
    """The password of ``scheme://user:password@host...`` as written (userinfo runs to the last "@"), or None."""
    _scheme, sep, rest = url.strip().partition("://")
    userinfo, at, _host = rest.rpartition("@")
    if not sep or not at:
        return None
    _user, colon, password = userinfo.partition(":")
    return password if colon and password else None


# what a URL's password cannot hold as written: a driver then quotes it alone in its error, or the URL rule misses it
_MALFORMED_PASSWORD = re.compile(r"[\s/?#\[\]]|%(?![0-9A-Fa-f]{2})")


def register_url_password(url: str) -> None:
    """Remember the password of ``url`` when it is malformed for a URL (a space, an unencoded ``/ ? #``, a stray
    ``%``), so that no message shows it. A well-formed one is masked by the URL rule wherever its URL appears and no
    driver quotes it alone; masking it everywhere would also mangle messages for a password such as ``postgres``."""
    password = url_password(url)
    if password is not None and len(password) >= _MIN_KNOWN and _MALFORMED_PASSWORD.search(password):
        _KNOWN_PASSWORDS.add(password)


def _mask_known(text: str, mask: str) -> str:
    for secret in sorted(_KNOWN_PASSWORDS, key=len, reverse=True):  # the longest first: one may contain another
        text = text.replace(secret, mask)
    return text


# a URL's query parameters (?api_key=..., &token=...): a value is masked when its parameter's name says it is secret
_URL_WITH_QUERY = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s?#]*\?[^\s#]+")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&])(?P<name>[^\s=&#?]+)=(?P<value>[^\s&#]+)")


def _mask_query_secrets(url: str, mask: str) -> str:
    def params(u: re.Match[str]) -> str:
        return _QUERY_PARAM.sub(
            lambda m: f"{m.group('sep')}{m.group('name')}={mask}" if is_secret_key(m.group("name")) else m.group(0),
            u.group(0),
        )

    return _URL_WITH_QUERY.sub(params, url)


def mask_url_password(url: str, mask: str = "********") -> str:
    """``url`` (or any text with URLs in it) with the password of each ``scheme://user:password@host`` and the value
    of each query parameter whose name says it is secret (``?api_key=...``) replaced by ``mask``; scheme, user, host,
    path and the rest of the query are kept. Text without such a URL comes back unchanged. A password registered
    with ``register_url_password`` is masked wherever it appears."""
    return _mask_known(_mask_urls(url, mask), mask) if _KNOWN_PASSWORDS else _mask_urls(url, mask)


def _mask_urls(url: str, mask: str) -> str:
    url = _URL_USERINFO.sub(
        lambda m: f"{m.group('scheme')}{m.group('user')}:{mask}@" if m.group("pw") else m.group(0), url
    )
    return _mask_query_secrets(url, mask) if "?" in url else url


# --- all rules -----------------------------------------------------------------------------------------------------


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    pat = re.compile(pattern)
    return lambda text: pat.sub(repl, text)


# (kind, rewrite). Order matters: URL passwords before e-mail addresses ("user:pw@db.example.com" is not an address);
# known key formats before assignments, so "api_key: sk-..." says API_KEY (an assignment skips a value already masked).
_RULES: list[tuple[str, Callable[[str], str]]] = [
    ("SECRET", lambda text: _mask_urls(text, "[REDACTED_SECRET]")),
    ("API_KEY", _sub(r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bAKIA[0-9A-Z]{16}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bnpm_[A-Za-z0-9]{36}\b", "[REDACTED_API_KEY]")),
    ("API_KEY", _sub(r"\bAIza[0-9A-Za-z_\-]{35}\b", "[REDACTED_API_KEY]")),
    ("TOKEN", _sub(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b", "[REDACTED_TOKEN]")),  # JWT
    ("TOKEN", _sub(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-]{16,}", r"\1 [REDACTED_TOKEN]")),
    ("SECRET", _mask_assignments),
    ("EMAIL", _sub(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", "[REDACTED_EMAIL]")),
    # a sentence's full stop may follow; a fourth group of digits makes it a longer number (an order, a card)
    (
        "PHONE",
        _sub(
            # an area code's opening parenthesis is part of the number: "(212) 555-0199" left "(" behind
            r"(?<![\w.])(?<!\d[ \-])\(?\+?\d{1,3}[\s.\-]?\(?\d{2,4}\)?[\s.\-]\d{3,4}[\s.\-]\d{3,4}(?!\w|\.\d|[ \-]\d)",
            "[REDACTED_PHONE]",
        ),
    ),
]


# --- personal data a checksum confirms, and the key formats detect-secrets knows --------------------------------


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    moved = s[4:] + s[:4]
    return 15 <= len(s) <= 34 and int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _checked(pattern: str, ok: Callable[[str], bool], marker: str) -> Callable[[str], str]:
    """Replace matches of ``pattern`` that pass ``ok`` (a checksum: a card number, an IBAN), so that order numbers and
    version strings of the same shape stay."""
    pat = re.compile(pattern)
    return lambda text: pat.sub(lambda m: marker if ok(m.group(0)) else m.group(0), text)


def _card_ok(match: str) -> bool:
    digits = re.sub(r"[ \-]", "", match)
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


# a run long enough to be a key: detect-secrets (below) only looks at lines that hold one
_CANDIDATE = re.compile(r"[A-Za-z0-9_\-+/=]{20,}")


def _detect_secrets(text: str) -> str:
    """Key formats of the providers detect-secrets knows (Stripe, Twilio, SendGrid, Slack, npm, PyPI, GitLab, Azure,
    Discord, Telegram, Mailchimp...), masked where they appear. Its entropy plugins are left out (they
    flag ordinary long words) and so is its keyword plugin (the assignment rule above covers it). Without the package
    this layer is skipped; the rules above still run."""
    if not _CANDIDATE.search(text):
        return text
    plugins = _secret_plugins()
    if not plugins:
        return text
    out = []
    for line in text.split("\n"):
        if _CANDIDATE.search(line):
            for plugin in plugins:
                for found in plugin.analyze_line(filename="source.txt", line=line, line_number=1):
                    value = found.secret_value
                    if value and len(value) >= 8 and value in line:  # some plugins report a prefix, not the key
                        line = line.replace(value, "[REDACTED_API_KEY]")
        out.append(line)
    return "\n".join(out)


_PLUGINS: list | None = None


def _secret_plugins() -> list:
    global _PLUGINS
    if _PLUGINS is None:
        try:
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        except ImportError:  # optional: the regex rules still run
            _PLUGINS = []
        else:
            # URL passwords: mask_url_password; PEM blocks: the PRIVATE_KEY rule (whole block, not its header)
            skip = ("Entropy", "Keyword", "Public IP", "Basic Auth", "Private Key")
            _PLUGINS = [
                cls() for kind, cls in get_mapping_from_secret_type_to_class().items() if not kind.startswith(skip)
            ]
    return _PLUGINS


_PEM = r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|[\s\S]*$)"
_PEM = r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|[\s\S]*$)"
_CHECKED_PERSONAL = [
    ("CREDIT_CARD", _checked(r"(?<![\w.\-])\d(?:[ \-]?\d){12,18}(?![\w.\-]*\d)", _card_ok, "[REDACTED_CREDIT_CARD]")),
    ("IBAN", _checked(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", _iban_ok, "[REDACTED_IBAN]")),
    # a US social security number as written (never area 000, 666 or 9xx, group 00, serial 0000)
    ("SSN", _sub(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b", "[REDACTED_SSN]")),
]
# the whole PEM block first; detect-secrets' formats right after URL passwords (before the API_KEY rules above,
# which would take part of a longer key); checksummed numbers before PHONE, which would take their digit groups
_phone = next(i for i, (kind, _) in enumerate(_RULES) if kind == "PHONE")
_RULES[:] = (
    [("PRIVATE_KEY", _sub(_PEM, "[REDACTED_PRIVATE_KEY]")), _RULES[0], ("API_KEY", _detect_secrets)]
    + _RULES[1:_phone]
    + _CHECKED_PERSONAL
    + _RULES[_phone:]
)

PERSONAL = frozenset({"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN"})
KINDS = tuple(dict.fromkeys(kind for kind, _ in _RULES))


def _apply(text: str, skip: frozenset[str] = frozenset()) -> tuple[str, set[str]]:
    found = set()
    for kind, rewrite in _RULES:
        if kind not in skip:
            new = rewrite(text)
            if new != text:
                found.add(kind)
                text = new
    return text, found


def count_sensitive(text: str) -> tuple[str, dict[str, int]]:
    """``text`` redacted, and how many values of each kind were replaced (values themselves are never returned)."""
    counts: dict[str, int] = {}
    for kind, rewrite in _RULES:
        new = rewrite(text)
        if new != text:
            # each replacement leaves one marker; a rule that rewrote without a new marker still counts once
            counts[kind] = counts.get(kind, 0) + max(new.count("[REDACTED_") - text.count("[REDACTED_"), 1)
            text = new
    return text, counts


def find_sensitive(text: str) -> list[str]:
    """Kinds of sensitive data found in ``text`` (e.g. ["API_KEY", "EMAIL"]), each once, as redaction replaces it."""
    return sorted(_apply(text)[1])


def redact(text: str) -> str:
    """Replace secrets and personal data with ``[REDACTED_<KIND>]``."""
    return _apply(text)[0]


def redact_secrets(text: str, known: str | None = None) -> str:
    """Only secrets (keys, tokens, passwords), for messages and logs; personal data is left alone. ``known``: a
    secret this process holds (the configured API key), masked wherever it appears, whatever its format: a server
    may echo the key it was sent ("Incorrect API key provided: ...") in a shape no rule recognises."""
    if known and len(known) >= 4:
        text = text.replace(known, "[REDACTED_API_KEY]")
    text = _mask_known(text, "[REDACTED_SECRET]")
    return _apply(text, skip=PERSONAL)[0]
