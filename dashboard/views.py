"""What the dashboard shows, shaped from the store's records: pure functions, no I/O.

Stage: *outputs* in DESIGN.md. The routes read the store and the controller, then hand the
plain dicts they got to these functions: resource ids in URLs, which signals are charted per
kind, chart series, before/after signal tables, fix evaluations, and the links between an
LLM interaction, the guard's verdict on its plan and the fix that ran it. Keeping this pure
lets the unit tests pin every rule without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.model import LogLine
from controller.signals import SIGNALS

__all__ = [
    "HEALTH_LABELS",
    "NO_VALUE",
    "ChartSpec",
    "chart_signals",
    "charts_for",
    "describe_drift",
    "downsample",
    "evaluations",
    "fix_summary",
    "format_value",
    "key_of",
    "llm_links",
    "llm_summary",
    "log_dict",
    "resource_id",
    "resource_summary",
    "root_cause_text",
    "sanitize_actor",
    "scenario_of",
    "signal_changes",
    "signal_units",
    "up_state",
]

# --- resource ids in URLs ------------------------------------------------------------------

# A key is ``Kind/name`` or ``Kind/namespace/name``. Kinds are identifiers and names and
# namespaces are DNS-1123 labels, so none of them holds a dot: replacing each ``/`` with ``.``
# gives a single URL path segment that maps back without ambiguity (``Container.shop``).
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){1,2}$")


def resource_id(key: str) -> str:
    """The URL-safe id of a resource key: ``Container/shop`` -> ``Container.shop``."""
    return key.replace("/", ".")


def key_of(rid: str) -> str | None:
    """The key of a resource id (``Container.shop`` or ``Container/shop``), None if malformed."""
    candidate = rid.replace("/", ".")
    if not _ID.match(candidate):
        return None
    return candidate.replace(".", "/")


# --- health ---------------------------------------------------------------------------------

HEALTH_LABELS: dict[str, str] = {
    "healthy": "Healthy",
    "drifting": "Drifting",
    "healing": "Healing",
    "needs-operator": "Needs operator",
    "unknown": "Unknown",
}
"""The words shown next to each health colour: colour alone would not reach everyone."""


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
        "health_label": HEALTH_LABELS.get(str(row["health"]), str(row["health"])),
        "up": up_state(str(row["kind"]), row.get("signals") or {}),
        "message": row.get("message") or "",
        "paused": bool(row.get("paused")),
        "needs_operator": bool(row.get("needs_operator")),
        "needs_operator_reason": row.get("needs_operator_reason"),
        "observed_at": row.get("observed_at"),
        "signals": dict(row.get("signals") or {}),
        "last_fix": None if not last else fix_summary(last),
    }


# --- charts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartSpec:
    """One charted signal: its name, a short title and how its values read."""

    signal: str
    title: str
    unit: str  # "%", "bytes", "ratio", "s", "/min" or ""


_CHARTS: dict[str, tuple[ChartSpec, ...]] = {
    "Container": (
        ChartSpec("container.cpu_percent", "CPU", "%"),
        ChartSpec("container.memory_bytes", "Memory", "bytes"),
    ),
    "PostgresDatabase": (
        ChartSpec("postgres.connections_used_ratio", "Connections used", "ratio"),
        ChartSpec("postgres.longest_query_seconds", "Longest query", "s"),
    ),
    "RedisCache": (
        ChartSpec("redis.memory_used_ratio", "Memory used", "ratio"),
        ChartSpec("redis.memory_used_bytes", "Memory", "bytes"),
    ),
}
_ERRORS_CHART = ChartSpec("logs.errors_per_minute", "Log errors", "/min")
# Booleans the availability strip reads, per kind.
_UP_SIGNALS: dict[str, tuple[str, ...]] = {
    "Container": ("container.running", "container.healthy"),
    "PostgresDatabase": ("postgres.up",),
    "RedisCache": ("redis.up",),
}


def charts_for(kind: str, *, with_errors: bool = False) -> tuple[ChartSpec, ...]:
    """The key signals charted for a resource of ``kind`` (CPU and memory for a Container)."""
    charts = _CHARTS.get(kind, ())
    return (*charts, _ERRORS_CHART) if with_errors else charts


def chart_signals(kind: str) -> list[str]:
    """Every signal the charts and the availability strip of ``kind`` need."""
    names = [c.signal for c in charts_for(kind, with_errors=True)]
    return names + list(_UP_SIGNALS.get(kind, ()))


def downsample(samples: Sequence[Mapping[str, Any]], kind: str, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` samples, evenly spread, always keeping the newest one and every
    sample where availability changed (an outage of one sample must not vanish from a chart).
    """
    if limit <= 0:
        return []
    if len(samples) <= limit:
        return [dict(s) for s in samples]
    keep: set[int] = {len(samples) - 1}
    previous: str | None = None
    for i, s in enumerate(samples):
        state = up_state(kind, s.get("signals") or {})
        if state != previous:
            keep.add(i)
            if i > 0:
                keep.add(i - 1)  # the last sample of the old state, so the edge is drawn
        previous = state
    budget = max(limit - len(keep), 0)
    if budget:
        stride = len(samples) / budget
        keep.update(min(int(j * stride), len(samples) - 1) for j in range(budget))
    chosen = sorted(keep)
    if len(chosen) > limit:  # more transitions than room: keep them evenly, newest included
        stride = len(chosen) / limit
        chosen = sorted({chosen[min(int(j * stride), len(chosen) - 1)] for j in range(limit)})
        if chosen[-1] != len(samples) - 1:
            chosen[-1] = len(samples) - 1
    return [dict(samples[i]) for i in chosen]


