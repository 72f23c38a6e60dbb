"""Structured output: a JSON schema each answer must satisfy (checked with jsonschema)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from llmops_cli.errors import InputError

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


class AnswerInvalid(Exception):
    """The answer is not JSON, or not valid against the schema."""


def load_schema(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"schema file {p} does not exist", hint="pass a JSON schema file to --schema")
    try:
        schema = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"schema file {p} is not valid JSON: {e}") from None
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise InputError(f"schema file {p} is not a valid JSON schema: {e.message}") from None
    return schema


def response_format_for(schema: dict[str, Any], name: str = "row") -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for this schema (litellm drops it for providers without support)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


class SchemaValidator:
    def __init__(self, schema: dict[str, Any]):
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        self._validator = cls(schema)

    def parse(self, text: str) -> Any:
        """The answer as JSON (a ```json fence is tolerated); raises AnswerInvalid."""
        m = _FENCE.match(text)
        raw = m.group(1) if m else text
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise AnswerInvalid(f"answer is not JSON ({e.msg} at char {e.pos})") from None
        err = next(iter(sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))), None)
        if err is not None:
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            raise AnswerInvalid(f"answer does not match the schema at {where}: {err.message[:200]}")
        return value
