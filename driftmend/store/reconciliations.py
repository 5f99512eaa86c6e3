"""Reconciliations: the interesting passes in full, every pass counted by outcome.

Stage: *reconcile* in docs/ARCHITECTURE.md's data flow writes one row or one count per pass; the
dashboard's resource page reads them back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.codec import drift_to_dict
from driftmend.model import Drift, Outcome
from driftmend.store.backlog import Recorder
from driftmend.store.db import Database, rowid
from driftmend.store.records import Record, dumps, loads

__all__ = ["Reconciliation", "ReconciliationLog", "ReconciliationRecords"]


@dataclass(frozen=True, eq=False)
class Reconciliation(Record):
    """One recorded pass: how it ended, the drifts it found (as data) and the signals."""

    id: int
    key: str
    kind: str
    started_at: float
    duration_s: float
    outcome: Outcome
    drifts: list[dict[str, Any]]
    signals: dict[str, Any]
    error: str | None


class ReconciliationLog(Protocol):
    """What a resource's history page reads: recorded passes and counts per outcome."""

    def reconciliations(
        self, key: str | None = None, limit: int = 100
    ) -> Sequence[Mapping[str, Any]]:
        """Recorded passes, newest first."""

    def reconciliation_counts(self, key: str | None = None) -> dict[str, int]:
        """Passes per outcome."""


class ReconciliationRecords:
    """The ``reconciliations`` and ``reconcile_counts`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_reconciliation(
        self,
        key: str,
        kind: str,
        started_at: float,
        duration_s: float,
        outcome: Outcome,
        drifts: Sequence[Drift],
        signals: Mapping[str, Any],
        error: str | None = None,
    ) -> int:
        """Record an interesting pass (drift or error) in full; it is counted too.

        A pass is recorded here *or* counted through ``count_reconciliations``, never both.
        """
        with self._db.write() as db:
            cur = db.execute(
                """INSERT INTO reconciliations
                       (key, kind, started_at, duration_s, outcome, drifts, signals, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    kind,
                    started_at,
                    duration_s,
                    str(outcome),
                    dumps([drift_to_dict(d) for d in drifts]),
                    dumps(signals),
                    error,
                ),
            )
            _count(db, key, outcome, started_at)
            return rowid(cur)

    def count_reconciliations(
        self, counts: Mapping[tuple[str, Outcome], tuple[int, float]]
    ) -> None:
        """Count many uneventful passes in one transaction: ``(key, outcome) -> (passes,
        time of the last)``. The reconciler adds its quiet passes up between two calls."""
        if not counts:
            return
        with self._db.write() as db:
            for (key, outcome), (n, at) in counts.items():
                _count(db, key, outcome, at, n)

    def reconciliation_counts(self, key: str | None = None) -> dict[str, int]:
        """Passes per outcome, for one resource or all."""
        if key is None:
            rows = self._db.read(
                "SELECT outcome, SUM(count) AS n FROM reconcile_counts GROUP BY outcome"
            )
        else:
            rows = self._db.read(
                "SELECT outcome, count AS n FROM reconcile_counts WHERE key = ?", (key,)
            )
        return {r["outcome"]: int(r["n"]) for r in rows}

    def reconciliations(self, key: str | None = None, limit: int = 100) -> list[Reconciliation]:
        """Recorded passes, newest first."""
        rows = self._db.read(
            f"""SELECT * FROM reconciliations {"WHERE key = ?" if key is not None else ""}
                ORDER BY started_at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return [
            Reconciliation(
                id=r["id"],
                key=r["key"],
                kind=r["kind"],
                started_at=r["started_at"],
                duration_s=r["duration_s"],
                outcome=Outcome(r["outcome"]),
                drifts=loads(r["drifts"]),
                signals=loads(r["signals"]),
                error=r["error"],
            )
            for r in rows
        ]


def _count(db: Recorder, key: str, outcome: Outcome, at: float, n: int = 1) -> None:
    """Count ``n`` passes of ``key`` with ``outcome`` inside the caller's transaction ``db``.

    The later of the two times by CASE, not ``MAX(a, b)``: SQLite's two-argument MAX is
    PostgreSQL's GREATEST, and this statement runs on both."""
    db.execute(
        """INSERT INTO reconcile_counts (key, outcome, count, last_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (key, outcome) DO UPDATE SET
               count = reconcile_counts.count + excluded.count,
               last_at = CASE WHEN excluded.last_at > reconcile_counts.last_at
                              THEN excluded.last_at ELSE reconcile_counts.last_at END""",
        (key, str(outcome), n, at),
    )
