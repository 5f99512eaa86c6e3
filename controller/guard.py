"""The guard: admission of a plan before anything runs. Pure: no I/O, no clock.

Stage: *guard* in DESIGN.md. A plan runs only when every step names a tool the policy
allows, its parameters validate, it targets the resource that drifted, the rule is within its
attempts per window and past its cooldown, and a destructive step is approved. A global
dry-run admits nothing and says so. Every decision carries its reason, for the store.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.model import FixAttempt, Plan
from controller.quantities import format_duration
from controller.spec import HealingPolicy, Rule

FAILED_OUTCOMES = frozenset({"failed", "error", "interrupted"})


@dataclass(frozen=True)
class ToolFacts:
    """What the guard must know of a tool: its kinds, its effect, and how to check params."""

    kinds: tuple[str, ...]
    effect: str
    validate: Callable[[Mapping[str, Any]], object]


@dataclass(frozen=True)
class GuardDecision:
    """Admitted or not, and why, in one sentence an operator can act on."""

    admitted: bool
    reason: str
    dry_run: bool = False
    retry_after: float | None = None
    needs_approval: bool = False  # only an operator's approval is missing


@dataclass(frozen=True)
class Budget:
    """Whether a rule may fire now, and if not, why and when it may."""

    ok: bool
    reason: str
    retry_after: float | None = None
    exhausted: bool = False


def rule_budget(policy: str, rule: Rule, history: Sequence[FixAttempt], now: float) -> Budget:
    """Check a rule's attempts per window and cooldown against the resource's fix history."""
    mine = [
        a for a in history if a.policy == policy and a.rule == rule.name and a.source == "rules"
    ]
    in_window = [a for a in mine if now - a.started_at < rule.attempts.window]
    if len(in_window) >= rule.attempts.max:
        oldest = min(a.started_at for a in in_window)
        return Budget(
            False,
            f"rule {policy}/{rule.name} used {len(in_window)}/{rule.attempts.max} attempts "
            f"in {format_duration(rule.attempts.window)}",
            retry_after=oldest + rule.attempts.window - now,
            exhausted=True,
        )
    if mine and rule.cooldown:
        last = max(a.started_at for a in mine)
        left = last + rule.cooldown - now
        if left > 0:
            return Budget(
                False,
                f"rule {policy}/{rule.name} is cooling down for {left:.1f}s more",
                retry_after=left,
            )
    return Budget(True, "within budget")


def named_targets(policy: HealingPolicy | None) -> frozenset[str]:
    """The resources ``policy`` names by ``selector.names``: steps may target these too."""
    if policy is None:
        return frozenset()
    sel, ns = policy.spec.selector, policy.metadata.namespace
    return frozenset(
        f"{sel.kind}/{name}" if ns == "default" else f"{sel.kind}/{ns}/{name}" for name in sel.names
    )


def admit(
    plan: Plan,
    *,
    kind: str,
    policy: HealingPolicy | None,
    tools: Mapping[str, ToolFacts],
    history: Sequence[FixAttempt],
    now: float,
    dry_run: bool = False,
    approved: bool = False,
    targets: Collection[str] = (),
    allowed_tools: Collection[str] | None = None,
    max_steps: int | None = None,
) -> GuardDecision:
    """Decide whether ``plan`` may run on the resource ``plan.key`` of ``kind``.

    ``approved`` is an operator's approval of this very plan (from the dashboard); it
    satisfies the destructive-step rule and widens the allowlist to every tool of the kind.
    ``targets`` are the other resources a step may act on besides the one that drifted:
    those the policy names (``named_targets(policy)``); by default none.
    Pure: the caller passes the clock's value, the history and the tool facts.
    """
    if not plan.steps:
        return GuardDecision(False, "the plan has no steps")
    if max_steps is None:  # an escalation passes its own limit
        max_steps = policy.spec.max_steps if policy else 8
    if len(plan.steps) > max_steps:
        return GuardDecision(
            False, f"the plan has {len(plan.steps)} steps; at most {max_steps} are allowed"
        )
    if policy is None and not approved:
        return GuardDecision(
            False, f"no policy governs {plan.key}: only an operator-approved plan may run"
        )
    # An LLM's plan is held to the escalation's allowlist, not to the rules' tools.
    if allowed_tools is not None:
        allowed = set(allowed_tools)
    else:
        allowed = policy.spec.allowed_tools() if policy else set()
    for i, step in enumerate(plan.steps):
        where = f"step {i + 1} ({step.tool})"
        facts = tools.get(step.tool)
        if facts is None:
            return GuardDecision(False, f"{where}: no such tool")
        if step.tool not in allowed and not approved:
            names = ", ".join(sorted(allowed)) or "none"
            return GuardDecision(
                False, f"{where}: the policy does not allow this tool (allowed: {names})"
            )
        if step.target != plan.key and step.target not in targets:
            named = f" (the policy also names {', '.join(sorted(targets))})" if targets else ""
            return GuardDecision(
                False, f"{where}: targets {step.target}, but only {plan.key} drifted{named}"
            )
        # A key starts with its kind, so a step on another named resource is checked on its own.
        step_kind = kind if step.target == plan.key else step.target.split("/", 1)[0]
        if step_kind not in facts.kinds:
            return GuardDecision(
                False, f"{where}: acts on {', '.join(facts.kinds)}, not {step_kind}"
            )
        try:
            facts.validate(step.params)
        except Exception as exc:  # a pydantic ValidationError, worded for the reason column
            first = str(exc).splitlines()
            detail = "; ".join(line.strip() for line in first[1:3]) or str(exc)
            return GuardDecision(False, f"{where}: invalid parameters: {detail}")
        if facts.effect == "destructive" and not approved:
            auto = policy is not None and policy.spec.approval == "auto"
            if not auto:
                return GuardDecision(
                    False,
                    f"{where}: destructive and not approved (approval: operator)",
                    needs_approval=True,
                )
    if policy is not None and plan.source == "rules" and plan.rule is not None:
        rule = policy.spec.rule(plan.rule)
        if rule is None:
            return GuardDecision(False, f"policy {policy.name} has no rule {plan.rule}")
        budget = rule_budget(policy.name, rule, history, now)
        if not budget.ok:
            return GuardDecision(False, budget.reason, retry_after=budget.retry_after)
    if dry_run:
        return GuardDecision(False, "dry-run: the plan is recorded and nothing runs", dry_run=True)
    return GuardDecision(True, "admitted")
