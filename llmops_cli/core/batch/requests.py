"""Turning input rows into chat requests with stable ids.

Two kinds of input:
- plain rows, rendered through a prompt template (``{column}`` placeholders, ``{{``/``}}`` for literal braces)
  with a user part and an optional system part;
- rows in the OpenAI Batch API request format (``custom_id``, ``body`` with ``messages``), sent as they are.

A request's id is its ``custom_id``, the value of ``--id-column``, or a hash of model, messages and parameters
(so identical rows are one request). ``request_hash`` always covers model + messages + parameters: a checkpoint
record only counts for a request whose hash it carries, so editing the template re-runs the rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.errors import InputError

Message = dict[str, Any]

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# parameters that only steer transport, never the answer: kept out of ids and cache keys
TRANSPORT_PARAMS = {"timeout", "num_retries", "max_retries", "stream", "stream_options", "api_base", "api_key", "user"}


@dataclass(frozen=True)
class Template:
    user: str
    system: str | None = None

    def placeholders(self) -> set[str]:
        names: set[str] = set()
        for part in (self.user, self.system or ""):
            names.update(m.group(1) for m in _PLACEHOLDER.finditer(part) if m.group(1))
        return names

    def render(self, row: dict[str, Any], row_number: int) -> list[Message]:
        msgs: list[Message] = []
        if self.system:
            msgs.append({"role": "system", "content": _fill(self.system, row, row_number)})
        msgs.append({"role": "user", "content": _fill(self.user, row, row_number)})
        return msgs


def _fill(text: str, row: dict[str, Any], row_number: int) -> str:
    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = m.group(1)
        if name not in row:
            cols = ", ".join(list(row)[:20])
            raise InputError(
                f"row {row_number} has no column {name!r} used by the template (columns: {cols})",
                hint="fix the placeholder or the input file; write {{ and }} for literal braces",
            )
        v = row[name]
        if v is None:
            return ""
        if isinstance(v, (dict, list)):
            return json.dumps(v, ensure_ascii=False, default=str)
        return str(v)

    return _PLACEHOLDER.sub(sub, text)


def load_template(template_path: str | None = None, prompt: str | None = None, system: str | None = None) -> Template:
    """From a prompt file (``--prompt FILE``) or the prompt's text (``--prompt-text``); see ``load_batch_prompt``."""
    return load_batch_prompt(template_path, prompt, system)[0]


def load_batch_prompt(
    template_path: str | None = None, prompt: str | None = None, system: str | None = None
) -> tuple[Template, dict[str, Any]]:
    """The row template and what a run records about it (``name``, ``sha256``, ``source``), from a prompt file or
    the prompt's text. A file is plain text (the user part), a prompt file as ``eval run --prompt`` reads them
    (front matter, ``[system]``/``[user]`` sections; ``kind: batch``), or YAML/JSON with ``user`` and ``system``.
    The hash is core.prompts' (kind, system and user templates), so a file and the same text hash alike."""
    from llmops_cli.core.prompts import BATCH, PromptTemplate

    if template_path and prompt:
        raise InputError("--prompt FILE and --prompt-text are mutually exclusive", hint="pass one of them")
    if prompt:
        template, name, source = Template(user=prompt, system=system), "inline", "--prompt-text"
    elif not template_path:
        raise InputError(
            "no prompt: the input rows are not in the OpenAI Batch format (custom_id, body)",
            hint="pass --prompt FILE or --prompt-text 'Summarise: {text}'",
        )
    else:
        template, name = _template_file(Path(template_path), system)
        source = template_path
    sha = PromptTemplate(name=name, kind=BATCH, system=template.system or "", user=template.user).sha256
    return template, {"name": name, "sha256": sha, "source": source}


def _template_file(p: Path, system: str | None) -> tuple[Template, str]:
    from llmops_cli.core.prompts import BATCH, parse_prompt

    if not p.is_file():
        raise InputError(f"prompt file {p} does not exist", hint="pass an existing file to --prompt")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"prompt file {p} cannot be read: {e}", hint="check the path and that it is UTF-8") from None
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"template file {p} is not valid YAML/JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("user"), str):
            raise InputError(
                f"template file {p} must be a mapping with a 'user' text (and optionally 'system')",
                hint="e.g. user: 'Classify: {text}'",
            )
        unknown = set(data) - {"user", "system"}
        if unknown:
            raise InputError(f"template file {p} has unknown keys {sorted(unknown)}; allowed: user, system")
        return Template(user=data["user"], system=data.get("system") or system), p.stem
    if text.startswith("---") or _SECTION_LINE.search(text):
        # a prompt file: its name from the front matter, its sections; --system fills a missing [system]
        pt = parse_prompt(text, name=p.stem, source=str(p), kind=BATCH)
        return Template(user=pt.user, system=pt.system or system), pt.name
    return Template(user=text, system=system), p.stem  # plain text, sent as it is (its hashes are unchanged)


