"""A resource as a tile or a card shows it: health, availability, last fix.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftmend.dashboard.views.fixes import fix_summary
from driftmend.dashboard.views.ids import resource_id
from driftmend.formatting import health_label
from driftmend.model import Health

__all__ = ["HEALTH_LABELS", "resource_summary", "up_state"]

HEALTH_LABELS: dict[str, str] = {h.value: h.label for h in Health}
"""The words shown next to each health colour, from ``Health.label``."""


def up_state(kind: str, signals: Mapping[str, Any]) -> str:
    """``up``, ``degraded``, ``down`` or ``unknown``: the availability strip under the charts.

    Containers are ``degraded`` when running but failing their health probe; databases and
    caches are up or down by their ping.
    """
    if kind == "Container":
        running, healthy = signals.get("container.running"), signals.get("container.healthy")
        if running is None:
            return "unknown"
        if not running:
            return "down"
        return "up" if healthy is not False else "degraded"
    flag = signals.get({"PostgresDatabase": "postgres.up", "RedisCache": "redis.up"}.get(kind, ""))
    if flag is None:
        return "unknown"
    return "up" if flag else "down"


def resource_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A resource row of the store, with its URL id and its last fix as a summary."""
    last = row.get("last_fix")
    return {
        "id": resource_id(str(row["key"])),
        "key": row["key"],
        "kind": row["kind"],
        "health": row["health"],
        "health_label": health_label(str(row["health"])),
        "up": up_state(str(row["kind"]), row.get("signals") or {}),
        "message": row.get("message") or "",
        "paused": bool(row.get("paused")),
        "needs_operator": bool(row.get("needs_operator")),
        "needs_operator_reason": row.get("needs_operator_reason"),
        "observed_at": row.get("observed_at"),
        "signals": dict(row.get("signals") or {}),
        "last_fix": None if not last else fix_summary(last),
    }
