"""Traces kept locally: the spans of every traced command, in the state database (by default the SQLite file
``<data_dir>/traces.sqlite``; with ``state.url`` the shared PostgreSQL, so a trace made on an Airflow worker is read
from a laptop). ``llmops trace show ANSWER_ID|TRACE_ID`` reads them back as a tree.

A span row keeps what the OpenTelemetry span had: ids, parent, name, start and end (ns since the epoch), status,
attributes and events (JSON). ``answer_id`` is lifted out of the attributes (``llmops.answer_id``) so that a trace is
found from the answer it produced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.core.state import Migrations, StateDB, StateError, StateStore
from llmops_cli.errors import NotFoundError, StoreError

TRACES_FILE = "traces.sqlite"
ANSWER_ID_ATTRIBUTE = "llmops.answer_id"

migrations = Migrations("traces")
migrations.sql(
    "m001_spans",
    """
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unset',
    attributes TEXT NOT NULL DEFAULT '{}',
    events TEXT NOT NULL DEFAULT '[]',
    answer_id TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_answer ON spans(answer_id);
CREATE INDEX spans_start ON spans(start_ns)
""",
)


@dataclass
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status: str = "unset"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "start_ns": self.start_ns,
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "attributes": self.attributes,
            "events": self.events,
        }


def default_traces_path(data_path: Path) -> Path:
    return Path(data_path) / TRACES_FILE


class TraceStore(StateStore):
    """``TraceStore(path)``: a SQLite file; ``TraceStore(db)``: the shared state database."""

    def __init__(self, target: str | Path | StateDB):
        self._open(
            target,
            migrations,
            error=StoreError,
            cannot_open="the trace store {where} cannot be opened",
            file_hint=_HINT,
            db_hint=_HINT,
        )

    def add(self, spans: Sequence[SpanRecord]) -> None:
        rows = [
            (
                s.trace_id,
                s.span_id,
                s.parent_id,
                s.name,
                int(s.start_ns),
                int(s.end_ns),
                s.status,
                json.dumps(s.attributes, ensure_ascii=False, default=str),
                json.dumps(s.events, ensure_ascii=False, default=str),
                s.attributes.get(ANSWER_ID_ATTRIBUTE),
            )
            for s in spans
        ]
        if not rows:
            return
        try:
            with self._db.transaction():
                self._db.executemany(
                    "INSERT INTO spans (trace_id, span_id, parent_id, name, start_ns, end_ns, status, attributes, "
                    "events, answer_id) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (trace_id, span_id) DO NOTHING",
                    rows,
                )
        except StateError as e:
            raise StoreError(f"writing spans to {self._db.label} failed: {e.message}", hint=_HINT) from None

    def trace(self, id_or_answer: str) -> list[SpanRecord]:
        """The spans of one trace, oldest first: by trace id (or a unique start of it, 6+ characters), or by the id
        (or unique start) of the answer it produced."""
        key = id_or_answer.strip().lower()
        rows = self._db.query("SELECT DISTINCT trace_id FROM spans WHERE answer_id = ?", (key,))
        if not rows and len(key) >= 4:
            rows = self._db.query("SELECT DISTINCT trace_id FROM spans WHERE answer_id LIKE ?", (key + "%",))
        if not rows and len(key) >= 6:
            rows = self._db.query("SELECT DISTINCT trace_id FROM spans WHERE trace_id LIKE ?", (key + "%",))
        ids = sorted({r[0] for r in rows})
        if not ids:
            raise NotFoundError(
                f"no trace for {id_or_answer!r}",
                hint="`llmops trace list` shows recent traces; commands are traced while tracing.enabled is true",
            )
        if len(ids) > 1:
            raise NotFoundError(
                f"{id_or_answer!r} matches {len(ids)} traces", hint="give more characters of the trace id"
            )
        rows = self._db.query("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, end_ns DESC", (ids[0],))
        return [_span(r) for r in rows]

    def recent(self, limit: int = 20) -> list[SpanRecord]:
        """The root spans of the most recent traces, newest first."""
        rows = self._db.query("SELECT * FROM spans WHERE parent_id IS NULL ORDER BY start_ns DESC LIMIT ?", (limit,))
        return [_span(r) for r in rows]


def _span(r: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=r["trace_id"],
        span_id=r["span_id"],
        parent_id=r["parent_id"],
        name=r["name"],
        start_ns=int(r["start_ns"]),
        end_ns=int(r["end_ns"]),
        status=r["status"],
        attributes=json.loads(r["attributes"]),
        events=json.loads(r["events"]),
    )


_HINT = "check data_dir (LLMOPS_DATA_DIR) or state.url (LLMOPS_STATE_URL); tracing.enabled: false turns tracing off"