_SECTION_LINE = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass
class BatchRequest:
    id: str
    model: str
    messages: list[Message]
    params: dict[str, Any]
    request_hash: str
    rows: list[int] = field(default_factory=list)  # indexes of the input rows answered by this request
    custom_id: str | None = None

    def estimated_input_tokens(self) -> int:
        chars = sum(
            len(m.get("content") or "") if isinstance(m.get("content"), str) else len(json.dumps(m.get("content")))
            for m in self.messages
        )
        return max(1, chars // 4) + 4 * len(self.messages)

    def estimated_tokens(self) -> int:
        """Input + the largest possible output: what providers count against a tokens-per-minute limit."""
        return self.estimated_input_tokens() + int(
            self.params.get("max_tokens") or self.params.get("max_completion_tokens") or 256
        )


def request_hash(model: str, messages: list[Message], params: dict[str, Any]) -> str:
    # imported here: the cache module brings the SQLite state layer, and `llmops --help` imports this module
    from llmops_cli.core.llm_cache import cache_key

    return cache_key(model, messages, params)


def is_openai_batch_rows(rows: list[dict[str, Any]]) -> bool:
    """True when rows are OpenAI Batch API requests (every row has custom_id and a body)."""
    return all(isinstance(r.get("body"), dict) and "custom_id" in r for r in rows)


def build_requests(
    rows: list[dict[str, Any]],
    *,
    model: str | None,
    params: dict[str, Any],
    template: Template | None = None,
    id_column: str | None = None,
) -> list[BatchRequest]:
    """One request per distinct id, each listing the input rows it answers; ``params`` are the run's defaults."""
    by_id: dict[str, BatchRequest] = {}
    openai_rows = template is None
    if template is None and not is_openai_batch_rows(rows):
        load_template(None, None)  # raises the "no prompt" error
    if template is not None:
        _check_columns(template, rows, id_column)
    for i, row in enumerate(rows):
        custom_id: str | None = None
        if openai_rows:
            body = row["body"]
            url = row.get("url", "/v1/chat/completions")
            if url not in ("/v1/chat/completions", "/chat/completions"):
                raise InputError(
                    f"row {i + 1} ({row.get('custom_id')}): url {url!r} is not supported",
                    hint="only /v1/chat/completions requests can be run",
                )
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise InputError(f"row {i + 1} ({row.get('custom_id')}): body.messages must be a non-empty list")
            row_model = model or body.get("model")
            row_params = {
                **params,
                **{k: v for k, v in body.items() if k not in ("model", "messages") and k not in TRANSPORT_PARAMS},
            }
            custom_id = _row_id(row.get("custom_id"), i, "custom_id")
        else:
            messages = template.render(row, i + 1)  # type: ignore[union-attr]
            row_model = model
            row_params = dict(params)
            if id_column:
                custom_id = _row_id(row.get(id_column), i, f"--id-column {id_column!r} value")
        if not row_model:
            raise InputError("no model: pass --model or set llm.model", hint="e.g. --model openai/gpt-4o-mini")
        h = request_hash(row_model, messages, row_params)
        rid = custom_id if custom_id is not None else h[:20]
        existing = by_id.get(rid)
        if existing is not None:
            if custom_id is not None:
                what = "custom_id" if openai_rows else f"--id-column {id_column!r} value"
                raise InputError(
                    f"rows {existing.rows[0] + 1} and {i + 1} share the {what} {rid!r}", hint="ids must be unique"
                )
            existing.rows.append(i)
            continue
        by_id[rid] = BatchRequest(
            id=rid, model=row_model, messages=messages, params=row_params, request_hash=h, rows=[i], custom_id=custom_id
        )
    return list(by_id.values())


def _row_id(value: Any, i: int, what: str) -> str:
    """A row's own id; a row without one (missing, null or empty) is an error: it became the id 'None' (two such
    rows "shared" it), or a KeyError for a row that lacks the column."""
    if value is None or not str(value).strip():
        raise InputError(f"row {i + 1} has no {what}", hint="every row needs its own id (unique, not empty)")
    return str(value)


def _check_columns(template: Template, rows: list[dict[str, Any]], id_column: str | None) -> None:
    cols = set(rows[0])
    missing = sorted(template.placeholders() - cols)
    if missing:
        raise InputError(
            f"the template uses {', '.join(repr(m) for m in missing)} but the input has no such column "
            f"(columns: {', '.join(sorted(cols)[:20])})",
            hint="fix the placeholders or the input file",
        )
    if id_column and id_column not in cols:
        raise InputError(
            f"--id-column {id_column!r} is not a column of the input (columns: {', '.join(sorted(cols)[:20])})"
        )


def shard_of(request_id: str, num_shards: int) -> int:
    """The shard a request belongs to: a hash of its id, stable across runs and machines."""
    import hashlib

    return int(hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:12], 16) % num_shards
