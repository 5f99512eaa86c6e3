"""Running an admitted plan: journal it, act, verify, record the fix, judge shadow plans.

Stage: *act* and *verify* in docs/ARCHITECTURE.md. The fix row is opened before the first
step and closed whatever happens (a driver failing mid-fix included), so the store always
says what the controller did. The plans an LLM proposed in shadow mode for the same
incident are judged against the plan that ran instead.

A fix that a controller left unfinished (it crashed, was killed or shut down) is resumed by
the next one (``Executor.resume``) on the same fix row, from what its step journal says:
no step runs twice, and a step whose outcome is unknown holds back the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from driftmend.act import ToolInvoker, act
from driftmend.codec import plan_from_dict
from driftmend.desired import DesiredState
from driftmend.escalation.policy import shadow_agreement
from driftmend.metrics import Metrics
from driftmend.model import Health, Observation, Outcome, Plan
from driftmend.observer import Observer
from driftmend.planners.rules import root_cause
from driftmend.redaction import shown_spec
from driftmend.spec import Resource
from driftmend.store import Fix, Store
from driftmend.tools.base import Catalogue
from driftmend.verify import verify

log = logging.getLogger("driftmend.execution")

__all__ = ["UNKNOWN_STEP", "Executor", "FixRun"]


# A step that started and never finished, found so by a resume: its tool may have acted.
UNKNOWN_STEP = (
    "outcome unknown: the controller that ran this step stopped before it finished; not run again"
)


@dataclass(frozen=True)
class _Ending:
    """How the acting and verifying of a fix ended, before it is recorded."""

    outcome: Outcome
    message: str
    verified: bool
    after: Observation
    recovered_at: float | None


@dataclass(frozen=True)
class FixRun:
    """How one executed plan ended: its outcome, a message and the fix's id in the store."""

    outcome: Outcome
    message: str
    fix_id: int


