"""How well fixing works: success rates and times to detect and recover, from the fix record.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``); the dashboard's evaluation page and
``driftmend eval`` read it. Aggregates, not records: the result is a plain dict of numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from driftmend.model import Outcome
from driftmend.store.db import Database, Row

__all__ = ["FixStats"]


class FixStats:
    """Aggregates over the ``fixes`` and ``fix_steps`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def fix_stats(self, since: float | None = None) -> dict[str, Any]:
        """How well fixing works: count, success rate, time to recover; by rule and by tool.

        Dry runs are left out (they fix nothing). Success rate is ``fixed`` over closed fixes
        (done or interrupted); times to recover are over recovered fixes only.
        """
        floor = -math.inf if since is None else since
        rows = self._db.read(
            """SELECT id, source, policy, rule, status, outcome, time_to_detect, time_to_recover
               FROM fixes WHERE dry_run = 0 AND detected_at >= ?""",
            (floor,),
        )
        steps = self._db.read(
            """SELECT s.tool, s.status, s.duration_s, f.outcome
               FROM fix_steps s JOIN fixes f ON f.id = s.fix_id
               WHERE f.dry_run = 0 AND f.detected_at >= ?""",
            (floor,),
        )
        by_rule: dict[str, list[Row]] = {}
        for r in rows:
            # Rule names are unique only within their policy; an LLM plan has no rule at all.
            label = (
                f"{r['policy']}/{r['rule']}"
                if r["policy"] and r["rule"]
                else (r["rule"] or r["source"])
            )
            by_rule.setdefault(label, []).append(r)
        by_tool: dict[str, list[Row]] = {}
        for s in steps:
            by_tool.setdefault(s["tool"], []).append(s)
        return {
            "since": since,
            **_fix_group_stats(rows),
            "by_rule": {label: _fix_group_stats(group) for label, group in sorted(by_rule.items())},
            "by_tool": {tool: _step_group_stats(group) for tool, group in sorted(by_tool.items())},
        }


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks, as numpy does."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lower = math.floor(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


def _summary(values: Sequence[float]) -> tuple[float | None, float | None]:
    return (statistics.median(values) if values else None, _percentile(values, 0.95))


def _fix_group_stats(rows: Sequence[Row]) -> dict[str, Any]:
    closed = [r for r in rows if r["status"] in ("done", "interrupted")]
    fixed = [r for r in closed if r["outcome"] == Outcome.FIXED]
    ttr = [float(r["time_to_recover"]) for r in rows if r["time_to_recover"] is not None]
    ttd = [float(r["time_to_detect"]) for r in rows]
    median_ttr, p95_ttr = _summary(ttr)
    median_ttd, p95_ttd = _summary(ttd)
    return {
        "count": len(rows),
        "running": sum(1 for r in rows if r["status"] == "running"),
        "closed": len(closed),
        "fixed": len(fixed),
        "interrupted": sum(1 for r in closed if r["status"] == "interrupted"),
        "success_rate": len(fixed) / len(closed) if closed else None,
        "median_time_to_recover": median_ttr,
        "p95_time_to_recover": p95_ttr,
        "median_time_to_detect": median_ttd,
        "p95_time_to_detect": p95_ttd,
    }


def _step_group_stats(rows: Sequence[Row]) -> dict[str, Any]:
    ok = sum(1 for r in rows if r["status"] == "ok")
    in_fixed = sum(1 for r in rows if r["outcome"] == Outcome.FIXED)
    durations = [float(r["duration_s"]) for r in rows if r["duration_s"] is not None]
    median_duration, p95_duration = _summary(durations)
    return {
        "steps": len(rows),
        "ok": ok,
        "step_success_rate": ok / len(rows) if rows else None,
        "in_fixed": in_fixed,
        "fix_success_rate": in_fixed / len(rows) if rows else None,
        "median_duration_s": median_duration,
        "p95_duration_s": p95_duration,
    }
