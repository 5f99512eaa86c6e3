"""What one reconcile pass does, decided in pure code from what the pass read.

Stage: *plan* and *guard* of docs/ARCHITECTURE.md, between the reads and the writes of a
pass. The reconciler reads what it needs once (the diff, the resource's flags, its fix
history, its host), hands it over as ``PassFacts``, and this module answers with one step:

- ``triage`` -> ``Settle`` (nothing to run: in sync, waiting, paused, needs an operator),
  ``Escalate`` (the rules hand over to an LLM), or ``TryPlan`` (a rules plan for the guard);
- ``after_guard`` -> what the guard's decision on a rules plan means: ``Execute``, ``Park``
  (wait for an operator's approval), ``DryRun`` or a ``Settle`` (refused).

No I/O, no clock, no store: every branch of a pass is a unit test of these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftmend.diff import DiffResult
from driftmend.escalation.policy import escalation_policy
from driftmend.guard import GuardDecision
from driftmend.model import FixAttempt, Health, Outcome, Plan
from driftmend.planners.rules import RulesDecision, Verdict, plan_rules
from driftmend.spec import HealingPolicy, Resource

__all__ = [
    "HEALTH_OF",
    "DryRun",
    "Escalate",
    "Execute",
    "Park",
    "PassFacts",
    "Settle",
    "TryPlan",
    "after_guard",
    "policy_named",
    "triage",
]

# The health a resource shows after a pass that ended so.
HEALTH_OF: dict[Outcome, Health] = {
    Outcome.IN_SYNC: Health.HEALTHY,
    Outcome.WAITING: Health.DRIFTING,
    Outcome.FIXED: Health.HEALTHY,
    Outcome.FAILED: Health.DRIFTING,
    Outcome.REJECTED: Health.DRIFTING,
    Outcome.DRY_RUN: Health.DRIFTING,
    Outcome.NEEDS_OPERATOR: Health.NEEDS_OPERATOR,
    Outcome.PAUSED: Health.DRIFTING,
    Outcome.ERROR: Health.UNKNOWN,
}


@dataclass(frozen=True)
class PassFacts:
    """Everything a pass decides on, read once before deciding.

    ``needs_operator`` is the reason a resource waits for an operator (None: it does not);
    ``parked`` whether a plan of it waits for an operator's approval; ``host_down`` the key
    of the Container hosting a database or cache when that host is not running (its own
    policy heals it); ``by_operator`` an operator's Fix now, which runs the first rung that
    applies whatever its budget, even while healing is paused or the resource is flagged.
    """

    resource: Resource
    policies: Sequence[HealingPolicy]
    result: DiffResult
    history: Sequence[FixAttempt]
    now: float
    paused: bool = False
    needs_operator: str | None = None
    parked: bool = False
    host_down: str | None = None
    by_operator: bool = False


@dataclass(frozen=True)
class Settle:
    """End the pass with ``outcome``; ``flag_operator`` sets the needs-operator flag."""

    outcome: Outcome
    message: str
    requeue_after: float | None = None
    flag_operator: str | None = None


@dataclass(frozen=True)
class Escalate:
    """Hand the drift to the LLM of ``policy`` (``why``: what the rules concluded).

    ``record_only`` (a shadow policy beside a rules plan that runs): store what the LLM
    would have done, change nothing, and go on with ``then``.
    """

    policy: HealingPolicy
    why: str
    record_only: bool = False
    then: TryPlan | None = None


@dataclass(frozen=True)
class TryPlan:
    """Put the rules' ``plan`` through the guard; ``flag_operator`` first sets the
    needs-operator flag (a backoff retry of an exhausted ladder)."""

    plan: Plan
    flag_operator: str | None = None


@dataclass(frozen=True)
class Execute:
    """The guard admitted the plan: run it, then verify."""


@dataclass(frozen=True)
class Park:
    """Only an operator's approval is missing: park the plan (unless one for the same rule
    is parked already) and flag the resource with ``reason``."""

    reason: str


@dataclass(frozen=True)
class DryRun:
    """Dry-run mode: record the plan as a dry-run fix and run nothing."""

    reason: str


def triage(facts: PassFacts) -> Settle | Escalate | TryPlan:
    """The first decision of a pass: settle it, escalate it, or try the rules' plan.

    A resource flagged needs-operator still converges where its policy says ``retry``: an
    operator is told, and the ladder's retries go on with their backoff (a crash loop must
    not become an outage). It is not escalated again, and a parked plan holds it.
    """
    result = facts.result
    if result.in_sync:
        return Settle(Outcome.IN_SYNC, "in sync")
    if facts.host_down is not None:
        return Settle(
            Outcome.WAITING,
            f"its host {facts.host_down} is not running; the host's policy heals it",
            1.0,
        )
    if facts.paused and not facts.by_operator:
        return Settle(Outcome.PAUSED, "healing is paused for this resource")
    rules = plan_rules(
        facts.resource, facts.policies, result, facts.history, facts.now,
        by_operator=facts.by_operator,
    )  # fmt: skip
    if facts.needs_operator is not None and not facts.by_operator:
        return _flagged(facts, facts.needs_operator, rules)
    if rules.verdict is Verdict.WAIT:
        return Settle(Outcome.WAITING, rules.reason, rules.retry_after or 1.0)
    shadow: HealingPolicy | None = None
    policy = escalation_policy(facts.resource, facts.policies, result.drifts)
    esc = policy.spec.escalate if policy is not None else None
    if policy is not None and esc is not None and not facts.by_operator:
        hand_over = (
            rules.verdict is Verdict.NEEDS_OPERATOR
            or rules.exhausted is not None
            or esc.when == "always"
        )
        if hand_over and not (rules.verdict is Verdict.PLAN and esc.mode == "shadow"):
            return Escalate(policy, rules.reason)
        if hand_over:
            shadow = policy
    if rules.verdict is Verdict.NEEDS_OPERATOR:
        return Settle(
            Outcome.NEEDS_OPERATOR,
            rules.reason,
            rules.retry_after,
            flag_operator=rules.exhausted or rules.reason,
        )
    if rules.plan is None:  # an operator's Fix now when no rung applies: nothing to run
        return Settle(Outcome.NEEDS_OPERATOR, rules.reason, flag_operator=rules.reason)
    step = TryPlan(rules.plan, flag_operator=rules.exhausted)
    if shadow is not None:
        return Escalate(shadow, rules.reason, record_only=True, then=step)
    return step


def _flagged(facts: PassFacts, flag: str, rules: RulesDecision) -> Settle | TryPlan:
    """A pass over a resource that needs an operator: retry where the policy says so."""
    if not facts.parked and rules.plan is not None:
        policy = policy_named(facts.resource, facts.policies, rules.plan.policy)
        if policy is not None and policy.spec.on_exhausted == "retry":
            return TryPlan(rules.plan, flag_operator=rules.exhausted)
    # The flag's reason is kept fresh (a window that slid, a retry that ran): an operator
    # reads it to decide, and a stale "3/3 attempts in 5m" an hour later misleads.
    fresh = rules.exhausted if not facts.parked and rules.exhausted is not None else None
    shown = rules.reason if fresh is not None else flag
    return Settle(Outcome.NEEDS_OPERATOR, shown, rules.retry_after, flag_operator=fresh)


def after_guard(verdict: GuardDecision) -> Execute | Park | DryRun | Settle:
    """What the guard's decision on a rules plan means for the pass."""
    if verdict.dry_run:
        return DryRun(verdict.reason)
    if verdict.needs_approval:
        return Park(f"awaiting an operator's approval: {verdict.reason}")
    if not verdict.admitted:
        return Settle(Outcome.REJECTED, f"guard: {verdict.reason}", verdict.retry_after)
    return Execute()


def policy_named(
    resource: Resource, policies: Sequence[HealingPolicy], name: str | None
) -> HealingPolicy | None:
    """The policy called ``name`` in ``resource``'s namespace (policies select only their
    own namespace, and two namespaces may hold policies of the same name)."""
    ns = resource.metadata.namespace
    return next((p for p in policies if p.name == name and p.metadata.namespace == ns), None)
