"""A fix as a table row or a live event shows it, and how well fixing works.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftmend.dashboard.views.drifts import root_cause_text
from driftmend.dashboard.views.ids import resource_id
from driftmend.formatting import format_value

__all__ = ["evaluations", "fix_label", "fix_summary", "scenario_of"]


def fix_summary(fix: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields of a fix a table row or a live event needs."""
    steps = fix.get("planned_steps") or []
    return {
        "id": fix["id"],
        "key": fix["key"],
        "resource_id": resource_id(str(fix["key"])),
        "source": fix.get("source"),
        "policy": fix.get("policy"),
        "rule": fix.get("rule"),
        # Why a rules plan ran: its rung's turn, a backoff retry, or an operator's Fix now.
        "trigger": str((fix.get("plan") or {}).get("trigger") or "ladder"),
        "scenario": scenario_of(fix),
        "tools": [str(s.get("tool")) for s in steps],
        "root_cause": root_cause_text(fix.get("drifts") or [], str(fix.get("root_cause") or "")),
        "status": fix.get("status"),
        "outcome": fix.get("outcome"),
        # One word for a badge: the outcome once known, else the status (running, ...).
        "state": fix.get("outcome") or fix.get("status"),
        "dry_run": bool(fix.get("dry_run")),
        "message": fix.get("message") or "",
        "detected_at": fix.get("detected_at"),
        "finished_at": fix.get("finished_at"),
        "time_to_detect": fix.get("time_to_detect"),
        "time_to_recover": fix.get("time_to_recover"),
        # Set when a later controller carried on with a fix its first one left unfinished.
        "resumed_at": fix.get("resumed_at"),
        "drifted": [str(d.get("signal")) for d in fix.get("drifts") or []],
        "label": fix_label(fix),
    }


def fix_label(fix: Mapping[str, Any]) -> str:
    """``#12 fixed in 3.20 s``: a resource's last fix in a tile's or a card's footer (the page
    renders it, the script writes it again from a live event)."""
    state = fix.get("outcome") or fix.get("status")
    ttr = fix.get("time_to_recover")
    took = f" in {format_value(ttr, unit='duration')}" if ttr is not None else ""
    return f"#{fix['id']} {state}{took}"


def scenario_of(fix: Mapping[str, Any]) -> str:
    """``policy/rule`` for a rules plan, else the plan's source: how ``fix_stats`` groups."""
    if fix.get("policy") and fix.get("rule"):
        return f"{fix['policy']}/{fix['rule']}"
    return str(fix.get("rule") or fix.get("source") or "")


def evaluations(stats: Mapping[str, Any], fixes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How well fixing works: ``fix_stats`` plus time to recover over time, oldest first.

    ``fixes`` is the store's newest-first list; dry runs are left out as in ``fix_stats``.
    """
    series = [
        {
            "id": f["id"],
            "key": f["key"],
            "at": f["detected_at"],
            "time_to_detect": f["time_to_detect"],
            "time_to_recover": f["time_to_recover"],
            "outcome": f["outcome"],
            "status": f["status"],
            "scenario": scenario_of(f),
        }
        for f in reversed(fixes)
        if not f.get("dry_run")
    ]
    return {
        "summary": {k: v for k, v in stats.items() if k not in ("by_rule", "by_tool")},
        "by_scenario": dict(stats.get("by_rule") or {}),
        "by_tool": dict(stats.get("by_tool") or {}),
        "time_to_recover": series,
    }
