"""The rules planner: the declared remedy of the first rung of a policy's ladder that applies.

Stage: *plan*. Pure: a function of (resource, policies, diff result, fix history, now).

The ladder: the rules of the policies that select a resource, in order. A rung applies when
its conditions fired (a rule drift) and it still has budget. When the first rung has used its
attempts in its window (for instance its fix did not hold), the next rung that fired takes
over. When every rung that fired is out of budget, the resource needs an operator. A spec
drift that no rule watches also needs an operator: nothing declares how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from driftmend.diff import DiffResult, covered_signals
from driftmend.guard import rule_budget
from driftmend.model import Drift, FixAttempt, Plan, PlanStep
from driftmend.spec import HealingPolicy, Resource


class Verdict(StrEnum):
    """What the rules planner concluded."""

    IN_SYNC = "in-sync"
    PLAN = "plan"
    WAIT = "wait"
    NEEDS_OPERATOR = "needs-operator"


@dataclass(frozen=True)
class RulesDecision:
    """A plan to run, or why there is none and when to look again."""

    verdict: Verdict
    reason: str
    plan: Plan | None = None
    retry_after: float | None = None


def root_cause(drifts: Sequence[Drift]) -> str:
    """One sentence naming what is wrong, from the drifts' evidence."""
    if not drifts:
        return ""
    # A spec drift and the rule drift on the same signal say the same thing: say it once.
    seen: dict[str, str] = {}
    for d in drifts:
        seen.setdefault(d.signal, d.describe())
    return "; ".join(list(seen.values())[:3])


def plan_rules(
    resource: Resource,
    policies: Sequence[HealingPolicy],
    result: DiffResult,
    history: Sequence[FixAttempt],
    now: float,
) -> RulesDecision:
    """Choose the rung of the ladder to run now, or say why none."""
    if result.in_sync:
        return RulesDecision(Verdict.IN_SYNC, "in sync")
    by_rule = {(d.policy, d.rule): d for d in result.rule_drifts}
    selecting = [
        p
        for p in sorted(policies, key=lambda p: p.name)
        if p.selects(resource) and not p.spec.paused
    ]
    exhausted: list[str] = []
    soonest: float | None = None
    cooling: RulesDecision | None = None
    for policy in selecting:
        for rule in policy.spec.rules:
            drift = by_rule.get((policy.name, rule.name))
            if drift is None:
                continue
            budget = rule_budget(policy.name, rule, history, now)
            if budget.ok:
                drifts = (*result.spec_drifts, drift)
                return RulesDecision(
                    Verdict.PLAN,
                    f"rule {policy.name}/{rule.name} applies",
                    Plan(
                        key=resource.key,
                        steps=tuple(
                            PlanStep(s.tool, resource.key, dict(s.params)) for s in rule.do
                        ),
                        source="rules",
                        reasoning=f"{drift.describe()}: policy {policy.name} declares rule {rule.name}",
                        policy=policy.name,
                        rule=rule.name,
                        drifts=drifts,
                        verify_timeout=rule.verify.timeout,
                        verify_interval=rule.verify.interval,
                    ),
                )
            if not budget.exhausted:
                # A rung that still has attempts but is cooling down keeps its turn in its
                # own ladder: the ladder moves on only past rungs that have used their
                # attempts. Other policies' ladders are not held up by it.
                if cooling is None or (budget.retry_after or 0.0) < (cooling.retry_after or 0.0):
                    cooling = RulesDecision(
                        Verdict.WAIT, budget.reason, retry_after=budget.retry_after
                    )
                break
            exhausted.append(budget.reason)
            if budget.retry_after is not None:
                soonest = (
                    budget.retry_after if soonest is None else min(soonest, budget.retry_after)
                )
    if cooling is not None:
        return cooling
    if exhausted:
        return RulesDecision(
            Verdict.NEEDS_OPERATOR,
            "ladder exhausted: " + "; ".join(exhausted),
            retry_after=soonest,
        )
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