# --- values ----------------------------------------------------------------------------------


def _unit_of(signal: str) -> str:
    info = SIGNALS.get(signal)
    if info is None:
        return ""
    if signal.endswith("_ratio"):
        return "ratio"
    return info.unit


NO_VALUE = "\u2013"
"""An en dash: what a table shows for a value that was not measured."""


def signal_units() -> dict[str, str]:
    """The display unit of every catalogued signal (the script formats live values with it)."""
    return {name: _unit_of(name) for name in SIGNALS}


def format_value(value: Any, unit: str | None = None, signal: str | None = None) -> str:
    """A signal value as people read it: ``yes``/``no``, ``12.5 %``, ``48.2 MiB``, ``1.2 s``.

    ``unit`` defaults to the signal catalogue's. The dashboard's script has the same rules
    (``formatValue``) for values that arrive live.
    """
    if unit is None:
        unit = _unit_of(signal or "")
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return NO_VALUE
    if unit == "bytes":
        size = float(value)
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(size) < 1024 or suffix == "GiB":
                return f"{size:.0f} {suffix}" if suffix == "B" else f"{size:.1f} {suffix}"
            size /= 1024
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    if unit == "/min":
        return f"{value:g} /min"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def describe_drift(drift: Mapping[str, Any]) -> str:
    """A stored drift in words, its value formatted: ``redis.memory_used_ratio is 84.0 %,
    expected < 0.5`` rather than sixteen digits of a float."""
    signal = str(drift.get("signal", ""))
    observed = drift.get("observed")
    if isinstance(observed, bool):  # as the controller words it: "is false", not "is no"
        shown = str(observed).lower()
    else:
        shown = format_value(observed, signal=signal) if observed is not None else "unknown"
    return f"{signal} is {shown}, expected {drift.get('expected', '')}"


def root_cause_text(drifts: Iterable[Mapping[str, Any]], fallback: str = "") -> str:
    """The root-cause sentence as ``planners.rules.root_cause`` builds it (one drift per
    signal, at most three), with values formatted; ``fallback`` when there is no drift."""
    seen: dict[str, str] = {}
    for d in drifts:
        seen.setdefault(str(d.get("signal", "")), describe_drift(d))
    return "; ".join(list(seen.values())[:3]) or fallback


