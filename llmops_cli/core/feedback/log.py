"""The answer log: every answer (and every recorded LLM call), with ratings, reviews and promotions.

It lives in the state database: by default one SQLite file, ``<data_dir>/llmops.sqlite``; with ``state.url`` the
shared PostgreSQL. The schema changes only by the named migrations below (``core/state/migrations.py``), applied
in one transaction under a lock when the log is opened, so several processes (the CLI, mapped Airflow tasks,
other machines) can open it at once and write concurrently.

Answer ids are 12 hex characters (random, so two logs never hand out the same id for different answers, which
matters because promoted chunks in a shared store carry the id); any unique prefix of 4 or more resolves.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from llmops_cli.core.state import MEMORY, Migrations, StateDB, StateError, StateStore, applied
from llmops_cli.errors import LlmopsError, NotFoundError, UsageError

LOG_FILE = "llmops.sqlite"
MIN_PREFIX = 4

migrations = Migrations(
    "answer_log",
    # the numbered versions of the answer log's own record (``schema_migrations``) before the shared one
    legacy={
        1: "m001_answers_and_ratings",
        2: "m002_reviews",
        3: "m003_promotions_and_the_semantic_cache",
        4: "m004_answers_served_from_the_cache",
        5: "m005_who_rated",
    },
)


@migrations
def m001_answers_and_ratings(db: StateDB) -> None:
    db.script(
        """CREATE TABLE answers (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        kind TEXT NOT NULL,                      -- ask | eval | batch | ...
        collection TEXT,
        question TEXT NOT NULL,                  -- for eval/batch calls: the prompt's last user message
        rewordings TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
        chunks TEXT NOT NULL DEFAULT '[]',       -- JSON list of {id, source, heading}
        answer TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL,
        latency_s REAL NOT NULL DEFAULT 0,
        config_hash TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX answers_created ON answers(created_at);
    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        answer_id TEXT NOT NULL REFERENCES answers(id),
        rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
        comment TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX ratings_answer ON ratings(answer_id)"""
    )
    if not db.dialect.implicit_rowid:
        # the insertion order that breaks ties of created_at ("ORDER BY created_at, rowid"), as SQLite's rowid does
        db.execute("ALTER TABLE answers ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY")


@migrations
def m002_reviews(db: StateDB) -> None:
    db.script(
        """CREATE TABLE reviews (
        answer_id TEXT PRIMARY KEY REFERENCES answers(id),
        status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
        helpfulness REAL,                        -- 0..1
        relevance REAL,                          -- 0..1
        public INTEGER,                          -- 0/1
        reasons TEXT NOT NULL DEFAULT '{}',      -- JSON {helpfulness, relevance, public}
        redactions TEXT NOT NULL DEFAULT '[]',   -- kinds of sensitive data found (and redacted)
        judge_model TEXT,
        error TEXT,
        reviewed_at REAL NOT NULL
    )"""
    )


@migrations
def m003_promotions_and_the_semantic_cache(db: StateDB) -> None:
    db.script(
        """CREATE TABLE promotions (
        answer_id TEXT PRIMARY KEY REFERENCES answers(id),
        collection TEXT NOT NULL,
        chunk_id TEXT NOT NULL,
        question TEXT NOT NULL,                  -- redacted, as promoted
        answer_text TEXT NOT NULL,               -- redacted, as promoted and served by the cache
        question_vector BLOB NOT NULL,           -- float32, L2-normalised: the semantic cache key
        embedder TEXT NOT NULL,
        promoted_at REAL NOT NULL,
        removed_at REAL,
        removed_reason TEXT
    );
    CREATE INDEX promotions_active ON promotions(collection, removed_at)"""
    )


@migrations
def m004_answers_served_from_the_cache(db: StateDB) -> None:
    db.script(
        """ALTER TABLE answers ADD COLUMN cached_from TEXT REFERENCES answers(id);
        CREATE INDEX answers_cached_from ON answers(cached_from)"""
    )


# one vote per rater, the latest wins; ratings written before this have no rater (NULL): they count as one
# unknown rater's votes
@migrations
def m005_who_rated(db: StateDB) -> None:
    db.script("ALTER TABLE ratings ADD COLUMN rater TEXT")


MIGRATIONS = migrations.items


class AnswerLogError(LlmopsError):
    """The answer log could not be read or written."""


@dataclass
class Rating:
    rating: int  # +1 up, -1 down
    comment: str | None
    created_at: float
    answer_id: str = ""
    rater: str | None = None  # None: rated before raters were recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "rating": "up" if self.rating > 0 else "down",
            "comment": self.comment,
            "created_at": _iso(self.created_at),
            "answer_id": self.answer_id,
            "rater": self.rater,
        }


def latest_votes(ratings: Iterable[Rating]) -> list[Rating]:
    """Each rater's latest rating (in the order given: oldest first): one vote per rater, a later one replaces theirs.
    Ratings without a rater (older logs) count as one unknown rater."""
    latest: dict[str | None, Rating] = {}
    for r in ratings:
        latest.pop(r.rater, None)  # re-insert: the dict keeps the order of each rater's last vote
        latest[r.rater] = r
    return list(latest.values())


def vote_counts(ratings: Iterable[Rating]) -> dict[str, int]:
    """{"up": n, "down": m} over each rater's latest vote."""
    votes = latest_votes(ratings)
    return {"up": sum(1 for r in votes if r.rating > 0), "down": sum(1 for r in votes if r.rating < 0)}


@dataclass
class Review:
    answer_id: str
    status: str  # ok | error
    helpfulness: float | None = None
    relevance: float | None = None
    public: bool | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    redactions: list[str] = field(default_factory=list)
    judge_model: str | None = None
    error: str | None = None
    reviewed_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "helpfulness": self.helpfulness,
            "relevance": self.relevance,
            "public": self.public,
            "reasons": self.reasons,
            "redactions": self.redactions,
            "judge_model": self.judge_model,
            "error": self.error,
            "reviewed_at": _iso(self.reviewed_at),
        }


