"""Drifts in words, every number in its signal's unit, and a fix's signals before and after.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from driftmend.formatting import format_value, unit_of
from driftmend.quantities import format_duration

__all__ = [
    "describe_drift",
    "drift_lines",
    "format_threshold",
    "root_cause_text",
    "signal_changes",
]

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
    unit = unit_of(signal)
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