def signal_changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    first: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Rows of (signal, before, after, changed) for a fix: the drifted signals ``first``,
    then the ones that changed, then the rest, each group by name."""
    before, after = before or {}, after or {}
    wanted = list(dict.fromkeys(first))
    names = sorted(set(before) | set(after))
    rank = {name: i for i, name in enumerate(wanted)}
    rows = [
        {
            "signal": name,
            "before": before.get(name),
            "after": after.get(name),
            "changed": name in after and before.get(name) != after.get(name),
            "drifted": name in rank,
        }
        for name in names
    ]
    rows.sort(
        key=lambda r: (
            0 if r["drifted"] else 1 if r["changed"] else 2,
            rank.get(str(r["signal"]), 0),
            r["signal"],
        )
    )
    return rows


# --- fixes -----------------------------------------------------------------------------------


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
        "drifted": [str(d.get("signal")) for d in fix.get("drifts") or []],
    }


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


# --- logs ------------------------------------------------------------------------------------


def log_dict(key: str, line: LogLine) -> dict[str, Any]:
    """A log line as JSON. The message is untrusted text: it is only ever shown as text."""
    return {
        "key": key,
        "resource_id": resource_id(key),
        "at": line.at,
        "level": line.level,
        "source": line.source,
        "message": line.message,
    }


# --- LLM interactions ------------------------------------------------------------------------


def _steps_of(plan: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    if not plan:
        return []
    return [
        (str(s.get("tool")), str(s.get("target")), repr(sorted((s.get("params") or {}).items())))
        for s in plan.get("steps") or []
    ]


def llm_links(
    interaction: Mapping[str, Any],
    guard_decisions: Sequence[Mapping[str, Any]],
    fixes: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The guard's verdict on an interaction's plan and the fix that ran it, if any.

    The store does not link them, so they are matched: same resource, same plan source and
    the same steps, the earliest one at or after the interaction (a second of slack for
    clocks). ``guard_decisions`` and ``fixes`` are the resource's own, in any order.
    """
    plan = interaction.get("plan")
    if not plan:
        return None, None
    at = float(interaction["at"]) - 1.0
    source, steps = plan.get("source"), _steps_of(plan)
    decision = min(
        (
            g
            for g in guard_decisions
            if g["key"] == interaction["key"]
            and g["source"] == source
            and g["at"] >= at
            and _steps_of(g.get("plan")) == steps
        ),
        key=lambda g: (g["at"], g["id"]),
        default=None,
    )
    fix = min(
        (
            f
            for f in fixes
            if f["key"] == interaction["key"]
            and f["source"] == source
            and f["detected_at"] >= at
            and _steps_of(f.get("plan")) == steps
        ),
        key=lambda f: (f["detected_at"], f["id"]),
        default=None,
    )
    return (dict(decision) if decision else None), (dict(fix) if fix else None)


def llm_summary(
    interaction: Mapping[str, Any],
    decision: Mapping[str, Any] | None = None,
    fix: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A list row: time, resource, root cause and outcome of one LLM interaction."""
    plan = interaction.get("plan") or {}
    drifts = plan.get("drifts") or []
    root = plan.get("reasoning") or "; ".join(str(d.get("description", "")) for d in drifts)
    if interaction.get("error"):
        outcome = "error"
    elif not plan:
        outcome = "no plan"
    elif fix is not None:
        outcome = str(fix.get("outcome") or fix.get("status") or "running")
    elif decision is not None:
        outcome = "admitted" if decision.get("admitted") else "rejected"
    else:
        outcome = "planned"
    return {
        "id": interaction["id"],
        "key": interaction["key"],
        "resource_id": resource_id(str(interaction["key"])),
        "at": interaction["at"],
        "planner": interaction.get("planner"),
        "model": interaction.get("model"),
        "root_cause": root or (interaction.get("error") or ""),
        "outcome": outcome,
        "steps": [str(s.get("tool")) for s in plan.get("steps") or []],
        "tokens_in": interaction.get("tokens_in"),
        "tokens_out": interaction.get("tokens_out"),
        "latency_s": interaction.get("latency_s"),
        "fix_id": None if fix is None else fix.get("id"),
    }


# --- actors ----------------------------------------------------------------------------------

_ACTOR = re.compile(r"[^\w.@+-]+")


def sanitize_actor(name: str | None) -> str:
    """``dashboard:<name>`` for the audit log, the name reduced to a safe short word.

    The token is shared, so the name is what the operator says they are; it is recorded, not
    trusted, and kept short and plain so an audit row cannot carry markup or control bytes.
    """
    cleaned = _ACTOR.sub("-", (name or "").strip())[:40].strip("-")
    return f"dashboard:{cleaned}" if cleaned else "dashboard"
