"""What the dashboard shows, shaped from the store's records: pure functions, no I/O.

Stage: *outputs* in DESIGN.md. The routes read the store and the controller, then hand the
plain dicts they got to these functions: resource ids in URLs, which signals are charted per
kind, chart series, before/after signal tables, drifts in words, fix evaluations, and what
became of an LLM interaction's plan (as the controller recorded it). Keeping this pure lets
the unit tests pin every rule without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.keys import ResourceKey
from driftmend.model import LlmDecision, LogLine
from driftmend.quantities import format_duration
from driftmend.signals import SIGNALS

__all__ = [
    "CHARTED_KINDS",
    "HEALTH_LABELS",
    "LLM_DECISIONS",
    "NO_VALUE",
    "ChartSpec",
    "chart_signals",
    "charts_for",
    "describe_drift",
    "downsample",
    "drift_lines",
    "evaluations",
    "fix_summary",
    "format_threshold",
    "format_value",
    "key_of",
    "llm_outcome",
    "llm_summary",
    "log_dict",
    "pending_plan_id",
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
def resource_id(key: str) -> str:
    """The URL-safe id of a resource key: ``Container/shop`` -> ``Container.shop``."""
    parsed = ResourceKey.find(key)
    return parsed.url_id if parsed is not None else key.replace("/", ".")


def key_of(rid: str) -> str | None:
    """The key of a resource id (``Container.shop`` or ``Container/shop``), None if malformed."""
    parsed = ResourceKey.find(rid)
    return str(parsed) if parsed is not None else None


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
CHARTED_KINDS: tuple[str, ...] = tuple(_CHARTS)
"""The kinds whose tiles carry charts."""
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


# How a rule's operator reads before its threshold: "over 50 %".
_OPERATOR_WORDS = {
    ">": "over",
    ">=": "at or over",
    "<": "under",
    "<=": "at or under",
    "!=": "not",
}


def _observed_text(value: Any, signal: str) -> str:
    if isinstance(value, bool):  # as the controller words flags: "is false", not "is no"
        return str(value).lower()
    return "unknown" if value is None else format_value(value, signal=signal)


def format_threshold(value: Any, signal: str) -> str:
    """A threshold in its signal's unit, without trailing zeros: ``50 %``, ``10 s``, ``64 MiB``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    unit = _unit_of(signal)
    if unit == "ratio":
        return f"{value * 100:.4g} %"
    if unit in ("%", "s", "/min"):
        return f"{value:.4g} {unit}"
    return format_value(value, unit=unit) if unit == "bytes" else f"{value:g}"


def _condition_text(cond: Mapping[str, Any], observed: Any) -> str:
    """``redis.memory_used_ratio is 84.0 %, over 50 %``: the value, then the rule's limit."""
    signal = str(cond["signal"])
    text = f"{signal} is {_observed_text(observed, signal)}"
    value, op = cond["value"], str(cond["operator"])
    # For a flag, or an equality, the value says it all: "container.running is false".
    if not isinstance(value, bool) and op != "==":
        text += f", {_OPERATOR_WORDS.get(op, op)} {format_threshold(value, signal)}"
    if cond.get("for"):
        text += f" for {format_duration(float(cond['for']))}"
    return text


def describe_drift(drift: Mapping[str, Any]) -> str:
    """A stored drift in words, every number in its signal's unit.

    ``container.running is false, expected true`` (the spec's promise);
    ``redis.memory_used_ratio is 84.0 %, over 50 %`` (a rule's conditions, the other
    conditions' values read from the evidence).
    """
    signal = str(drift.get("signal", ""))
    observed = drift.get("observed")
    expected = str(drift.get("expected") or "")
    conditions = drift.get("conditions")  # a rule drift's conditions, as the store keeps them
    if conditions:
        evidence = drift.get("evidence") or {}
        parts = [
            _condition_text(
                c, observed if c["signal"] == signal else evidence.get(str(c["signal"]))
            )
            for c in conditions
        ]
        return "; ".join(parts)
    promise = re.match(r"^==\s*(true|false)$", expected.strip())
    if promise:
        return f"{signal} is {_observed_text(observed, signal)}, expected {promise.group(1)}"
    return f"{signal} is {_observed_text(observed, signal)}, expected {expected}"


