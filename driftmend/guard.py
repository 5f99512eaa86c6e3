"""The guard: admission of a plan before anything runs. Pure: no I/O, no clock.

Stage: *guard* in docs/ARCHITECTURE.md. A plan runs only when every step names a tool the policy
allows, its parameters validate, it targets the resource that drifted, the rule is within its
attempts per window and past its cooldown, and a destructive step is approved. A global
dry-run admits nothing and says so. Every decision carries its reason, for the store.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.incidents import current_incident, retry_turn
from driftmend.keys import ResourceKey
from driftmend.model import FixAttempt, LlmDecision, Plan
from driftmend.quantities import format_duration
from driftmend.spec import Attempts, HealingPolicy, Rule

# Planners whose plans count against a policy's ``escalate`` budget.
LLM_SOURCES = frozenset({"gemini", "openai", "replay"})


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
    over_budget: bool = False  # refused for the budget only (attempts or cooldown)

    @property
    def refusal(self) -> LlmDecision:
        """How a refusal is recorded: over its budget, or refused outright."""
        return LlmDecision.OVER_BUDGET if self.over_budget else LlmDecision.REJECTED


@dataclass(frozen=True)
class Budget:
    """Whether a rule may fire now, and if not, why and when it may."""

    ok: bool
    reason: str
    retry_after: float | None = None
    exhausted: bool = False


def _budget(
    mine: Sequence[FixAttempt],
    attempts: Attempts,
    cooldown: float,
    now: float,
    *,
    used: Callable[[int], str],
    cooling: Callable[[float], str],
) -> Budget:
    """``mine`` (earlier attempts) against ``attempts`` per window, then ``cooldown``."""
    in_window = [a for a in mine if now - a.started_at < attempts.window]
    if len(in_window) >= attempts.max:
        oldest = min(a.started_at for a in in_window)
        return Budget(
            False,
            used(len(in_window)),
            retry_after=oldest + attempts.window - now,
            exhausted=True,
        )
    if mine and cooldown:
        left = max(a.started_at for a in mine) + cooldown - now
        if left > 0:
            return Budget(False, cooling(left), retry_after=left)
    return Budget(True, "within budget")


def rule_budget(policy: str, rule: Rule, history: Sequence[FixAttempt], now: float) -> Budget:
    """Check a rule's attempts per window and cooldown against ``history``.

    Only the rung's own turns on the ladder count: a backoff retry or an operator's Fix now
    does not use its attempts. ``ladder_budget`` scopes ``history`` to the incident first.
    """
    window = format_duration(rule.attempts.window)
    return _budget(
        [
            a
            for a in history
            if a.policy == policy
            and a.rule == rule.name
            and a.source == "rules"
            and a.trigger == "ladder"
        ],
        rule.attempts,
        rule.cooldown,
        now,
        used=lambda n: (
            f"rule {policy}/{rule.name} used {n}/{rule.attempts.max} attempts in {window}"
        ),
        cooling=lambda left: f"rule {policy}/{rule.name} is cooling down for {left:.1f}s more",
    )


def ladder_budget(
    policy: HealingPolicy, rule: Rule, history: Sequence[FixAttempt], now: float
) -> Budget:
    """A rung's budget in the current incident: attempts of earlier incidents do not count."""
    incident = current_incident(history, now, policy.spec.backoff.incident_gap)
    return rule_budget(policy.name, rule, incident, now)


def backoff_budget(policy: HealingPolicy, history: Sequence[FixAttempt], now: float) -> Budget:
    """Whether ``policy``'s exhausted ladder may run its next backoff retry now."""
    if policy.spec.on_exhausted == "hold":
        return Budget(False, f"policy {policy.name} holds an exhausted ladder (onExhausted: hold)")
    backoff = policy.spec.backoff
    incident = current_incident(history, now, backoff.incident_gap)
    turn = retry_turn(policy.name, backoff, incident, now)
    if turn.due_in > 0:
        return Budget(
            False, f"policy {policy.name}: {turn.describe(backoff)}", retry_after=turn.due_in
        )
    return Budget(True, "the backoff has passed")


