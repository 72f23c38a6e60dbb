"""Redaction: the secret forms that reach answers, and what must stay.

The forms: config snippets, env variables, connection URLs.
"""

from __future__ import annotations

import pytest

from llmops_cli.core.redaction import find_sensitive, is_secret_key, mask_url_password, redact, redact_secrets


@pytest.mark.parametrize(
    "text, secret, kept",
    [
        ("smtp_password = hunter2secret", "hunter2secret", "smtp_password = "),
        ("export AIRFLOW__SMTP__SMTP_PASSWORD=hunter2secret", "hunter2secret", "AIRFLOW__SMTP__SMTP_PASSWORD="),
        ("db_passwd: s3cr3tpw", "s3cr3tpw", "db_passwd: "),
        (
            "fernet_key = 8Wk1ZcpQ1yXc0g5vYb4HnA5fSg0bJp2rXo9Qw3eTz1M=",
            "8Wk1ZcpQ1yXc0g5vYb4HnA5fSg0bJp2rXo9Qw3eTz1M=",
            "fernet_key = ",
        ),
        ("AIRFLOW__CORE__FERNET_KEY=abcdefghijklmnop", "abcdefghijklmnop", "AIRFLOW__CORE__FERNET_KEY="),
        ('{"api_key": "live-1234567890"}', "live-1234567890", '"api_key": "'),
        ("client_secret: abcd1234efgh", "abcd1234efgh", "client_secret: "),
        ("GITHUB_TOKEN=abcd1234efgh5678", "abcd1234efgh5678", "GITHUB_TOKEN="),
        ("dbPassword='correct horse battery'", "correct horse battery", "dbPassword='"),
        ("private_key: MIIEvQIBADANBg", "MIIEvQIBADANBg", "private_key: "),
        ("--db-pwd=letmein1", "letmein1", "--db-pwd="),
    ],
)
def test_values_of_secret_keys_are_masked_and_the_key_stays(text, secret, kept):
    out = redact(text)
    assert secret not in out and "[REDACTED_SECRET]" in out and kept in out
    assert find_sensitive(text) == ["SECRET"]


@pytest.mark.parametrize(
    "text, secret, kept",
    [
        ("postgres://user:pw@db/x", ":pw@", "postgres://user:[REDACTED_SECRET]@db/x"),
        (
            "sql_alchemy_conn = postgresql+psycopg2://airflow:airflow123@localhost:5432/airflow",
            "airflow123",
            "postgresql+psycopg2://airflow:[REDACTED_SECRET]@localhost:5432/airflow",
        ),
        ("broker: redis://:s3cret@redis:6379/0", "s3cret", "redis://:[REDACTED_SECRET]@redis:6379/0"),
        ("Open http://admin:S3cret@host to log in.", "S3cret", "http://admin:[REDACTED_SECRET]@host to log in."),
        ("amqp://guest:p@ss@rabbit/vhost", "p@ss", "amqp://guest:[REDACTED_SECRET]@rabbit/vhost"),
    ],
)
def test_url_passwords_are_masked_keeping_user_and_host(text, secret, kept):
    out = redact(text)
    assert secret not in out and kept in out
    assert "SECRET" in find_sensitive(text) and "EMAIL" not in find_sensitive(text)


def test_mask_url_password_for_display():
    assert (
        mask_url_password("http://admin:S3cret@airflow.example.com:8080/api")
        == "http://admin:********@airflow.example.com:8080/api"
    )
    assert mask_url_password("postgres://user:pw@db/x", mask="***") == "postgres://user:***@db/x"
    # a key in the query string (an Azure-style or proxy endpoint) is a secret too; other parameters stay
    assert (
        mask_url_password("http://127.0.0.1:9/v1?api-version=2&api_key=hunter2x&token=t1&sslmode=require")
        == "http://127.0.0.1:9/v1?api-version=2&api_key=********&token=********&sslmode=require"
    )
    # nothing to hide: unchanged
    for url in (
        "http://localhost:8080",
        "https://user@host/x",
        "ssh://git@github.com/org/repo",
        "redis://user:@host",
        "https://h/x?key=1&max_tokens=5&sslmode=require",
        "",
    ):
        assert mask_url_password(url) == url


