"""Plans and drifts as JSON data, and back: what the store keeps and what an approval replays.

Stage: *plan* and *outputs* in docs/ARCHITECTURE.md's data flow. Pure: no I/O, only conversions between
the frozen values of ``driftmend.model`` and plain JSON-ready dicts. The store writes these
dicts; the loop rebuilds a parked plan with ``plan_from_dict`` before it runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from driftmend.model import Drift, DriftCondition, Plan, PlanSource, PlanStep, PlanTrigger

__all__ = ["drift_from_dict", "drift_to_dict", "plan_from_dict", "plan_to_dict"]

_PLAN_SOURCES: frozenset[str] = frozenset(get_args(PlanSource))
_PLAN_TRIGGERS: frozenset[str] = frozenset(get_args(PlanTrigger))


def drift_to_dict(drift: Drift) -> dict[str, Any]:
    """A drift as JSON-ready data; ``id`` and ``description`` are derived, for display."""
    return {
        "key": drift.key,
        "signal": drift.signal,
        "expected": drift.expected,
        "observed": drift.observed,
        "since": drift.since,
        "policy": drift.policy,
        "rule": drift.rule,
        "evidence": dict(drift.evidence),
        "conditions": [
            {"signal": c.signal, "operator": c.operator, "value": c.value, "for": c.hold}
            for c in drift.conditions
        ],
        "id": drift.id,
        "description": drift.describe(),
    }


def drift_from_dict(d: Mapping[str, Any]) -> Drift:
    """The inverse of ``drift_to_dict``; derived fields are ignored."""
    return Drift(
        key=str(d["key"]),
        signal=str(d["signal"]),
        expected=str(d["expected"]),
        observed=d.get("observed"),
        since=float(d["since"]),
        policy=d.get("policy"),
        rule=d.get("rule"),
        evidence=dict(d.get("evidence") or {}),
        conditions=tuple(
            DriftCondition(str(c["signal"]), str(c["operator"]), c["value"], float(c["for"]))
            for c in d.get("conditions") or ()
        ),
    )


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """A plan as JSON-ready data, enough for ``plan_from_dict`` to rebuild it exactly."""
    return {
        "key": plan.key,
        "source": plan.source,
        "reasoning": plan.reasoning,
        "policy": plan.policy,
        "rule": plan.rule,
        "steps": [
            {"tool": s.tool, "target": s.target, "params": dict(s.params)} for s in plan.steps
        ],
        "drifts": [drift_to_dict(d) for d in plan.drifts],
        "verify_timeout": plan.verify_timeout,
        "verify_interval": plan.verify_interval,
        "trigger": plan.trigger,
    }


def _trigger(value: object) -> PlanTrigger:
    """A stored plan's trigger; plans stored before triggers existed ran on the ladder."""
    if value is None:
        return "ladder"
    if value not in _PLAN_TRIGGERS:
        raise ValueError(
            f"unknown plan trigger {value!r}; expected one of {sorted(_PLAN_TRIGGERS)}"
        )
    return value  # type: ignore[return-value]  # checked against PlanTrigger just above


def plan_from_dict(d: Mapping[str, Any]) -> Plan:
    """Rebuild a ``Plan`` from ``plan_to_dict`` output (an approved pending plan, a replay).

    Raises ``ValueError`` for an unknown source: a plan of unknown origin must not run.
    """
    source = str(d["source"])
    if source not in _PLAN_SOURCES:
        raise ValueError(f"unknown plan source {source!r}; expected one of {sorted(_PLAN_SOURCES)}")
    return Plan(
        key=str(d["key"]),
        steps=tuple(
            PlanStep(
                tool=str(s["tool"]), target=str(s["target"]), params=dict(s.get("params") or {})
            )
            for s in d.get("steps") or ()
        ),
        source=source,  # type: ignore[arg-type]  # checked against PlanSource just above
        reasoning=str(d.get("reasoning") or ""),
        policy=d.get("policy"),
        rule=d.get("rule"),
        drifts=tuple(drift_from_dict(x) for x in d.get("drifts") or ()),
        verify_timeout=float(d.get("verify_timeout", 30.0)),
        verify_interval=float(d.get("verify_interval", 0.5)),
        trigger=_trigger(d.get("trigger")),
    )