def escalation_budget(policy: HealingPolicy, history: Sequence[FixAttempt], now: float) -> Budget:
    """Check the LLM plans of ``policy`` against its ``escalate`` attempts and cooldown.

    An LLM plan is held to a budget like a rule: without one, a crash loop in ``auto`` mode
    would be restarted by the LLM until its tokens ran out.
    """
    esc = policy.spec.escalate
    if esc is None:
        return Budget(True, "within budget")
    window = format_duration(esc.attempts.window)
    return _budget(
        [a for a in history if a.policy == policy.name and a.source in LLM_SOURCES],
        esc.attempts,
        esc.cooldown,
        now,
        used=lambda n: f"policy {policy.name} ran {n}/{esc.attempts.max} LLM plans in {window}",
        cooling=lambda left: (
            f"policy {policy.name}'s LLM plans are cooling down for {left:.1f}s more"
        ),
    )


def named_targets(policy: HealingPolicy | None) -> frozenset[str]:
    """The resources ``policy`` names by ``selector.names``: steps may target these too."""
    if policy is None:
        return frozenset()
    sel, ns = policy.spec.selector, policy.metadata.namespace
    return frozenset(str(ResourceKey.of(sel.kind, name, ns)) for name in sel.names)


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

    Every step is checked (tool, allowlist, target, kind, parameters) before anything else
    is said, so a plan that waits for an operator's approval holds nothing the guard would
    refuse after it. Then the budget (by ``plan.trigger``: a rung's attempts in the incident
    and its cooldown, an exhausted ladder's backoff, nothing for an operator's Fix now; or
    the escalation's for an LLM plan), then the global dry-run, then approval: a destructive step needs the
    policy's ``approval: auto`` (or its rung's), and a rung with ``approval: operator``
    always waits for one.

    ``approved`` is an operator's approval of this very plan (from the dashboard); it
    satisfies the approval rule only. ``allowed_tools`` is an escalation's allowlist (an
    LLM plan is held to it, not to the rules' tools); ``targets`` are the other resources a
    step may act on besides the one that drifted: those the policy names
    (``named_targets(policy)``). Pure: the caller passes the clock's value, the history and
    the tool facts.
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
    if allowed_tools is not None:
        allowed: set[str] | None = set(allowed_tools)
    elif policy is not None:
        allowed = policy.spec.allowed_tools()
    else:
        allowed = None  # no policy: an operator's approved plan, any tool of the kind
    rule = policy.spec.rule(plan.rule) if policy is not None and plan.rule is not None else None
    if policy is not None and plan.source == "rules" and rule is None:
        return GuardDecision(False, f"policy {policy.name} has no rule {plan.rule}")
    # A rung's own approval speaks for the rung's plan only, never for an LLM plan that
    # answers the same drift: the LLM's destructive steps follow the policy's approval.
    rung_approval = rule.approval if rule is not None and plan.source == "rules" else None
    approval = rung_approval or (policy.spec.approval if policy is not None else "operator")
    awaiting: str | None = None
    if rung_approval == "operator":
        assert rule is not None
        awaiting = f"rule {rule.name} waits for an operator (approval: operator)"
    for i, step in enumerate(plan.steps):
        where = f"step {i + 1} ({step.tool})"
        facts = tools.get(step.tool)
        if facts is None:
            return GuardDecision(False, f"{where}: no such tool")
        if allowed is not None and step.tool not in allowed:
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
        if facts.effect == "destructive" and approval != "auto" and awaiting is None:
            awaiting = f"{where}: destructive and not approved (approval: operator)"
    if policy is not None and plan.source == "rules" and rule is not None:
        # An operator's Fix now is their decision: no budget speaks against it.
        if plan.trigger == "backoff":
            budget = backoff_budget(policy, history, now)
        elif plan.trigger == "ladder":
            budget = ladder_budget(policy, rule, history, now)
        else:
            budget = Budget(True, "an operator's Fix now")
        if not budget.ok:
            return GuardDecision(
                False, budget.reason, retry_after=budget.retry_after, over_budget=True
            )
    if policy is not None and plan.source in LLM_SOURCES:
        budget = escalation_budget(policy, history, now)
        if not budget.ok:
            return GuardDecision(
                False, budget.reason, retry_after=budget.retry_after, over_budget=True
            )
    if dry_run:
        return GuardDecision(False, "dry-run: the plan is recorded and nothing runs", dry_run=True)
    if awaiting is not None and not approved:
        return GuardDecision(False, awaiting, needs_approval=True)
    return GuardDecision(
        True, "admitted" if not approved else "admitted with an operator's approval"
    )