@pytest.mark.parametrize(
    "text",
    [
        "Set the password in the connection's extra field, then restart the scheduler.",
        "Tokens are counted per request; max_tokens: 100000 caps the reply.",
        "Use a secrets backend: secrets_backend = airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "The tokenizer: bert-base-uncased splits words into word-pieces.",
        "password: ${DB_PASSWORD} reads it from the environment; api_key: <your key>; token = {{ var.value.token }}",
        "Remember: passwords must be rotated every 90 days.",
        "cd $PWD and run PWD=/work/main make test",
        "Visit https://airflow.apache.org/docs/ or http://localhost:8080/home for more.",
        "The ratio is 3:4, see section 2.1 (key: value pairs are YAML).",
        "input_cost_per_token: 0.000002 and max_token: 4096 are prices and limits, not secrets",
        "api_key: null  # prefer the environment; password: None; token: ~",
        'Placeholders: `smtp_password = ...`, `"api_key": "..."`, `fernet_key = …`',
    ],
)
def test_ordinary_prose_and_config_is_left_alone(text):
    assert redact(text) == text and find_sensitive(text) == []


def test_known_key_formats_keep_their_kind_inside_an_assignment():
    text = "api_key: sk-proj-abcdefghijklmnop1234"
    assert redact(text) == "api_key: [REDACTED_API_KEY]" and find_sensitive(text) == ["API_KEY"]


def test_redact_secrets_leaves_personal_data_but_masks_passwords():
    out = redact_secrets("mail ops@example.com, smtp_password = hunter2secret")
    assert "ops@example.com" in out and "hunter2secret" not in out


@pytest.mark.parametrize(
    "key, secret",
    [
        ("smtp_password", True),
        ("AIRFLOW__SMTP__SMTP_PASSWORD", True),
        ("db_passwd", True),
        ("pwd", True),
        ("fernet_key", True),
        ("privateKey", True),
        ("access_token", True),
        ("authtoken", True),
        ("client_secret", True),
        ("apikey", True),
        ("max_tokens", False),
        ("tokenizer", False),
        ("input_cost_per_token", False),
        ("max_token", False),
        ("secrets_backend", False),
        ("key", False),
        ("PWD", False),
        ("password_policy_url", True),
    ],
)
def test_secret_key_names(key, secret):
    assert is_secret_key(key) is secret


def test_a_url_password_with_a_slash_or_one_this_process_was_configured_with_is_never_shown(monkeypatch):
    from llmops_cli.core import redaction

    monkeypatch.setattr(redaction, "_KNOWN_PASSWORDS", set())
    # an unencoded "/" (a base64 password) ended the password: the part after it was shown in full
    assert mask_url_password("postgresql://u:ab/cd+ef@db:5432/x") == "postgresql://u:********@db:5432/x"
    assert mask_url_password("http://admin:SEKa/bSEK@127.0.0.1:18000") == "http://admin:********@127.0.0.1:18000"
    # a driver echoes a malformed password without its URL; a password with a space is not seen inside its URL
    redaction.register_url_password("postgresql://u:pa ss-word@db/x")
    redaction.register_url_password("postgresql://u:p%q-secret@db/x")
    redaction.register_url_password("postgresql://u:p/w@db/x")  # too short to mask as a word: the URL rule only
    msg = 'spaces found in "pa ss-word"; invalid percent-encoded token: "p%q-secret" at postgresql://u:pa ss-word@db'
    for out in (mask_url_password(msg), redact_secrets(msg)):
        assert "pa ss" not in out and "p%q" not in out, out
    assert mask_url_password("a p/w in a sentence") == "a p/w in a sentence"
    # a well-formed password is masked by the URL rule only: "postgres" as a password must not mangle every message
    redaction.register_url_password("postgresql://postgres:postgres@db/x")
    redaction.register_url_password("postgresql://postgres:s3cret%21x@db/x")
    shown = "PostgreSQL store at postgresql://postgres:postgres@db/x is not reachable"
    assert mask_url_password(shown) == "PostgreSQL store at postgresql://postgres:********@db/x is not reachable"
    # documents (promoted answers, ingest's privacy) are not rewritten by what this process was configured with
    assert redact("the word pa ss-word stays") == "the word pa ss-word stays"
