"""What became of an LLM interaction's plan, as the controller recorded it, and its list row.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftmend.dashboard.views.drifts import root_cause_text
from driftmend.dashboard.views.ids import resource_id
from driftmend.model import LlmDecision

__all__ = ["LLM_DECISIONS", "llm_outcome", "llm_summary", "pending_plan_id"]

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
