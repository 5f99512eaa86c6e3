"""Operator actions: Fix now, pause and resume, approve or reject a parked plan, ask the LLM.

Stage: the operator's entry into the loop (docs/ARCHITECTURE.md, "Operator actions"). The
dashboard and the CLI call these through the ``Operations`` protocol of
``driftmend.dashboard.dependencies``. Every action is recorded with its actor, waits its turn
under the resource's lock (a worker may be fixing it right now), and goes through the same
guard, act and verify as the controller's own plans: approval answers "may this run?", it
does not widen what may run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from driftmend.admission import Admission
from driftmend.codec import plan_from_dict, plan_to_dict
from driftmend.decision import policy_named
from driftmend.desired import DesiredState
from driftmend.diff import diff
from driftmend.errors import PermanentError
from driftmend.escalation.handling import ANALYZE, EscalationHandler
from driftmend.escalation.policy import allowed_tools, escalation_policy
from driftmend.execution import Executor
from driftmend.logs import LogAccumulator
from driftmend.model import LlmDecision, Outcome, PendingStatus, ReconcileResult
from driftmend.observer import Observer
from driftmend.queue import WorkQueue
from driftmend.reconciler import Reconciler
from driftmend.spec import Resource
from driftmend.store import Store
from driftmend.tools.base import Catalogue

__all__ = ["Operations"]


class Operations:
    """What an operator can ask of the controller; everything it touches is passed in."""

    def __init__(
        self,
        *,
        desired: DesiredState,
        store: Store,
        queue: WorkQueue,
        reconciler: Reconciler,
        reconcile: Callable[..., Awaitable[ReconcileResult]],
        lock: Callable[[str], AbstractAsyncContextManager[Any]],
        observer: Observer,
        admission: Admission,
        executor: Executor,
        escalation: EscalationHandler,
        catalogue: Catalogue,
        logs: LogAccumulator,
        clock: Callable[[], float],
        standby: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._desired = desired
        self._standby = standby
        self.logs = logs
        self._store = store
        self._queue = queue
        self._reconciler = reconciler
        self._reconcile = reconcile
        self._lock = lock
        self._observer = observer
        self._admission = admission
        self._executor = executor
        self._escalation = escalation
        self._catalogue = catalogue
        self._clock = clock

    @property
    def standby(self) -> str | None:
        """Why this replica takes no action now (an operator standby), None when it acts."""
        return self._standby()

    @property
    def resources(self) -> Mapping[str, Resource]:
        """The declared resources by key, as the dashboard lists them."""
        return self._desired.resources

    @property
    def llm_ready(self) -> bool:
        """True when some LLM planner is configured (the dashboard's Ask-the-LLM button)."""
        return self._escalation.escalator.ready

    async def trigger_fix(
        self, key: str, actor: str, detail: Mapping[str, Any] | None = None
    ) -> ReconcileResult:
        """The Fix button: forget needs-operator and backoff, and reconcile ``key`` now,
        running its ladder even while its healing is paused. ``detail`` goes with the
        recorded action (a retry names the fix it retries)."""
        self._desired.require(key)
        self._store.audit_records.record_action(
            key, "fix", actor, dict(detail or {}), self._clock()
        )
        self._store.resource_records.set_needs_operator(key, None)
        self._queue.forget(key)
        return await self._reconcile(key, by_operator=True)

    def set_paused(self, key: str, paused: bool, actor: str) -> None:
        """Pause or resume healing of ``key`` (observation goes on)."""
        self._desired.require(key)
        self._store.resource_records.set_paused(key, paused)
        self._store.audit_records.record_action(
            key, "pause" if paused else "resume", actor, {}, self._clock()
        )
        self._queue.add(key)

    async def approve_plan(self, plan_id: int, actor: str) -> ReconcileResult:
        """Run a pending plan with an operator's approval, through the guard, act and verify.

        The plan is judged when its turn comes under the resource's lock: by the guard, with
        the fix history as it is then, and against the world as it is then. When the drift
        it was proposed for is over (another fix came first, or it healed), it is superseded
        instead of run. A plan an operator asked the LLM for (``analyze``) runs whatever the
        drift.
        """
        pending = self._store.pending_records.pending_plan(plan_id)
        if pending is None:
            raise PermanentError(f"no pending plan {plan_id}")
        plan = plan_from_dict(pending["plan"])
        resource = self._desired.require(plan.key)
        approved_at = self._clock()
        if not self._store.pending_records.set_pending_status(
            plan_id, PendingStatus.APPROVED, actor, approved_at, expected=PendingStatus.PENDING
        ):
            raise PermanentError(f"plan {plan_id} is {pending['status']}, not pending")
        self._store.audit_records.record_action(
            plan.key, "approve", actor, {"plan_id": plan_id}, approved_at
        )
        async with self._lock(plan.key):
            now = self._clock()
            obs = await self._observer.observe(resource)
            if pending.get("origin") != "asked":
                current = diff(
                    resource, self._desired.policies, obs, self._reconciler.memory.get(plan.key)
                )
                if current.in_sync:
                    reason = "the drift was over before the approved plan could run"
                    self._store.pending_records.set_pending_status(
                        plan_id, PendingStatus.SUPERSEDED, "controller", now,
                        expected=PendingStatus.APPROVED,
                    )  # fmt: skip
                    self._escalation.plan_decided(plan_id, LlmDecision.SUPERSEDED, reason)
                    return ReconcileResult(plan.key, Outcome.IN_SYNC, reason)
            policy = policy_named(resource, self._desired.policies, plan.policy)
            # An LLM's plan stays held to its escalation's allowlist and step limit.
            allowed, max_steps = None, None
            if plan.source != "rules" and policy is not None and policy.spec.escalate is not None:
                allowed = allowed_tools(policy, self._catalogue, resource.kind)
                max_steps = policy.spec.escalate.max_steps
            verdict = self._admission.admit(
                plan, resource, policy, self._reconciler.history(plan.key), now,
                approved=True, allowed_tools=allowed, max_steps=max_steps,
            )  # fmt: skip
            if not verdict.admitted:
                self._store.pending_records.set_pending_status(
                    plan_id, PendingStatus.FAILED, actor, now
                )
                self._escalation.plan_decided(
                    plan_id,
                    verdict.refusal,
                    f"approved by {actor}, then refused by the guard: {verdict.reason}",
                )
                return ReconcileResult(plan.key, Outcome.REJECTED, f"guard: {verdict.reason}")
            fault_at = min([d.since for d in plan.drifts] + [now])
            run = await self._executor.execute(resource, plan, obs, fault_at, now)
        fixed = run.outcome is Outcome.FIXED
        self._store.pending_records.set_pending_status(
            plan_id, PendingStatus.EXECUTED if fixed else PendingStatus.FAILED, actor,
            self._clock(),
        )  # fmt: skip
        # The LLM's exchange (if the plan was one's) now leads to the fix it became.
        self._escalation.plan_decided(
            plan_id, LlmDecision.APPROVED, f"approved by {actor}: {run.message}", fix_id=run.fix_id
        )
        self._queue.add(plan.key)
        return ReconcileResult(plan.key, run.outcome, run.message, None, run.fix_id)

    def reject_plan(self, plan_id: int, actor: str) -> None:
        """Reject a pending plan; the resource stays with the operator."""
        pending = self._store.pending_records.pending_plan(plan_id)
        if pending is None:
            raise PermanentError(f"no pending plan {plan_id}")
        if not self._store.pending_records.set_pending_status(
            plan_id, PendingStatus.REJECTED, actor, self._clock(), expected=PendingStatus.PENDING
        ):
            raise PermanentError(f"plan {plan_id} is {pending['status']}, not pending")
        self._store.audit_records.record_action(
            pending["key"], "reject", actor, {"plan_id": plan_id}, self._clock()
        )
        self._escalation.plan_decided(plan_id, LlmDecision.REJECTED, f"rejected by {actor}")

    async def analyze(self, key: str, actor: str) -> dict[str, Any]:
        """Ask the LLM about ``key`` now, on an operator's request; run nothing.

        The exchange is stored like any escalation's. A plan the guard would admit (or that
        only lacks an approval) is parked for the operator to approve or reject; one it
        refuses is recorded with the reason. Raises ``PermanentError`` when no planner is
        configured or no policy with an ``escalate`` block selects the resource.
        """
        resource = self._desired.require(key)
        if not self.llm_ready:
            raise PermanentError(
                "no LLM planner is configured (set GEMINI_API_KEY, DRIFTMEND_OPENAI_BASE_URL "
                "or DRIFTMEND_REPLAY_FILE): the controller runs on rules alone"
            )
        now = self._clock()
        self._store.audit_records.record_action(key, "analyze", actor, {}, now)
        async with self._lock(key):
            obs = await self._observer.observe(resource)
            result = diff(resource, self._desired.policies, obs, self._reconciler.memory.get(key))
            policy = escalation_policy(resource, self._desired.policies, result.drifts)
            if policy is None or policy.spec.escalate is None:
                raise PermanentError(
                    f"no HealingPolicy with an escalate block selects {key}: "
                    "nothing says which planner and tools to use"
                )
            esc = policy.spec.escalate
            asked = await self._escalation.escalator.ask(
                resource, policy, result.drifts, obs, f"an operator ({actor}) asked for a plan"
            )
            answer: dict[str, Any] = {
                "interaction": asked.interaction_id, "decision": LlmDecision.NO_PLAN.value,
                "reason": asked.reason, "plan": None, "pending_plan": None,
            }  # fmt: skip
            if asked.plan is None:
                self._escalation.record_outcome(
                    asked.interaction_id, ANALYZE, LlmDecision.NO_PLAN, asked.reason
                )
                return answer
            plan = asked.plan
            verdict = self._admission.admit(
                plan, resource, policy, self._reconciler.history(key), now,
                allowed_tools=asked.allowed, max_steps=esc.max_steps, dry_run=False,
            )  # fmt: skip
            answer["plan"] = plan_to_dict(plan)
            if not (verdict.admitted or verdict.needs_approval):
                decision = verdict.refusal
                answer.update(decision=decision.value, reason=verdict.reason)
            else:
                pending = self._store.pending_records.add_pending_plan(
                    key, plan, f"{plan.source} plan asked for by {actor}", now, origin="asked"
                )
                decision = LlmDecision.PENDING
                answer.update(
                    decision=decision.value,
                    reason=f"waiting for an operator (pending plan {pending})",
                    pending_plan=pending,
                )
            self._escalation.record_outcome(
                asked.interaction_id, ANALYZE, decision, answer["reason"],
                pending=answer["pending_plan"],
            )  # fmt: skip
            return answer
