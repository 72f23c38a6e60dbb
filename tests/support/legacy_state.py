"""State files as the llmops before the shared migration record wrote them: the answer log with its numbered
``schema_migrations`` (versions 1..5), the eval history with its own (1..3), the LLM cache without any.

The SQL is frozen here, copied from the code that shipped it, so the tests open databases built by that code's
schema and not by today's migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

ANSWER_LOG: list[tuple[int, str, list[str]]] = [
    (
        1,
        "answers and ratings",
        [
            """CREATE TABLE answers (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            kind TEXT NOT NULL,
            collection TEXT,
            question TEXT NOT NULL,
            rewordings TEXT NOT NULL DEFAULT '[]',
            chunks TEXT NOT NULL DEFAULT '[]',
            answer TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            latency_s REAL NOT NULL DEFAULT 0,
            config_hash TEXT,
            extra TEXT NOT NULL DEFAULT '{}'
        )""",
            "CREATE INDEX answers_created ON answers(created_at)",
            """CREATE TABLE ratings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            answer_id TEXT NOT NULL REFERENCES answers(id),
            rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
            comment TEXT,
            created_at REAL NOT NULL
        )""",
            "CREATE INDEX ratings_answer ON ratings(answer_id)",
        ],
    ),
    (
        2,
        "reviews",
        [
            """CREATE TABLE reviews (
            answer_id TEXT PRIMARY KEY REFERENCES answers(id),
            status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
            helpfulness REAL,
            relevance REAL,
            public INTEGER,
            reasons TEXT NOT NULL DEFAULT '{}',
            redactions TEXT NOT NULL DEFAULT '[]',
            judge_model TEXT,
            error TEXT,
            reviewed_at REAL NOT NULL
        )""",
        ],
    ),
    (
        3,
        "promotions and the semantic cache",
        [
            """CREATE TABLE promotions (
            answer_id TEXT PRIMARY KEY REFERENCES answers(id),
            collection TEXT NOT NULL,
            chunk_id TEXT NOT NULL,
            question TEXT NOT NULL,
            answer_text TEXT NOT NULL,
            question_vector BLOB NOT NULL,
            embedder TEXT NOT NULL,
            promoted_at REAL NOT NULL,
            removed_at REAL,
            removed_reason TEXT
        )""",
            "CREATE INDEX promotions_active ON promotions(collection, removed_at)",
        ],
    ),
    (
        4,
        "answers served from the cache",
        [
            "ALTER TABLE answers ADD COLUMN cached_from TEXT REFERENCES answers(id)",
            "CREATE INDEX answers_cached_from ON answers(cached_from)",
        ],
    ),
    (5, "who rated", ["ALTER TABLE ratings ADD COLUMN rater TEXT"]),
]

EVAL_HISTORY: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        dataset_path TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        config_json TEXT NOT NULL,
        metrics_json TEXT NOT NULL,
        counts_json TEXT NOT NULL,
        usage_json TEXT NOT NULL,
        robustness_json TEXT NOT NULL,
        n_rows INTEGER NOT NULL,
        error_rows INTEGER NOT NULL,
        duration_s REAL NOT NULL
    );
    CREATE TABLE run_rows (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        result_json TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    CREATE INDEX runs_dataset ON runs(dataset_sha256);
    """,
    "ALTER TABLE runs ADD COLUMN label TEXT;",
    "ALTER TABLE runs ADD COLUMN by_tag_json TEXT NOT NULL DEFAULT '{}';",
]

LLM_CACHE = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost REAL,
    created_at REAL NOT NULL
)
"""


def legacy_log(path: Path, versions: int = 5) -> None:
    """An answer log at ``path`` as the old code left it after its migrations 1..``versions``."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for version, name, statements in ANSWER_LOG[:versions]:
        for sql in statements:
            db.execute(sql)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, 1000.0 + version))
    db.commit()
    db.close()


def legacy_history(path: Path, versions: int = 3) -> None:
    """An eval run history at ``path`` as the old code left it after its migrations 1..``versions``."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )
    for version, sql in enumerate(EVAL_HISTORY[:versions], start=1):
        db.executescript(sql)
        db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
    db.commit()
    db.close()


def legacy_cache(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(LLM_CACHE)
    db.commit()
    db.close()