class Executor:
    """Runs admitted plans, and resumes the ones a stopped controller left unfinished;
    everything with I/O is passed in."""

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
        cause = root_cause(plan.drifts) or plan.reasoning
        self._healing(resource, obs, plan.reasoning)
        fix_id = self._store.fix_records.begin_fix(
            resource.key, plan, obs.signals, fault_at, now, cause
        )
        log.info("fixing %s: %s -> %s", resource.key, cause, ", ".join(s.tool for s in plan.steps))
        ending = await self._act_and_verify(resource, plan, fix_id, obs)
        return self._close(resource, plan, fix_id, ending, fault_at, now)

    async def resume(self, resource: Resource, fix: Fix, note: str) -> FixRun | None:
        """Carry on with ``fix``, which a controller that stopped left ``interrupted``.

        The plan is read back from the fix; the journal says how far it got. Steps that
        finished are not run again, nor is one that started and never finished (its outcome
        is unknown: it is recorded so) and, then, nor any after it; the remaining steps run
        otherwise. Verification then runs as for a new fix, in a window from now, and the
        same fix is closed with ``note`` (why it was resumed) before its message. Returns
        None when another caller resumed it first. The caller holds the resource's lock.
        """
        now = self._clock()
        if not self._store.fix_records.resume_fix(fix.id, now, UNKNOWN_STEP):
            return None
        plan = plan_from_dict(fix.plan)
        unknown = [s for s in fix.steps if s.result is None]
        failed = next((s for s in fix.steps if s.result is not None and s.status != "ok"), None)
        obs = await self._look(resource, Observation(resource.key, now, fix.signals_before))
        self._healing(resource, obs, plan.reasoning)
        log.warning("resuming fix %d of %s (%s)", fix.id, resource.key, note)
        if failed is not None:
            # The plan had stopped at this step; only the closing of the fix was lost.
            ending = _Ending(Outcome.FAILED, f"{failed.tool} {failed.status}: {failed.error}",
                             False, obs, None)  # fmt: skip
        elif unknown:
            ending = await self._act_and_verify(resource, plan, fix.id, obs, run=False)
            held = ", ".join(f"{s.index} ({s.tool})" for s in unknown)
            note += f"; the outcome of step {held} is unknown, so no step was run again"
        else:
            first = 1 + max((s.index for s in fix.steps), default=-1)
            ending = await self._act_and_verify(resource, plan, fix.id, obs, first=first)
        ending = replace(ending, message=f"{note}: {ending.message}")
        return self._close(resource, plan, fix.id, ending, fix.fault_at, fix.detected_at)

    async def _act_and_verify(
        self,
        resource: Resource,
        plan: Plan,
        fix_id: int,
        obs: Observation,
        *,
        first: int = 0,
        run: bool = True,
    ) -> _Ending:
        """Run the plan's steps from ``first`` (none unless ``run``), then verify in a
        window from now. Never raises for a step or a driver failing."""
        acted_at = self._clock()
        try:
            if run:
                steps = await act(
                    plan, self._desired.resources, self._invoker(), self._store.fix_records,
                    fix_id, first=first,
                )  # fmt: skip
                for step in steps:
                    self._metrics.fix_step(step.step.tool, step.result.status.value)
                failed = next((s for s in steps if not s.result.ok), None)
                if failed is not None:
                    message = (
                        f"{failed.step.tool} {failed.result.status.value}: {failed.result.error}"
                    )
                    after = await self._observer.observe(resource)
                    return _Ending(Outcome.FAILED, message, False, after, None)
            check = await verify(
                resource,
                self._desired.policies,
                plan,
                self._observer.observe,
                self._clock,
                self._observer.pause(resource.key, self._sleep),
                since=acted_at,
            )
        except Exception as exc:  # a driver failing mid-fix: the record must still close
            log.exception("fix %d of %s broke off", fix_id, resource.key)
            message = f"broke off: {type(exc).__name__}: {exc}"
            return _Ending(Outcome.FAILED, message, False, obs, None)
        outcome = Outcome.FIXED if check.verified else Outcome.FAILED
        return _Ending(outcome, check.message, check.verified, check.observation or obs, check.at)

    def _healing(self, resource: Resource, obs: Observation, reasoning: str) -> None:
        """Record the resource as healing while a fix runs."""
        spec_json = shown_spec(resource)  # secret values never leave memory
        self._store.resource_records.upsert_resource(
            resource.key, resource.kind, spec_json, Health.HEALING, obs.signals, obs.at, reasoning
        )
        self._metrics.set_health(resource.key, resource.kind, Health.HEALING)

    async def _look(self, resource: Resource, fallback: Observation) -> Observation:
        """The resource as it is now; ``fallback`` when it cannot be seen."""
        try:
            return await self._observer.observe(resource)
        except Exception as exc:  # verification looks again; this is only the record's
            log.warning("could not observe %s before resuming its fix: %s", resource.key, exc)
            return fallback

    def _close(
        self,
        resource: Resource,
        plan: Plan,
        fix_id: int,
        ending: _Ending,
        fault_at: float,
        detected_at: float,
    ) -> FixRun:
        """Close the fix row, count it, judge the shadow plans, and end the fix's backoff."""
        key, recovered_at = resource.key, ending.recovered_at
        self._store.fix_records.finish_fix(
            fix_id, ending.outcome, ending.verified, ending.after.signals, self._clock(),
            recovered_at, ending.message,
        )  # fmt: skip
        ttr = (recovered_at - fault_at) if recovered_at is not None else None
        self._metrics.fix_finished(
            resource.kind, plan.source, ending.outcome.value, detected_at - fault_at, ttr
        )
        self._compare_shadow_plans(resource, plan, fix_id, since=fault_at)
        fixed = ending.outcome is Outcome.FIXED
        self._after_fix(key, fixed)
        if fixed:
            self._store.resource_records.set_needs_operator(key, None)
            log.info("fixed %s in %.2fs (fix %d)", key, ttr or 0.0, fix_id)
        return FixRun(ending.outcome, ending.message, fix_id)

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
