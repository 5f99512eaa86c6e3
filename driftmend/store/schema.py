"""The store's schema: its migrations, in order, and the code that applies them.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). ``migrate`` runs once when a store
opens, each version in its own transaction, and refuses a database written by a newer
driftmend rather than guess at columns it does not know.

The migrations are written once, in SQLite's dialect; ``postgres.py`` translates the few
words PostgreSQL says differently (row ids, floats) and applies the same list under an
advisory lock, so both backends always hold the same schema version for version.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from driftmend.errors import ConfigurationError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "VERSION_TABLE", "check_version", "migrate"]

# The table of applied versions, created before any migration runs.
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL)"
)

# Each entry moves the schema one version forward. Append only: a released entry is never
# edited, because databases in the field have already run it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE resources (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            spec TEXT NOT NULL DEFAULT '{}',
            health TEXT NOT NULL DEFAULT 'unknown',
            signals TEXT NOT NULL DEFAULT '{}',
            observed_at REAL,
            message TEXT NOT NULL DEFAULT '',
            paused INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE operator_flags (
            key TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        """CREATE TABLE signal_samples (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            signals TEXT NOT NULL
        )""",
        "CREATE INDEX signal_samples_key_at ON signal_samples (key, at)",
        """CREATE TABLE reconciliations (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            started_at REAL NOT NULL,
            duration_s REAL NOT NULL,
            outcome TEXT NOT NULL,
            drifts TEXT NOT NULL,
            signals TEXT NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX reconciliations_key_at ON reconciliations (key, started_at)",
        "CREATE INDEX reconciliations_at ON reconciliations (started_at)",
        """CREATE TABLE reconcile_counts (
            key TEXT NOT NULL,
            outcome TEXT NOT NULL,
            count INTEGER NOT NULL,
            last_at REAL NOT NULL,
            PRIMARY KEY (key, outcome)
        )""",
        """CREATE TABLE fixes (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            policy TEXT,
            rule TEXT,
            plan TEXT NOT NULL,
            root_cause TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT,
            verified INTEGER,
            message TEXT NOT NULL DEFAULT '',
            signals_before TEXT NOT NULL,
            signals_after TEXT,
            fault_at REAL NOT NULL,
            detected_at REAL NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            recovered_at REAL,
            time_to_detect REAL NOT NULL,
            time_to_recover REAL
        )""",
        "CREATE INDEX fixes_key_id ON fixes (key, id)",
        "CREATE INDEX fixes_detected_at ON fixes (detected_at)",
        "CREATE INDEX fixes_status ON fixes (status)",
        """CREATE TABLE fix_steps (
            id INTEGER PRIMARY KEY,
            fix_id INTEGER NOT NULL REFERENCES fixes (id),
            idx INTEGER NOT NULL,
            tool TEXT NOT NULL,
            target TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_s REAL,
            data TEXT,
            error TEXT,
            mcp_call TEXT
        )""",
        "CREATE INDEX fix_steps_fix ON fix_steps (fix_id, idx)",
        "CREATE INDEX fix_steps_status ON fix_steps (status)",
        """CREATE TABLE guard_decisions (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            admitted INTEGER NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            policy TEXT,
            rule TEXT,
            plan TEXT NOT NULL
        )""",
        "CREATE INDEX guard_decisions_key_at ON guard_decisions (key, at)",
        "CREATE INDEX guard_decisions_at ON guard_decisions (at)",
        """CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            key TEXT,
            at REAL NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX actions_at ON actions (at)",
        "CREATE INDEX actions_key_at ON actions (key, at)",
        """CREATE TABLE pending_plans (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            reason TEXT NOT NULL,
            plan TEXT NOT NULL,
            status TEXT NOT NULL,
            actor TEXT,
            decided_at REAL
        )""",
        "CREATE INDEX pending_plans_status_at ON pending_plans (status, at)",
        "CREATE INDEX pending_plans_key_at ON pending_plans (key, at)",
        """CREATE TABLE llm_interactions (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            planner TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            response TEXT NOT NULL,
            plan TEXT,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX llm_interactions_key_at ON llm_interactions (key, at)",
        "CREATE INDEX llm_interactions_at ON llm_interactions (at)",
    ),
    (
        # What became of an LLM's plan: the mode it ran under, the guard's decision, the fix.
        "ALTER TABLE llm_interactions ADD COLUMN mode TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN decision TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN reason TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN fix_id INTEGER",
        "ALTER TABLE llm_interactions ADD COLUMN cost_usd REAL",
    ),
    (
        # A shadow plan against the fix that was then run: agrees or differs, and which fix.
        "ALTER TABLE llm_interactions ADD COLUMN agreement TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN compared_fix_id INTEGER",
        # The plan parked for an operator's approval, when the mode or a step asked for one.
        "ALTER TABLE llm_interactions ADD COLUMN pending_plan_id INTEGER",
        # Why a plan was parked: 'incident' (a drift's plan, superseded when the drift is
        # over) or 'asked' (an operator asked the LLM; it waits for them whatever happens).
        "ALTER TABLE pending_plans ADD COLUMN origin TEXT NOT NULL DEFAULT 'incident'",
    ),
    (
        # The execution journal: one row per (fix, step), the claim of that step. Its row is
        # inserted before its tool is called and a second row for the same step is refused,
        # so two controllers sharing a store can never both run it
        # (``FixRecords.claim_step``). It covers the old non-unique index.
        "CREATE UNIQUE INDEX fix_steps_fix_idx ON fix_steps (fix_id, idx)",
        "DROP INDEX fix_steps_fix",
        # When a controller resumed a fix that an earlier one left unfinished (NULL: never).
        "ALTER TABLE fixes ADD COLUMN resumed_at REAL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def check_version(current: int, where: object) -> None:
    """Refuse (``ConfigurationError``) a store at schema ``current`` newer than this driftmend."""
    if current > SCHEMA_VERSION:
        raise ConfigurationError(
            f"{where}: store schema version {current} is newer than this driftmend "
            f"({SCHEMA_VERSION}); upgrade driftmend or use another state directory"
        )


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring ``db`` (the store at ``path``) up to ``SCHEMA_VERSION``.

    Raises ``ConfigurationError`` for a schema newer than this driftmend; lets SQLite's own
    errors through, for the caller (``Database``) to translate.
    """
    db.execute(VERSION_TABLE)
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    check_version(current, path)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1]:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
