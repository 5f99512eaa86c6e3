"""Retention: every table that grows is bounded by age and by rows.

Stage: *outputs* (docs/ARCHITECTURE.md, "Store"). A controller runs for months; each pass,
fix, guard decision, audited call and LLM exchange adds a row. ``prune`` deletes what is
older than ``max_age_s`` and what lies beyond the newest ``max_rows`` of each table, so the
store's size has a ceiling set by configuration rather than by uptime (an LLM exchange holds
a whole prompt, so that table has its own, smaller, row bound).

What is never pruned: a fix still running (its journal is how a new controller resumes it),
a parked plan still waiting for its operator, and the tables bounded by what is declared
(resources, operator flags, per-outcome pass counts).

Deletes go in batches of ``BATCH`` rows, each its own short transaction, so pruning a year
of history does not hold the write lock for long against the passes that write beside it.
SQL is portable between SQLite and PostgreSQL (``store/postgres.py`` runs the same text).
"""

from __future__ import annotations

from dataclasses import dataclass

from driftmend.store.db import Database

BATCH = 2000


@dataclass(frozen=True)
class Retention:
    """How much history the store keeps (``DRIFTMEND_RETENTION_*`` settings)."""

    max_age_s: float = 30 * 86400.0
    max_rows: int = 100_000  # per history table
    max_llm_rows: int = 2_000  # LLM exchanges: each holds a prompt of up to tens of KB


@dataclass(frozen=True)
class _Table:
    """One table's pruning: its time column, and which rows may go at all."""

    name: str
    at: str
    prunable: str = "1 = 1"
    llm: bool = False


# Fix steps go with their fix (below), never on their own.
_TABLES = (
    _Table("reconciliations", "started_at"),
    _Table("signal_samples", "at"),
    _Table("guard_decisions", "at"),
    _Table("actions", "at"),
    _Table("llm_interactions", "at", llm=True),
    _Table("pending_plans", "at", "status NOT IN ('pending', 'approved')"),
    _Table("fixes", "detected_at", "finished_at IS NOT NULL"),
)


def prune(db: Database, retention: Retention, now: float) -> dict[str, int]:
    """Delete what ``retention`` does not keep; rows deleted per table (only those with
    any). Skips everything while the store refuses writes: pruning is never worth a place
    in the backlog of writes kept for later."""
    deleted: dict[str, int] = {}
    for table in _TABLES:
        if not db.writable:
            break
        cap = retention.max_llm_rows if table.llm else retention.max_rows
        count = _prune_table(db, table, now - retention.max_age_s, cap)
        if count:
            deleted[table.name] = count
    return deleted


def _prune_table(db: Database, table: _Table, cutoff: float, cap: int) -> int:
    # Rows beyond the newest ``cap``: ids below the cap-th newest (ids only grow).
    nth = db.read(
        f"SELECT id FROM {table.name} ORDER BY id DESC LIMIT 1 OFFSET ?",
        (max(cap, 1) - 1,),
    )
    below = int(nth[0][0]) if nth else 0
    chosen = (
        f"SELECT id FROM {table.name} WHERE ({table.prunable}) "
        f"AND ({table.at} < ? OR id < ?) ORDER BY id LIMIT {BATCH}"
    )
    total = 0
    while db.writable:
        with db.write() as w:
            if table.name == "fixes":
                # The journal first: its rows name the fix (a foreign key).
                w.execute(f"DELETE FROM fix_steps WHERE fix_id IN ({chosen})", (cutoff, below))
            cur = w.execute(f"DELETE FROM {table.name} WHERE id IN ({chosen})", (cutoff, below))
            count = max(getattr(cur, "rowcount", 0) or 0, 0)
        total += count
        if count < BATCH:
            break
    return total
