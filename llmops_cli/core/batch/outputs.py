"""The final output: results joined to the input rows by id, and a separate errors file.

Plain rows keep their columns and gain ``llmops_*`` columns (id, status, response, parsed, error, tokens,
cost, cached). OpenAI Batch request rows produce lines in the OpenAI Batch *output* format (``custom_id``,
``response.status_code``, ``response.body`` = a chat.completion), errors in the same format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from llmops_cli.core.batch.inputs import read_rows, write_rows
from llmops_cli.core.batch.requests import BatchRequest

RESULT_COLUMNS = (
    "llmops_id",
    "llmops_status",
    "llmops_response",
    "llmops_parsed",
    "llmops_error",
    "llmops_input_tokens",
    "llmops_output_tokens",
    "llmops_cost_usd",
    "llmops_cached",
)


def not_run_record(req: BatchRequest) -> dict[str, Any]:
    return {
        "id": req.id,
        "request_hash": req.request_hash,
        "status": "error",
        "error": "not run (its shard did not finish)",
        "error_kind": "not run",
        "error_status": None,
        "attempts": 0,
        "cost": None,
        "cached": False,
    }


def write_outputs(
    output: Path,
    errors_path: Path,
    rows: list[dict[str, Any]],
    requests: list[BatchRequest],
    records: dict[str, dict[str, Any]],
    *,
    openai_format: bool,
    with_parsed: bool,
    results: bool = True,
) -> tuple[int, int]:
    """Write both files (only the errors file with ``results=False``), each atomically; returns (rows answered,
    rows in error). ``records`` has one record per request id."""
    by_row: dict[int, BatchRequest] = {i: req for req in requests for i in req.rows}
    out_rows: list[dict[str, Any]] = []
    err_rows: list[dict[str, Any]] = []
    ok_n = err_n = 0
    for i, row in enumerate(rows):
        req = by_row.get(i)
        if req is None:  # outside --limit
            continue
        rec = records.get(req.id) or not_run_record(req)
        ok = rec.get("status") == "ok"
        ok_n += ok
        err_n += not ok
        if openai_format:
            line = _openai_line(req, rec)
            (out_rows if ok else err_rows).append(line)
            continue
        res = {
            "llmops_id": req.id,
            "llmops_status": rec.get("status"),
            "llmops_response": rec.get("response"),
            "llmops_error": rec.get("error"),
            "llmops_input_tokens": rec.get("input_tokens") or 0,
            "llmops_output_tokens": rec.get("output_tokens") or 0,
            "llmops_cost_usd": rec.get("cost"),
            "llmops_cached": bool(rec.get("cached")),
        }
        if with_parsed:
            res["llmops_parsed"] = rec.get("parsed")
        out_rows.append({**row, **res})
        if not ok:
            err_rows.append(
                {
                    "llmops_id": req.id,
                    "row": i + 1,
                    "error": rec.get("error"),
                    "status": rec.get("error_status"),
                    "kind": rec.get("error_kind"),
                    "attempts": rec.get("attempts"),
                    "response": rec.get("response"),
                    "input": row,
                }
            )
    if results:
        write_rows(output, out_rows)
    write_rows(errors_path, err_rows)
    return ok_n, err_n


def has_answers(output: Path, *, openai_format: bool) -> bool:
    """Whether ``output`` is a results file holding at least one answered row (one a failed run must not replace)."""
    if not output.is_file():
        return False
    try:
        rows = read_rows(output)
    except Exception:  # noqa: BLE001 - unreadable: not a results file with answers
        return False
    if openai_format:
        return any(isinstance(r.get("response"), dict) and r["response"].get("status_code") == 200 for r in rows)
    return any(r.get("llmops_status") == "ok" for r in rows)


def _openai_line(req: BatchRequest, rec: dict[str, Any]) -> dict[str, Any]:
    rid = "batch_req_" + hashlib.sha256(req.request_hash.encode()).hexdigest()[:24]
    if rec.get("status") == "ok":
        tin, tout = rec.get("input_tokens") or 0, rec.get("output_tokens") or 0
        body = {
            "id": "chatcmpl-" + req.request_hash[:24],
            "object": "chat.completion",
            "model": req.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": rec.get("response")}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
        }
        return {
            "id": rid,
            "custom_id": req.custom_id,
            "response": {"status_code": 200, "request_id": rid, "body": body},
            "error": None,
        }
    status = rec.get("error_status")
    response = (
        {"status_code": status, "request_id": rid, "body": {"error": {"message": rec.get("error")}}} if status else None
    )
    return {
        "id": rid,
        "custom_id": req.custom_id,
        "response": response,
        "error": {"code": rec.get("error_kind") or "error", "message": rec.get("error")},
    }