def drift_lines(drifts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per signal: a spec drift and a rule drift on the same signal say the same
    thing ("container.running is false"), so they are merged; the line keeps the earliest
    ``since``, the merged evidence and the ``policy/rule`` of every rule that fired.

    The spec's wording wins over a rule's for the same signal: it says what should be.
    """
    groups: dict[str, dict[str, Any]] = {}
    for d in drifts:
        signal = str(d.get("signal", ""))
        rule = f"{d['policy']}/{d['rule']}" if d.get("policy") and d.get("rule") else None
        line = groups.get(signal)
        if line is None:
            line = groups[signal] = {
                "signal": signal,
                "text": describe_drift(d),
                "spec": rule is None,
                "since": d.get("since"),
                "evidence": dict(d.get("evidence") or {}),
                "rules": [],
            }
        else:
            if rule is None and not line["spec"]:
                line["text"], line["spec"] = describe_drift(d), True
            since = d.get("since")
            if since is not None and (line["since"] is None or since < line["since"]):
                line["since"] = since
            for name, value in (d.get("evidence") or {}).items():
                line["evidence"].setdefault(name, value)
        if rule is not None and rule not in line["rules"]:
            line["rules"].append(rule)
    return list(groups.values())


def root_cause_text(drifts: Iterable[Mapping[str, Any]], fallback: str = "") -> str:
    """The root-cause sentence: one line per drifted signal, at most three, values and
    thresholds in their units; ``fallback`` when there is no drift."""
    return "; ".join(line["text"] for line in drift_lines(drifts)[:3]) or fallback


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


# What became of an interaction's plan, as the controller recorded it (``set_llm_outcome``):
# decision -> (badge word, what it means). An admitted plan reads as its fix's outcome.
LLM_DECISIONS: dict[str, tuple[str, str]] = {d.value: (d.badge, d.label) for d in LlmDecision}


def pending_plan_id(interaction: Mapping[str, Any]) -> int | None:
    """The plan an interaction's plan was parked as, as the controller recorded it."""
    pid = interaction.get("pending_plan_id")
    return int(pid) if pid is not None else None


def llm_outcome(
    interaction: Mapping[str, Any],
    fix: Mapping[str, Any] | None = None,
    parked: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored outcome of one interaction: ``outcome`` (a badge word), ``outcome_label``,
    ``outcome_reason``, ``mode``, ``fix_id`` and, for a plan parked for approval, the
    ``pending_plan_id`` the controller recorded. ``fix`` is the fix of ``fix_id`` and ``parked``
    the parked plan, when known: a parked plan an operator (or a recovery) has since decided
    reads as that decision."""
    decision = interaction.get("decision")
    reason = str(interaction.get("reason") or "")
    fix_id = interaction.get("fix_id")
    if decision in LLM_DECISIONS:
        outcome, label = LLM_DECISIONS[str(decision)]
        if decision in ("admitted", "approved") and fix is not None:
            outcome = str(fix.get("outcome") or fix.get("status") or "running")
            label = f"ran as fix #{fix['id']}"
        agreement, compared = interaction.get("agreement"), interaction.get("compared_fix_id")
        if decision == "shadow" and agreement and compared:
            verb = {"agrees": "agrees with", "differs": "differs from"}.get(str(agreement))
            label += f"; {verb or str(agreement)} fix #{compared}, which ran"
    elif decision:
        outcome, label = str(decision), str(decision)
    elif interaction.get("error"):
        outcome, label = "error", "the planner failed"
    elif not interaction.get("plan"):
        outcome, label = "no-plan", "no usable plan"
    else:
        outcome, label = "planned", "planned; no outcome recorded yet"
    pending = pending_plan_id(interaction)
    if parked is not None and parked.get("status") not in (None, "pending"):
        outcome = str(parked["status"])
        by = f" by {parked['actor']}" if parked.get("actor") else ""
        label = f"parked as plan #{parked['id']}, then {outcome}{by}"
    return {
        "outcome": outcome,
        "outcome_label": label,
        "outcome_reason": reason or (interaction.get("error") or ""),
        "mode": interaction.get("mode"),
        "decision": decision,
        "fix_id": fix_id,
        "pending_plan_id": pending,
        "agreement": interaction.get("agreement"),
        "compared_fix_id": interaction.get("compared_fix_id"),
    }


def llm_summary(
    interaction: Mapping[str, Any],
    fix: Mapping[str, Any] | None = None,
    parked: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A list row: time, resource, root cause and outcome of one LLM interaction."""
    plan = interaction.get("plan") or {}
    drifts = plan.get("drifts") or []
    root = plan.get("reasoning") or root_cause_text(drifts)
    return {
        "id": interaction["id"],
        "key": interaction["key"],
        "resource_id": resource_id(str(interaction["key"])),
        "at": interaction["at"],
        "planner": interaction.get("planner"),
        "model": interaction.get("model"),
        "root_cause": root or (interaction.get("error") or ""),
        "steps": [str(s.get("tool")) for s in plan.get("steps") or []],
        "tokens_in": interaction.get("tokens_in"),
        "tokens_out": interaction.get("tokens_out"),
        "latency_s": interaction.get("latency_s"),
        "cost_usd": interaction.get("cost_usd"),
    } | llm_outcome(interaction, fix, parked)


# --- actors ----------------------------------------------------------------------------------

_ACTOR = re.compile(r"[^\w.@+-]+")


def sanitize_actor(name: str | None) -> str:
    """``dashboard:<name>`` for the audit log, the name reduced to a safe short word.

    The token is shared, so the name is what the operator says they are; it is recorded, not
    trusted, and kept short and plain so an audit row cannot carry markup or control bytes.
    """
    cleaned = _ACTOR.sub("-", (name or "").strip())[:40].strip("-")
    return f"dashboard:{cleaned}" if cleaned else "dashboard"
