"""Verify: observe again until the drifts a fix addressed have cleared, or the answer is known.

Stage: *verify* in docs/ARCHITECTURE.md. "Cleared" means the fired rule's conditions no longer all hold
and the spec promises hold again (the process runs, the health check passes, the database
answers). The ``for`` windows do not apply here: a fix is judged on what is seen now.

Verification ends as soon as its answer is known, not at the next tick: the wait between
two observations (``pause``) returns early when the runtime reports an event on the
resource (an exit, a health change, a first passing probe), and a Container whose replica
exited after the fix began has failed at once (``exited_since``), whatever the timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from driftmend.diff import diff, spec_expectations
from driftmend.model import Observation, Plan
from driftmend.spec import Container, HealingPolicy, Resource


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


def exited_since(resource: Resource, obs: Observation, since: float) -> str | None:
    """Why a Container is down because a replica exited at or after ``since``; else None. Pure.

    A runtime never starts a replica on its own, so one that exits after the fix began
    (its restart reported it alive) will not come back within the verify timeout: the fix
    has failed, and waiting for the timeout would only delay the next attempt.
    """
    if not isinstance(resource, Container) or obs.get("container.running") is not False:
        return None
    raw = obs.facts.get("last_exit_at")
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None
    if at < since:
        return None
    reason = obs.facts.get("last_exit_reason", "exited")
    return f"a replica exited {max(0.0, at - since):.2f}s after the fix began ({reason})"


async def verify(
    resource: Resource,
    policies: Sequence[HealingPolicy],
    plan: Plan,
    observe: Callable[[Resource], Awaitable[Observation]],
    clock: Callable[[], float],
    pause: Callable[[float], Awaitable[None]],
    *,
    since: float | None = None,
) -> Verification:
    """Observe until cleared, failed (a replica exited at or after ``since``) or
    ``plan.verify_timeout``; between two observations ``pause(plan.verify_interval)``,
    which may return early when something changed."""
    deadline = clock() + plan.verify_timeout
    last: Observation | None = None
    while True:
        last = await observe(resource)
        if cleared(resource, policies, plan, last):
            return Verification(True, last, last.at, "drift cleared")
        died = exited_since(resource, last, since) if since is not None else None
        if died is not None:
            return Verification(False, last, None, f"failed: {died}")
        if clock() >= deadline:
            remaining = diff(resource, policies, last, {}).drifts
            what = "; ".join(d.describe() for d in remaining) or "the rule's conditions still hold"
            return Verification(
                False, last, None, f"not cleared after {plan.verify_timeout:g}s: {what}"
            )
        await pause(plan.verify_interval)
