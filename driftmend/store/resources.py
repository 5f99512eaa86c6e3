"""Resources as last observed, and the operator flags on them.

Stage: *observe* in docs/ARCHITECTURE.md's data flow writes here (``upsert_resource``); the loop reads
the pause and operator flags, the dashboard and ``driftmend get`` read the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.model import Health
from driftmend.store.db import Database
from driftmend.store.fixes import FixRecords, FixSummary
from driftmend.store.records import Record, dumps, kind_of, loads

__all__ = ["ResourceFlags", "ResourceRecords", "ResourceState"]


@dataclass(frozen=True, eq=False)
class ResourceState(Record):
    """A resource's latest observed state, its operator flag and its newest fix."""

    key: str
    kind: str
    health: Health
    signals: dict[str, Any]
    observed_at: float | None
    message: str
    paused: bool
    spec: dict[str, Any]
    needs_operator: bool
    needs_operator_reason: str | None
    needs_operator_at: float | None
    last_fix: FixSummary | None


class ResourceFlags(Protocol):
    """What the reconciler reads about a resource before it acts: paused, or waiting for
    an operator."""

    def resource(self, key: str) -> Mapping[str, Any] | None:
        """The resource's state, or None when never observed."""

    def needs_operator(self, key: str) -> bool:
        """Whether the resource waits for an operator."""


class ResourceRecords:
    """The ``resources`` and ``operator_flags`` tables.

    ``clock`` stamps an operator flag raised without a time.
    """

    def __init__(self, db: Database, fixes: FixRecords, clock: Callable[[], float]) -> None:
        self._db = db
        self._fixes = fixes
        self._clock = clock
        # The parsed spec of each resource while its stored text is the same: a list of
        # 1,000 resources parsed 1,000 unchanged specs per request (issue 15). Read-only.
        self._specs: dict[str, tuple[str, dict[str, Any]]] = {}

    def upsert_resource(
        self,
        key: str,
        kind: str,
        spec: Mapping[str, Any],
        health: Health,
        signals: Mapping[str, Any],
        observed_at: float,
        message: str = "",
        paused: bool | None = None,
    ) -> None:
        """Record the latest observed state of a resource; ``paused=None`` keeps the flag.

        A healthy resource no longer needs an operator, so that flag is cleared here.
        """
        with self._db.write() as db:
            db.execute(
                """INSERT INTO resources
                       (key, kind, spec, health, signals, observed_at, message, paused)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET
                       kind = excluded.kind, spec = excluded.spec, health = excluded.health,
                       signals = excluded.signals, observed_at = excluded.observed_at,
                       message = excluded.message,
                       paused = CASE WHEN ? IS NULL THEN resources.paused
                                     ELSE excluded.paused END""",
                (
                    key,
                    kind,
                    dumps(spec),
                    str(health),
                    dumps(signals),
                    observed_at,
                    message,
                    int(bool(paused)),
                    None if paused is None else int(paused),
                ),
            )
            if health == Health.HEALTHY:
                db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))

    def _spec(self, key: str, text: str) -> dict[str, Any]:
        kept = self._specs.get(key)
        if kept is not None and kept[0] == text:
            return kept[1]
        spec: dict[str, Any] = loads(text)
        self._specs[key] = (text, spec)
        return spec

    def resources(self, *, specs: bool = True) -> list[ResourceState]:
        """Every resource with its observed state, operator flag and last fix, by key.

        ``specs=False`` leaves ``spec`` empty: a list of 1,000 resources that does not show
        them should not parse them (issue 15)."""
        return self._where("", (), specs=specs)

    def resource(self, key: str) -> ResourceState | None:
        """One resource as in ``resources()``, or None."""
        found = self._where("WHERE r.key = ?", (key,))
        return found[0] if found else None

    def _where(self, where: str, args: Sequence[Any], *, specs: bool = True) -> list[ResourceState]:
        rows = self._db.read(
            f"""SELECT r.*, o.reason AS operator_reason, o.at AS operator_at,
                       (SELECT MAX(f.id) FROM fixes f WHERE f.key = r.key) AS last_fix_id
                FROM resources r LEFT JOIN operator_flags o ON o.key = r.key
                {where} ORDER BY r.key""",
            args,
        )
        fixes = self._fixes.fix_summaries(
            [r["last_fix_id"] for r in rows if r["last_fix_id"] is not None]
        )
        return [
            ResourceState(
                key=r["key"],
                kind=r["kind"],
                health=Health(r["health"]),
                signals=loads(r["signals"]),
                observed_at=r["observed_at"],
                message=r["message"],
                paused=bool(r["paused"]),
                spec=self._spec(r["key"], r["spec"]) if specs else {},
                needs_operator=r["operator_reason"] is not None,
                needs_operator_reason=r["operator_reason"],
                needs_operator_at=r["operator_at"],
                last_fix=fixes.get(r["last_fix_id"]) if r["last_fix_id"] else None,
            )
            for r in rows
        ]

    def set_paused(self, key: str, paused: bool) -> None:
        """Pause or resume healing of a resource (its row is created if not yet observed)."""
        with self._db.write() as db:
            db.execute(
                """INSERT INTO resources (key, kind, paused) VALUES (?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET paused = excluded.paused""",
                (key, kind_of(key), int(paused)),
            )

    def remove_resource(self, key: str) -> None:
        """Forget a deleted resource's current state; its reconciliations and fixes stay."""
        self._specs.pop(key, None)
        with self._db.write() as db:
            db.execute("DELETE FROM resources WHERE key = ?", (key,))
            db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))
            # Chart data of a resource that no longer exists is not history anyone reads,
            # and per-key pruning would never reach it again.
            db.execute("DELETE FROM signal_samples WHERE key = ?", (key,))

    def needs_operator(self, key: str) -> bool:
        """Whether the resource waits for an operator (an escalation nobody could plan)."""
        return bool(self._db.read("SELECT 1 FROM operator_flags WHERE key = ?", (key,)))

    def operator_reason(self, key: str) -> str | None:
        """Why the resource waits for an operator, or None when it does not.

        Read from the flag itself, not the resource's row: a first pass may raise the flag
        before any row exists.
        """
        rows = self._db.read("SELECT reason FROM operator_flags WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0] or "needs an operator")

    def set_needs_operator(self, key: str, reason: str | None, at: float | None = None) -> None:
        """Flag a resource as needing an operator with ``reason``, or clear it with None."""
        with self._db.write() as db:
            if reason is None:
                db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))
            else:
                db.execute(
                    """INSERT INTO operator_flags (key, reason, at) VALUES (?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET reason = excluded.reason""",
                    (key, reason, self._clock() if at is None else at),
                )
