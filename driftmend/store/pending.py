"""Parked plans: plans waiting for an operator's approval, and what became of them.

Stage: *guard* in docs/ARCHITECTURE.md's data flow parks a plan here when its mode or a step asks for
approval; the dashboard lists them; an approval reads one back and the loop runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.codec import plan_to_dict
from driftmend.model import PendingStatus, Plan
from driftmend.store.db import Database, Row, rowid
from driftmend.store.records import Record, dumps, loads

__all__ = ["PENDING_STATUSES", "ParkedPlans", "PendingPlan", "PendingRecords"]

PENDING_STATUSES = frozenset(s.value for s in PendingStatus)


@dataclass(frozen=True, eq=False)
class PendingPlan(Record):
    """A parked plan; ``plan_from_dict(p.plan)`` rebuilds the ``Plan``. ``origin`` is
    ``incident`` (superseded once the drift is over) or ``asked`` (an operator's request)."""

    id: int
    key: str
    at: float
    reason: str
    plan: dict[str, Any]
    status: PendingStatus
    actor: str | None
    decided_at: float | None
    origin: str


class ParkedPlans(Protocol):
    """What an approval and the supersede check read of the parked plans."""

    def pending_plans(
        self, status: str | None = "pending", key: str | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Parked plans with ``status`` (None: any), oldest first."""

    def pending_plan(self, plan_id: int) -> Mapping[str, Any] | None:
        """One parked plan, or None."""


def _pending_of(r: Row) -> PendingPlan:
    return PendingPlan(
        id=r["id"],
        key=r["key"],
        at=r["at"],
        reason=r["reason"],
        plan=loads(r["plan"]),
        status=PendingStatus(r["status"]),
        actor=r["actor"],
        decided_at=r["decided_at"],
        origin=r["origin"],
    )


class PendingRecords:
    """The ``pending_plans`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_pending_plan(
        self, key: str, plan: Plan, reason: str, at: float, origin: str = "incident"
    ) -> int:
        """Park a plan until an operator approves or rejects it; returns its id.

        ``origin`` is ``incident`` (superseded once the drift is over) or ``asked`` (an
        operator's own request: it waits for them)."""
        with self._db.write() as db:
            cur = db.execute(
                """INSERT INTO pending_plans (key, at, reason, plan, status, origin)
                   VALUES (?, ?, ?, ?, 'pending', ?)""",
                (key, at, reason, dumps(plan_to_dict(plan)), origin),
            )
            return rowid(cur)

    def pending_plans(
        self, status: str | None = "pending", key: str | None = None
    ) -> list[PendingPlan]:
        """Parked plans with ``status`` (None: any), oldest first like a queue."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if key is not None:
            where.append("key = ?")
            args.append(key)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.read(f"SELECT * FROM pending_plans {clause} ORDER BY at, id", args)
        return [_pending_of(r) for r in rows]

    def pending_plan(self, plan_id: int) -> PendingPlan | None:
        """One parked plan, or None; ``plan_from_dict(d["plan"])`` rebuilds the ``Plan``."""
        rows = self._db.read("SELECT * FROM pending_plans WHERE id = ?", (plan_id,))
        return _pending_of(rows[0]) if rows else None

    def set_pending_status(
        self,
        plan_id: int,
        status: str,
        actor: str,
        at: float,
        expected: str | None = None,
    ) -> bool:
        """Move a parked plan to ``status``; with ``expected``, only from that status.

        Returns whether a row changed: ``expected="pending"`` makes approval a compare-and-set,
        so two operators clicking at once cannot both run the plan.
        """
        if status not in PENDING_STATUSES:
            raise ValueError(
                f"unknown pending status {status!r}; expected one of {sorted(PENDING_STATUSES)}"
            )
        with self._db.write() as db:
            cur = db.execute(
                """UPDATE pending_plans SET status = ?, actor = ?, decided_at = ?
                   WHERE id = ? AND (? IS NULL OR status = ?)""",
                (status, actor, at, plan_id, expected, expected),
            )
            return cur.rowcount > 0
