"""Signal history: samples of each resource's signals over time, for the charts.

Stage: *observe* in docs/ARCHITECTURE.md's data flow appends a sample per pass; the dashboard's charts
read them back. Bounded per resource by a retention window, pruned on every write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.store.db import Database
from driftmend.store.records import Record, dumps, loads

__all__ = ["SignalHistory", "SignalRecords", "SignalSample"]


@dataclass(frozen=True, eq=False)
class SignalSample(Record):
    """One sample: when, and the signals (only those asked for)."""

    at: float
    signals: dict[str, Any]


class SignalHistory(Protocol):
    """What a chart reads: samples of one resource since a time."""

    def signal_history(
        self, key: str, names: Sequence[str] | None, since: float
    ) -> Sequence[Mapping[str, Any]]:
        """Samples since ``since``, oldest first."""


class SignalRecords:
    """The ``signal_samples`` table; ``retention_s`` bounds the history kept per resource."""

    def __init__(self, db: Database, retention_s: float) -> None:
        self._db = db
        self._retention = retention_s

    def record_signals(self, key: str, at: float, signals: Mapping[str, Any]) -> None:
        """Append one sample of a resource's signals; samples older than the retention go."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO signal_samples (key, at, signals) VALUES (?, ?, ?)",
                (key, at, dumps(signals)),
            )
            # A range delete on the (key, at) index: cheap, and usually deletes one row.
            db.execute(
                "DELETE FROM signal_samples WHERE key = ? AND at < ?", (key, at - self._retention)
            )

    def signal_history(
        self, key: str, names: Sequence[str] | None, since: float
    ) -> list[SignalSample]:
        """Samples since ``since``, oldest first: ``{"at", "signals"}``, only ``names`` if given."""
        rows = self._db.read(
            "SELECT at, signals FROM signal_samples WHERE key = ? AND at >= ? ORDER BY at, id",
            (key, since),
        )
        wanted = None if names is None else set(names)
        out = []
        for r in rows:
            signals: dict[str, Any] = loads(r["signals"])
            if wanted is not None:
                signals = {k: v for k, v in signals.items() if k in wanted}
            out.append(SignalSample(at=r["at"], signals=signals))
        return out
