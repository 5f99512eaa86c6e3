"""The rules planner: the declared remedy of the first rung of a policy's ladder that applies.

Stage: *plan*. Pure: a function of (resource, policies, diff result, fix history, now).

The ladder: the rules of the policies that select a resource, in order. A rung applies when
its conditions fired (a rule drift) and it still has attempts in the current incident
(``driftmend.incidents``). When the first rung has used them (its fix did not hold), the
next rung that fired takes over, and a rung still timing its ``for`` gets its turn before
the ladder counts as exhausted. An exhausted ladder flags the resource needs-operator and,
unless its policy says ``onExhausted: hold``, keeps converging: its first rung that fired
runs again after a capped exponential backoff, for as long as the drift lasts. A spec drift
that no rule watches needs an operator: nothing declares how to fix it. An operator's Fix
now runs the first rung that fired (or is timing its ``for``), whatever its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from driftmend.diff import DiffResult, covered_signals
from driftmend.guard import rule_budget
from driftmend.incidents import current_incident, retry_turn
from driftmend.model import Drift, FixAttempt, Plan, PlanStep, PlanTrigger
from driftmend.spec import HealingPolicy, Resource, Rule


class Verdict(StrEnum):
    """What the rules planner concluded."""

    IN_SYNC = "in-sync"
    PLAN = "plan"
    WAIT = "wait"
    NEEDS_OPERATOR = "needs-operator"


@dataclass(frozen=True)
class RulesDecision:
    """A plan to run, or why there is none and when to look again.

    ``exhausted`` is set when a ladder has used every attempt of its rungs: the reason the
    resource needs an operator, which a backoff retry (a ``PLAN``) carries too.
    """

    verdict: Verdict
    reason: str
    plan: Plan | None = None
    retry_after: float | None = None
    exhausted: str | None = None


def root_cause(drifts: Sequence[Drift]) -> str:
    """One sentence naming what is wrong, from the drifts' evidence."""
    if not drifts:
        return ""
    # A spec drift and the rule drift on the same signal say the same thing: say it once.
    seen: dict[str, str] = {}
    for d in drifts:
        seen.setdefault(d.signal, d.describe())
    return "; ".join(list(seen.values())[:3])


@dataclass(frozen=True)
class _Exhausted:
    """A policy whose every rung that fired has used its attempts in this incident."""

    policy: HealingPolicy
    rule: Rule
    drift: Drift
    reasons: tuple[str, ...]
    incident: tuple[FixAttempt, ...]
    replenished_in: float | None  # when the first of its rungs gets an attempt back


def _rule_plan(
    resource: Resource,
    policy: HealingPolicy,
    rule: Rule,
    drifts: tuple[Drift, ...],
    reasoning: str,
    trigger: PlanTrigger = "ladder",
) -> Plan:
    return Plan(
        key=resource.key,
        steps=tuple(PlanStep(s.tool, resource.key, dict(s.params)) for s in rule.do),
        source="rules",
        reasoning=reasoning,
        policy=policy.name,
        rule=rule.name,
        drifts=drifts,
        verify_timeout=rule.verify.timeout,
        verify_interval=rule.verify.interval,
        trigger=trigger,
    )


def _soonest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def plan_rules(
    resource: Resource,
    policies: Sequence[HealingPolicy],
    result: DiffResult,
    history: Sequence[FixAttempt],
    now: float,
    *,
    by_operator: bool = False,
) -> RulesDecision:
    """Choose the rung of the ladder to run now, or say why none.

    ``by_operator`` is an operator's Fix now: the first rung that fired (or, when none did,
    the first still timing its ``for``) runs whatever its attempts, cooldown or backoff say.
    """
    if result.in_sync:
        return RulesDecision(Verdict.IN_SYNC, "in sync")
    by_rule = {(d.policy, d.rule): d for d in result.rule_drifts}
    selecting = [
        p
        for p in sorted(policies, key=lambda p: p.name)
        if p.selects(resource) and not p.spec.paused
    ]
    if by_operator:
        chosen = _operator_choice(resource, selecting, result, by_rule)
        if chosen is not None:
            return chosen
    exhausted: list[_Exhausted] = []
    cooling: RulesDecision | None = None
    turn_pending: float | None = None
    for policy in selecting:
        incident = tuple(current_incident(history, now, policy.spec.backoff.incident_gap))
        first: tuple[Rule, Drift] | None = None
        reasons: list[str] = []
        replenished_in: float | None = None
        pending: float | None = None
        blocked = False
        for rule in policy.spec.rules:
            drift = by_rule.get((policy.name, rule.name))
            budget = rule_budget(policy.name, rule, incident, now)
            if drift is None:
                left = result.waiting.get(f"{policy.name}/{rule.name}")
                if left is not None and not budget.exhausted:
                    pending = _soonest(pending, left)
                continue
            first = first or (rule, drift)
            if budget.ok:
                return RulesDecision(
                    Verdict.PLAN,
                    f"rule {policy.name}/{rule.name} applies",
                    _rule_plan(
                        resource, policy, rule, (*result.spec_drifts, drift),
                        f"{drift.describe()}: policy {policy.name} declares rule {rule.name}",
                    ),
                )  # fmt: skip
            if not budget.exhausted:
                # A rung that still has attempts but is cooling down keeps its turn in its
                # own ladder: the ladder moves on only past rungs that have used their
                # attempts. Other policies' ladders are not held up by it.
                if cooling is None or (budget.retry_after or 0.0) < (cooling.retry_after or 0.0):
                    cooling = RulesDecision(
                        Verdict.WAIT, budget.reason, retry_after=budget.retry_after
                    )
                blocked = True
                break
            reasons.append(budget.reason)
            replenished_in = _soonest(replenished_in, budget.retry_after)
        if blocked or first is None:
            continue
        if pending is not None:
            # A later rung whose conditions are timing their `for` gets its turn first.
            turn_pending = _soonest(turn_pending, pending)
            continue
        exhausted.append(
            _Exhausted(policy, first[0], first[1], tuple(reasons), incident, replenished_in)
        )
    if cooling is not None:
        return cooling
    if turn_pending is not None:
        return RulesDecision(
            Verdict.WAIT,
            "a rung has used its attempts; the next one is timing its `for`",
            retry_after=turn_pending,
        )
    if exhausted:
        return _after_exhaustion(resource, exhausted, result, now)
    covered = covered_signals(resource, policies)
    uncovered = [d for d in result.spec_drifts if d.signal not in covered]
    if uncovered:
        return RulesDecision(
            Verdict.NEEDS_OPERATOR,
            f"no HealingPolicy has a rule for {', '.join(d.signal for d in uncovered)} "
            f"({root_cause(uncovered)})",
        )
    waits = result.waiting
    if waits:
        left = min(waits.values())
        names = ", ".join(sorted(waits))
        return RulesDecision(
            Verdict.WAIT, f"conditions hold, waiting for their `for`: {names}", retry_after=left
        )
    # Spec drifts that rules watch but whose conditions did not fire (say a rule asks for
    # container.running == false for 5s): wait one interval for the rule to speak.
    return RulesDecision(
        Verdict.WAIT,
        f"drift watched by a rule that has not fired: {root_cause(result.spec_drifts)}",
        retry_after=1.0,
    )


