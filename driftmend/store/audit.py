"""The audit trail: the guard's verdict on every plan, and every action taken by a person
or by the controller (pause, approve, chaos, ...).

Stage: *guard* in docs/ARCHITECTURE.md's data flow writes a decision per plan; the dashboard's actions
and the loop write actions; the resource page and ``/api/actions`` read both back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.codec import plan_to_dict
from driftmend.model import Plan
from driftmend.store.db import Database, rowid
from driftmend.store.records import Record, dumps, loads

__all__ = ["Action", "AuditRecords", "AuditTrail", "GuardDecision"]


@dataclass(frozen=True, eq=False)
class GuardDecision(Record):
    """The guard's verdict on one plan, with the plan as data."""

    id: int
    key: str
    at: float
    admitted: bool
    reason: str
    source: str
    policy: str | None
    rule: str | None
    plan: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Action(Record):
    """One audited action: who (``actor``) did what (``action``) to which resource, when."""

    id: int
    key: str | None
    at: float
    action: str
    actor: str
    detail: dict[str, Any]


class AuditTrail(Protocol):
    """What the resource page reads of the audit trail."""

    def guard_decisions(
        self, key: str | None = None, limit: int = 100
    ) -> Sequence[Mapping[str, Any]]:
        """Guard verdicts, newest first."""

    def actions(self, limit: int = 100, key: str | None = None) -> Sequence[Mapping[str, Any]]:
        """Audited actions, newest first."""


def _newest(table: str, key: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The query for the newest ``limit`` rows of ``table``, of one ``key`` or of all."""
    where = "WHERE key = ?" if key is not None else ""
    sql = f"SELECT * FROM {table} {where} ORDER BY at DESC, id DESC LIMIT ?"
    return sql, (key, limit) if key is not None else (limit,)


class AuditRecords:
    """The ``guard_decisions`` and ``actions`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_guard_decision(
        self, key: str, plan: Plan, admitted: bool, reason: str, at: float
    ) -> int:
        """Record the guard's verdict on a plan, admitted or not, with the reason."""
        with self._db.write() as db:
            cur = db.execute(
                """INSERT INTO guard_decisions
                       (key, at, admitted, reason, source, policy, rule, plan)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    at,
                    int(admitted),
                    reason,
                    plan.source,
                    plan.policy,
                    plan.rule,
                    dumps(plan_to_dict(plan)),
                ),
            )
            return rowid(cur)

    def guard_decisions(self, key: str | None = None, limit: int = 100) -> list[GuardDecision]:
        """Guard verdicts, newest first."""
        return [
            GuardDecision(
                id=r["id"],
                key=r["key"],
                at=r["at"],
                admitted=bool(r["admitted"]),
                reason=r["reason"],
                source=r["source"],
                policy=r["policy"],
                rule=r["rule"],
                plan=loads(r["plan"]),
            )
            for r in self._db.read(*_newest("guard_decisions", key, limit))
        ]

    def record_action(
        self, key: str | None, action: str, actor: str, detail: Mapping[str, Any], at: float
    ) -> int:
        """Audit one action by a person or the controller (pause, approve, chaos, ...)."""
        with self._db.write() as db:
            cur = db.execute(
                "INSERT INTO actions (key, at, action, actor, detail) VALUES (?, ?, ?, ?, ?)",
                (key, at, action, actor, dumps(detail)),
            )
            return rowid(cur)

    def actions(self, limit: int = 100, key: str | None = None) -> list[Action]:
        """Audited actions, newest first."""
        return [
            Action(
                id=r["id"],
                key=r["key"],
                at=r["at"],
                action=r["action"],
                actor=r["actor"],
                detail=loads(r["detail"]),
            )
            for r in self._db.read(*_newest("actions", key, limit))
        ]
