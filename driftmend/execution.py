"""Running an admitted plan: journal it, act, verify, record the fix, judge shadow plans.

Stage: *act* and *verify* in docs/ARCHITECTURE.md. The fix row is opened before the first
step and closed whatever happens (a driver failing mid-fix included), so the store always
says what the controller did. The plans an LLM proposed in shadow mode for the same
incident are judged against the plan that ran instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from driftmend.act import ToolInvoker, act
from driftmend.codec import plan_from_dict
from driftmend.desired import DesiredState
from driftmend.escalation.policy import shadow_agreement
from driftmend.metrics import Metrics
from driftmend.model import Health, Observation, Outcome, Plan
from driftmend.observer import Observer
from driftmend.planners.rules import root_cause
from driftmend.spec import Resource
from driftmend.store import Store
from driftmend.tools.base import Catalogue
from driftmend.verify import verify

log = logging.getLogger("driftmend.execution")

__all__ = ["Executor", "FixRun"]


@dataclass(frozen=True)
class FixRun:
    """How one executed plan ended: its outcome, a message and the fix's id in the store."""

    outcome: Outcome
    message: str
    fix_id: int


class Executor:
    """Runs admitted plans; everything with I/O is passed in."""

    def __init__(
        self,
        *,
        desired: DesiredState,
        store: Store,
        metrics: Metrics,
        observer: Observer,
        catalogue: Catalogue,
        invoker: Callable[[], ToolInvoker],
        clock: Callable[[], float],
        after_fix: Callable[[str, bool], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._desired = desired
        self._store = store
        self._metrics = metrics
        self._observer = observer
        self._catalogue = catalogue
        self._invoker = invoker
        self._clock = clock
        self._after_fix = after_fix
        self._sleep = sleep

    async def execute(
        self, resource: Resource, plan: Plan, obs: Observation, fault_at: float, now: float
    ) -> FixRun:
        """Run an admitted plan: journal, act, verify, record. Never raises for a step or a
        driver failing: the fix then ends ``failed`` with what broke in its message."""
        key = resource.key
        cause = root_cause(plan.drifts) or plan.reasoning
        spec_json = resource.model_dump(mode="json", by_alias=True)
        self._store.resource_records.upsert_resource(
            key, resource.kind, spec_json, Health.HEALING, obs.signals, obs.at, plan.reasoning
        )
        self._metrics.set_health(key, resource.kind, Health.HEALING)
        fix_id = self._store.fix_records.begin_fix(key, plan, obs.signals, fault_at, now, cause)
        log.info("fixing %s: %s -> %s", key, cause, ", ".join(s.tool for s in plan.steps))
        recovered_at: float | None = None
        verified, after = False, obs
        acted_at = self._clock()
        try:
            steps = await act(
                plan, self._desired.resources, self._invoker(), self._store.fix_records, fix_id
            )
            for step in steps:
                self._metrics.fix_step(step.step.tool, step.result.status.value)
            failed = next((s for s in steps if not s.result.ok), None)
            if failed is not None:
                outcome, after = Outcome.FAILED, await self._observer.observe(resource)
                message = f"{failed.step.tool} {failed.result.status.value}: {failed.result.error}"
            else:
                check = await verify(
                    resource,
                    self._desired.policies,
                    plan,
                    self._observer.observe,
                    self._clock,
                    self._observer.pause(key, self._sleep),
                    since=acted_at,
                )
                verified, after, recovered_at = check.verified, check.observation or obs, check.at
                outcome = Outcome.FIXED if verified else Outcome.FAILED
                message = check.message
        except Exception as exc:  # a driver failing mid-fix: the record must still close
            log.exception("fix %d of %s broke off", fix_id, key)
            outcome, message = Outcome.FAILED, f"broke off: {type(exc).__name__}: {exc}"
        self._store.fix_records.finish_fix(
            fix_id, outcome, verified, after.signals, self._clock(), recovered_at, message
        )
        ttr = (recovered_at - fault_at) if recovered_at is not None else None
        self._metrics.fix_finished(resource.kind, plan.source, outcome.value, now - fault_at, ttr)
        self._compare_shadow_plans(resource, plan, fix_id, since=fault_at)
        fixed = outcome is Outcome.FIXED
        self._after_fix(key, fixed)
        if fixed:
            self._store.resource_records.set_needs_operator(key, None)
            log.info("fixed %s in %.2fs (fix %d)", key, ttr or 0.0, fix_id)
        return FixRun(outcome, message, fix_id)

    def _compare_shadow_plans(
        self, resource: Resource, plan: Plan, fix_id: int, *, since: float
    ) -> None:
        """Judge the shadow plans proposed for this incident (since the fault) against the
        plan that was run instead."""
        if plan.source != "rules" and plan.source != "operator":
            return
        for shadow in self._store.llm_records.shadow_plans_to_compare(resource.key, since):
            verdict = shadow_agreement(plan_from_dict(shadow["plan"]), plan, self._catalogue)
            self._store.llm_records.set_shadow_agreement(shadow["id"], verdict, fix_id)
            self._metrics.shadow_compared(str(shadow["plan"].get("policy") or "-"), verdict)