def _operator_choice(
    resource: Resource,
    selecting: Sequence[HealingPolicy],
    result: DiffResult,
    by_rule: dict[tuple[str | None, str | None], Drift],
) -> RulesDecision | None:
    """An operator's Fix now: the first rung that fired, else the first timing its ``for``."""
    waiting: tuple[HealingPolicy, Rule] | None = None
    for policy in selecting:
        for rule in policy.spec.rules:
            drift = by_rule.get((policy.name, rule.name))
            if drift is not None:
                return RulesDecision(
                    Verdict.PLAN,
                    f"an operator asked for a fix: rule {policy.name}/{rule.name}",
                    _rule_plan(
                        resource, policy, rule, (*result.spec_drifts, drift),
                        f"an operator's Fix now: {drift.describe()}: policy {policy.name} "
                        f"declares rule {rule.name}",
                        "operator",
                    ),
                )  # fmt: skip
            if waiting is None and f"{policy.name}/{rule.name}" in result.waiting:
                waiting = (policy, rule)
    if waiting is None:
        return None
    policy, rule = waiting
    cause = root_cause(result.spec_drifts) or "its conditions hold"
    return RulesDecision(
        Verdict.PLAN,
        f"an operator asked for a fix: rule {policy.name}/{rule.name}, before its `for`",
        _rule_plan(
            resource, policy, rule, tuple(result.spec_drifts),
            f"an operator's Fix now: {cause}: policy {policy.name} declares rule {rule.name}",
            "operator",
        ),
    )  # fmt: skip


def _after_exhaustion(
    resource: Resource, exhausted: Sequence[_Exhausted], result: DiffResult, now: float
) -> RulesDecision:
    """Every ladder that fired is exhausted: flag it, and retry where the policy says so."""
    flag = "ladder exhausted: " + "; ".join(r for e in exhausted for r in e.reasons)
    replenished = None
    for e in exhausted:
        replenished = _soonest(replenished, e.replenished_in)
    retrying = [e for e in exhausted if e.policy.spec.on_exhausted == "retry"]
    if not retrying:
        return RulesDecision(
            Verdict.NEEDS_OPERATOR,
            f"{flag} (onExhausted: hold)",
            retry_after=replenished,
            exhausted=flag,
        )
    turns = [
        (retry_turn(e.policy.name, e.policy.spec.backoff, e.incident, now), e) for e in retrying
    ]
    turn, e = min(turns, key=lambda t: t[0].due_in)
    described = turn.describe(e.policy.spec.backoff)
    if turn.due_in <= 0:
        return RulesDecision(
            Verdict.PLAN,
            f"{flag}; {described} of rule {e.policy.name}/{e.rule.name}",
            _rule_plan(
                resource, e.policy, e.rule, (*result.spec_drifts, e.drift),
                f"{e.drift.describe()}: the ladder of policy {e.policy.name} is exhausted; "
                f"{described} of rule {e.rule.name}",
                "backoff",
            ),
            exhausted=flag,
        )  # fmt: skip
    return RulesDecision(
        Verdict.NEEDS_OPERATOR,
        f"{flag}; {described} of rule {e.policy.name}/{e.rule.name}",
        retry_after=_soonest(turn.due_in, replenished),
        exhausted=flag,
    )