@dataclass
class Promotion:
    answer_id: str
    collection: str
    chunk_id: str
    question: str
    answer_text: str
    question_vector: bytes
    embedder: str
    promoted_at: float
    removed_at: float | None = None
    removed_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "chunk_id": self.chunk_id,
            "active": self.active,
            "promoted_at": _iso(self.promoted_at),
            "removed_at": _iso(self.removed_at),
            "removed_reason": self.removed_reason,
        }


@dataclass
class AnswerRecord:
    id: str
    created_at: float
    kind: str
    question: str
    answer: str
    collection: str | None = None
    rewordings: list[str] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    latency_s: float = 0.0
    config_hash: str | None = None
    cached_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": _iso(self.created_at),
            "kind": self.kind,
            "collection": self.collection,
            "question": self.question,
            "rewordings": self.rewordings,
            "chunks": self.chunks,
            "answer": self.answer,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency_s": round(self.latency_s, 3),
            "config_hash": self.config_hash,
            "cached_from": self.cached_from,
            "extra": self.extra,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime

    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def answer_config_hash(settings: Any) -> str:
    """A short fingerprint of the settings that shape an answer (model, retrieval, chunking, embedder); secrets
    and endpoints' credentials left out. Two answers with the same hash came from the same configuration."""
    dump = settings.model_dump(mode="json")
    parts = {
        "llm": {k: v for k, v in dump.get("llm", {}).items() if k != "api_key"},
        "embedder": {k: v for k, v in dump.get("embedder", {}).items() if k != "api_key"},
        "retrieval": dump.get("retrieval"),
        "chunking": dump.get("chunking"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


class AnswerLog(StateStore):
    """The answer log. Thread-safe and multi-process safe (the state database's transactions).

    ``AnswerLog(path)``: a SQLite file; ``AnswerLog(db)``: the shared state database (``StateStore``)."""

    def __init__(self, target: str | Path | StateDB):
        self._open(
            target,
            migrations,
            error=AnswerLogError,
            cannot_open="cannot open the answer log {where}",
            file_hint="check data_dir (LLMOPS_DATA_DIR) and its permissions",
            db_hint="check state.url (LLMOPS_STATE_URL) and the database user's rights",
            schema_name="the answer log",
        )
        self.label = self._db.label

    @classmethod
    def for_data_dir(cls, data_path: str | Path, *, create: bool = True) -> AnswerLog:
        """The log of a data dir. ``create=False`` (read-only commands such as history): where there is no log yet,
        an empty one in memory, so reading leaves no file behind."""
        path = Path(data_path) / LOG_FILE
        if not create and not path.exists():
            return cls(MEMORY)
        return cls(path)

    # --- schema ---
    def schema_version(self) -> int:
        """How many of the answer log's migrations the database has had."""
        return len(applied(self._db, migrations.store))

    def _tx(self, fn):
        try:
            with self._db.transaction() as db:
                return fn(db)
        except StateError as e:
            raise AnswerLogError(f"writing the answer log {self.label} failed: {e.message}") from None

    def _write(self, fn):
        """One statement: atomic on its own (it commits by itself), so no explicit transaction around it; on
        PostgreSQL that saves the BEGIN and COMMIT round trips of every record and rating."""
        try:
            return fn(self._db)
        except StateError as e:
            raise AnswerLogError(f"writing the answer log {self.label} failed: {e.message}") from None

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.query(sql, tuple(args))
        except StateError as e:
            raise AnswerLogError(f"reading the answer log {self.label} failed: {e.message}") from None

    # --- answers ---
    def record(
        self,
        *,
        kind: str,
        question: str,
        answer: str,
        model: str = "",
        collection: str | None = None,
        rewordings: Sequence[str] = (),
        chunks: Sequence[dict[str, Any]] = (),
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float | None = None,
        latency_s: float = 0.0,
        config_hash: str | None = None,
        cached_from: str | None = None,
        extra: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> str:
        """Append one answer; returns its id."""
        answer_id = secrets.token_hex(6)
        row = (
            answer_id,
            created_at or time.time(),
            kind,
            collection,
            question,
            json.dumps(list(rewordings), ensure_ascii=False),
            json.dumps(list(chunks), ensure_ascii=False),
            answer,
            model or "",
            int(input_tokens),
            int(output_tokens),
            cost,
            float(latency_s),
            config_hash,
            cached_from,
            json.dumps(extra or {}, ensure_ascii=False, default=str),
        )
        self._write(
            lambda db: db.execute(
                "INSERT INTO answers (id, created_at, kind, collection, question, rewordings, chunks, answer, model, "
                "input_tokens, output_tokens, cost, latency_s, config_hash, cached_from, extra) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )
        return answer_id

    def resolve(self, id_or_prefix: str) -> str:
        """The full id for an id or a unique prefix (>= 4 characters)."""
        key = id_or_prefix.strip().lower()
        if self._query("SELECT 1 FROM answers WHERE id = ?", (key,)):
            return key
        if len(key) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in key):
            short = len(key) < MIN_PREFIX and all(c in "0123456789abcdef" for c in key)
            raise NotFoundError(
                f"no answer with id {id_or_prefix!r}",
                hint=f"an id prefix needs at least {MIN_PREFIX} characters; list answers with llmops history"
                if short
                else "list answers with llmops history",
            )
        rows = self._query("SELECT id FROM answers WHERE id LIKE ? LIMIT 3", (key + "%",))
        if not rows:
            raise NotFoundError(f"no answer with id {id_or_prefix!r}", hint="list answers with llmops history")
        if len(rows) > 1:
            raise UsageError(
                f"answer id prefix {id_or_prefix!r} is ambiguous ({', '.join(r['id'] for r in rows)}, ...)",
                hint="type more characters of the id",
            )
        return rows[0]["id"]

    def get(self, id_or_prefix: str) -> AnswerRecord:
        answer_id = self.resolve(id_or_prefix)
        return _answer(self._query("SELECT * FROM answers WHERE id = ?", (answer_id,))[0])

    def get_many(self, ids: Iterable[str]) -> list[AnswerRecord]:
        ids = list(ids)
        out: dict[str, AnswerRecord] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for r in self._query(f"SELECT * FROM answers WHERE id IN ({','.join('?' * len(part))})", part):
                out[r["id"]] = _answer(r)
        return [out[i] for i in ids if i in out]

    def recent(self, *, limit: int = 20, kind: str | None = None, collection: str | None = None) -> list[AnswerRecord]:
        """Most recent first."""
        where, args = _filters(kind=kind, collection=collection)
        rows = self._query(
            f"SELECT * FROM answers {where} ORDER BY created_at DESC, rowid DESC LIMIT ?", [*args, limit]
        )
        return [_answer(r) for r in rows]

    def since(
        self, created_after: float | None = None, *, kind: str | None = None, collection: str | None = None
    ) -> list[AnswerRecord]:
        """Every answer created after ``created_after`` (all when None), oldest first (for insights)."""
        where, args = _filters(kind=kind, collection=collection)
        if created_after is not None:
            where = f"{where} {'AND' if where else 'WHERE'} created_at > ?"
            args.append(created_after)
        rows = self._query(f"SELECT * FROM answers {where} ORDER BY created_at, rowid", args)
        return [_answer(r) for r in rows]

    def reviews_of(self, ids: Sequence[str]) -> dict[str, Review]:
        """The judge's reviews of these answers, by answer id (answers not reviewed are absent)."""
        out: dict[str, Review] = {}
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            for r in self._query(f"SELECT * FROM reviews WHERE answer_id IN ({','.join('?' * len(part))})", part):
                out[r["answer_id"]] = _review(r)
        return out

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM answers")[0][0])

    # --- ratings ---
    def rate(self, answer_id: str, rating: int, comment: str | None = None, *, rater: str | None = None) -> None:
        """Add a rating; a rater's later rating replaces their earlier one (``latest_votes``), both stay in the log."""
        if rating not in (-1, 1):
            raise UsageError(f"rating must be up or down, not {rating!r}")
        self._write(
            lambda db: db.execute(
                "INSERT INTO ratings (answer_id, rating, comment, created_at, rater) VALUES (?, ?, ?, ?, ?)",
                (answer_id, rating, comment, time.time(), rater),
            )
        )

    def ratings(self, answer_id: str, *, with_cached_copies: bool = False) -> list[Rating]:
        """Every rating of the answer, oldest first (and, when asked, of the cache-served copies of it: they showed the
        same text); ``latest_votes`` reduces them to one vote per rater."""
        sql = "SELECT * FROM ratings WHERE answer_id = ?"
        args: list[Any] = [answer_id]
        if with_cached_copies:
            sql += " OR answer_id IN (SELECT id FROM answers WHERE cached_from = ?)"
            args.append(answer_id)
        return [_rating(r) for r in self._query(sql + " ORDER BY id", args)]

    # --- reviews ---
    def save_review(self, review: Review) -> None:
        row = (
            review.answer_id,
            review.status,
            review.helpfulness,
            review.relevance,
            None if review.public is None else int(review.public),
            json.dumps(review.reasons, ensure_ascii=False),
            json.dumps(review.redactions),
            review.judge_model,
            review.error,
            review.reviewed_at or time.time(),
        )
        self._write(
            lambda db: db.execute(
                "INSERT INTO reviews (answer_id, status, helpfulness, relevance, public, reasons, redactions, "
                "judge_model, error, reviewed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (answer_id) DO UPDATE SET "
                "status = excluded.status, helpfulness = excluded.helpfulness, relevance = excluded.relevance, "
                "public = excluded.public, reasons = excluded.reasons, redactions = excluded.redactions, "
                "judge_model = excluded.judge_model, error = excluded.error, reviewed_at = excluded.reviewed_at",
                row,
            )
        )

    def review_of(self, answer_id: str) -> Review | None:
        rows = self._query("SELECT * FROM reviews WHERE answer_id = ?", (answer_id,))
        return _review(rows[0]) if rows else None

    def to_review(self, *, limit: int, collection: str | None = None, retry_errors: bool = False) -> list[AnswerRecord]:
        """Answers to questions asked of a collection that have no review yet (oldest first); answers served from the
        cache are copies and are not reviewed."""
        cond = "r.answer_id IS NULL" + (" OR r.status = 'error'" if retry_errors else "")
        args: list[Any] = []
        extra = ""
        if collection:
            extra = " AND a.collection = ?"
            args.append(collection)
        rows = self._query(
            "SELECT a.* FROM answers a LEFT JOIN reviews r ON r.answer_id = a.id "
            "WHERE a.kind = 'ask' AND a.cached_from IS NULL AND a.collection IS NOT NULL AND a.answer != '' "
            f"AND ({cond}){extra} "
            "ORDER BY a.created_at, a.rowid LIMIT ?",
            [*args, limit],
        )
        return [_answer(r) for r in rows]

    def reviewed_ids(self) -> list[str]:
        """Every answer with a successful review or a promotion (what a full reconcile looks at)."""
        rows = self._query("SELECT answer_id FROM reviews WHERE status = 'ok' UNION SELECT answer_id FROM promotions")
        return [r[0] for r in rows]

    # --- promotions ---
    def promotion_of(self, answer_id: str) -> Promotion | None:
        rows = self._query("SELECT * FROM promotions WHERE answer_id = ?", (answer_id,))
        return _promotion(rows[0]) if rows else None

    def save_promotion(self, p: Promotion) -> None:
        row = (
            p.answer_id,
            p.collection,
            p.chunk_id,
            p.question,
            p.answer_text,
            p.question_vector,
            p.embedder,
            p.promoted_at,
        )
        self._write(
            lambda db: db.execute(
                "INSERT INTO promotions (answer_id, collection, chunk_id, question, answer_text, question_vector, "
                "embedder, promoted_at, removed_at, removed_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) "
                "ON CONFLICT (answer_id) DO UPDATE SET collection = excluded.collection, chunk_id = excluded.chunk_id, "
                "question = excluded.question, answer_text = excluded.answer_text, "
                "question_vector = excluded.question_vector, embedder = excluded.embedder, "
                "promoted_at = excluded.promoted_at, removed_at = NULL, removed_reason = NULL",
                row,
            )
        )

    def mark_removed(self, answer_id: str, reason: str) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE promotions SET removed_at = ?, removed_reason = ? WHERE answer_id = ?",
                (time.time(), reason, answer_id),
            )
        )

    def active_promotion_ids(self, collection: str) -> list[str]:
        """The answers promoted into ``collection`` and not removed."""
        rows = self._query(
            "SELECT answer_id FROM promotions WHERE collection = ? AND removed_at IS NULL ORDER BY promoted_at",
            (collection,),
        )
        return [r[0] for r in rows]

    def citing(self, source_id: str, *, collection: str | None = None) -> list[AnswerRecord]:
        """Answers whose context held a chunk of ``source_id`` (or of one of its rows, ``source_id#...``), oldest
        first. Read from each answer's recorded chunks: what the model was given, not what it chose to cite."""
        pattern = json.dumps(source_id, ensure_ascii=False)[:-1]  # '"docs/a.md' : then '"' or '#'
        where, args = _filters(collection=collection)
        where = f"{where} {'AND' if where else 'WHERE'} (chunks LIKE ? OR chunks LIKE ?)"
        args += [f'%"source": {pattern}"%', f'%"source": {pattern}#%']
        rows = self._query(f"SELECT * FROM answers {where} ORDER BY created_at, rowid", args)
        return [
            a
            for a in (_answer(r) for r in rows)
            if any(
                c.get("source") == source_id or str(c.get("source", "")).startswith(source_id + "#") for c in a.chunks
            )
        ]

    def has_active_promotions(self, collection: str) -> bool:
        """Whether ``collection`` has any active promotion. ``ask`` checks this before the cache lookup on every
        question, so it stops at the first row (index ``promotions_active``) and reads no vectors or texts."""
        return bool(
            self._query("SELECT 1 FROM promotions WHERE collection = ? AND removed_at IS NULL LIMIT 1", (collection,))
        )

    def promotion_vectors(self, collection: str, embedder: str) -> tuple[list[str], bytes]:
        """Answer ids and their question vectors (concatenated float32) of the active promotions: the cache's keys,
        read without the texts (the lookup reads every key)."""
        rows = self._query(
            "SELECT answer_id, question_vector FROM promotions WHERE collection = ? AND embedder = ? "
            "AND removed_at IS NULL",
            (collection, embedder),
        )
        return [r[0] for r in rows], b"".join(r[1] for r in rows)

    def summary_flags(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per answer: votes (each rater's latest: {"up", "down"}) and their balance ("rating"), review status,
        promoted (for the history table)."""
        out: dict[str, dict[str, Any]] = {
            i: {"rating": 0, "votes": {"up": 0, "down": 0}, "review": None, "promoted": False} for i in ids
        }
        if not ids:
            return out
        marks = ",".join("?" * len(ids))
        by_answer: dict[str, list[Rating]] = {}
        for r in self._query(f"SELECT * FROM ratings WHERE answer_id IN ({marks}) ORDER BY id", ids):
            by_answer.setdefault(r["answer_id"], []).append(_rating(r))
        for answer_id, ratings in by_answer.items():
            votes = vote_counts(ratings)
            out[answer_id].update(votes=votes, rating=votes["up"] - votes["down"])
        for r in self._query(f"SELECT answer_id, status FROM reviews WHERE answer_id IN ({marks})", ids):
            out[r["answer_id"]]["review"] = r["status"]
        for r in self._query(
            f"SELECT answer_id FROM promotions WHERE removed_at IS NULL AND answer_id IN ({marks})", ids
        ):
            out[r["answer_id"]]["promoted"] = True
        return out


def _filters(**kw: Any) -> tuple[str, list[Any]]:
    conds, args = [], []
    for k, v in kw.items():
        if v is not None:
            conds.append(f"{k} = ?")
            args.append(v)
    return ("WHERE " + " AND ".join(conds) if conds else ""), args


def _answer(r: Any) -> AnswerRecord:
    return AnswerRecord(
        id=r["id"],
        created_at=r["created_at"],
        kind=r["kind"],
        question=r["question"],
        answer=r["answer"],
        collection=r["collection"],
        rewordings=json.loads(r["rewordings"]),
        chunks=json.loads(r["chunks"]),
        model=r["model"],
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        cost=r["cost"],
        latency_s=r["latency_s"],
        config_hash=r["config_hash"],
        cached_from=r["cached_from"],
        extra=json.loads(r["extra"] or "{}"),
    )


def _rating(r: Any) -> Rating:
    return Rating(r["rating"], r["comment"], r["created_at"], r["answer_id"], r["rater"])


def _review(r: Any) -> Review:
    return Review(
        answer_id=r["answer_id"],
        status=r["status"],
        helpfulness=r["helpfulness"],
        relevance=r["relevance"],
        public=None if r["public"] is None else bool(r["public"]),
        reasons=json.loads(r["reasons"] or "{}"),
        redactions=json.loads(r["redactions"] or "[]"),
        judge_model=r["judge_model"],
        error=r["error"],
        reviewed_at=r["reviewed_at"],
    )


def _promotion(r: Any) -> Promotion:
    return Promotion(
        answer_id=r["answer_id"],
        collection=r["collection"],
        chunk_id=r["chunk_id"],
        question=r["question"],
        answer_text=r["answer_text"],
        question_vector=r["question_vector"],
        embedder=r["embedder"],
        promoted_at=r["promoted_at"],
        removed_at=r["removed_at"],
        removed_reason=r["removed_reason"],
    )
