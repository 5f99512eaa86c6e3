"""Verify: observe again until the drifts a fix addressed have cleared, or the deadline passes.

Stage: *verify* in docs/ARCHITECTURE.md. "Cleared" means the fired rule's conditions no longer all hold
and the spec promises hold again (the process runs, the health check passes, the database
answers). The ``for`` windows do not apply here: a fix is judged on what is seen now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from driftmend.diff import diff, spec_expectations
from driftmend.model import Observation, Plan
from driftmend.spec import HealingPolicy, Resource


@dataclass(frozen=True)
class Verification:
    """Whether the fix held, the last observation, and when it was seen to hold."""

    verified: bool
    observation: Observation | None
    at: float | None
    message: str


def cleared(
    resource: Resource, policies: Sequence[HealingPolicy], plan: Plan, obs: Observation
) -> bool:
    """True when nothing the plan addressed is still wrong in ``obs``. Pure."""
    result = diff(resource, policies, obs, {})
    if result.spec_drifts:
        return False
    if any(obs.get(signal) is not want for signal, want in spec_expectations(resource, obs)):
        return False  # a promise not yet known to hold (no health probe passed yet)
    if plan.policy is None or plan.rule is None:
        return True
    fired = {(d.policy, d.rule) for d in result.rule_drifts}
    return (
        plan.policy,
        plan.rule,
    ) not in fired and f"{plan.policy}/{plan.rule}" not in result.waiting


async def verify(
    resource: Resource,
    policies: Sequence[HealingPolicy],
    plan: Plan,
    observe: Callable[[Resource], Awaitable[Observation]],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> Verification:
    """Poll ``observe`` every ``plan.verify_interval`` until cleared or ``plan.verify_timeout``."""
    deadline = clock() + plan.verify_timeout
    last: Observation | None = None
    while True:
        last = await observe(resource)
        if cleared(resource, policies, plan, last):
            return Verification(True, last, last.at, "drift cleared")
        if clock() >= deadline:
            remaining = diff(resource, policies, last, {}).drifts
            what = "; ".join(d.describe() for d in remaining) or "the rule's conditions still hold"
            return Verification(
                False, last, None, f"not cleared after {plan.verify_timeout:g}s: {what}"
            )
        await sleep(plan.verify_interval)
