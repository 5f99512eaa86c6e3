"""Handling an escalation: budget, ask, guard, then what the policy's mode says.

Stage: *plan* (rules -> LLM) -> *guard* -> *act* in docs/ARCHITECTURE.md. When the rules hand
a drift over, ``EscalationHandler.handle`` checks the escalation's own budget (attempts,
cooldown) before the model is asked, so a plan that could not run costs no tokens; asks the
policy's planner; puts its plan through the same guard as any other (held to the
escalation's allowlist and step limit); and then records it (shadow, dry-run), parks it for
an operator (approve), or runs it (auto). Every exchange ends with its decision recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from driftmend.admission import Admission
from driftmend.escalation.asking import Escalator
from driftmend.escalation.policy import LlmPark, LlmRecord, llm_next_step
from driftmend.execution import Executor
from driftmend.guard import escalation_budget
from driftmend.model import Drift, FixAttempt, LlmDecision, Observation, Outcome, Plan
from driftmend.spec import HealingPolicy, Resource
from driftmend.store import Store

log = logging.getLogger("driftmend.escalation")

__all__ = ["ANALYZE", "Escalated", "EscalationHandler"]

# The mode recorded with an exchange an operator asked for: whatever the policy's mode, its
# plan waits for them (and it is never counted as a shadow plan).
ANALYZE = "analyze"


@dataclass(frozen=True)
class Escalated:
    """How an escalation ended the pass: outcome, message, the fix it ran, when to look again."""

    outcome: Outcome
    message: str
    fix_id: int | None = None
    requeue_after: float | None = None


class EscalationHandler:
    """Carries a drift the rules handed over through the LLM, the guard and the policy's mode."""

    def __init__(
        self,
        *,
        store: Store,
        escalator: Escalator,
        admission: Admission,
        executor: Executor,
    ) -> None:
        self._store = store
        self.escalator = escalator
        self._admission = admission
        self._executor = executor

    async def handle(
        self,
        resource: Resource,
        policy: HealingPolicy,
        drifts: Sequence[Drift],
        obs: Observation,
        why: str,
        history: Sequence[FixAttempt],
        now: float,
        event_at: float | None,
        *,
        record_only: bool = False,
    ) -> Escalated:
        """Ask the LLM, put its plan through the guard, and act as the policy's mode says.

        ``history`` is the resource's fix history as the pass read it: the escalation's
        budget and the guard judge the same history, read once.

        ``record_only`` (shadow beside a rule that runs) stores the exchange and changes
        nothing else: the rules keep the resource.
        """
        key = resource.key
        esc = policy.spec.escalate
        assert esc is not None

        def operator(reason: str) -> Escalated:
            if record_only:
                return Escalated(Outcome.WAITING, reason)
            self._store.resource_records.set_needs_operator(key, reason)
            log.warning("%s needs an operator: %s", key, reason)
            return Escalated(Outcome.NEEDS_OPERATOR, reason)

        budget = escalation_budget(policy, history, now)
        if not budget.ok:
            if budget.exhausted:
                return operator(f"{why}; {budget.reason}" if why else budget.reason)
            return Escalated(Outcome.WAITING, budget.reason, None, budget.retry_after)
        asked = await self.escalator.ask(resource, policy, drifts, obs, why)

        def record(
            decision: LlmDecision,
            reason: str,
            fix_id: int | None = None,
            pending: int | None = None,
        ) -> None:
            self.record_outcome(
                asked.interaction_id, esc.mode, decision, reason, fix_id=fix_id,
                pending=pending, cost_usd=asked.cost_usd,
            )  # fmt: skip

        if asked.plan is None:
            record(LlmDecision.NO_PLAN, asked.reason)
            return operator(f"{why}; {asked.reason}" if why else asked.reason)
        # Keep the rule the planner answered: verification then checks that rule's
        # conditions too, not only the spec's promises.
        plan = Plan(
            asked.plan.key, asked.plan.steps, asked.plan.source, asked.plan.reasoning,
            asked.plan.policy or policy.name, asked.plan.rule, tuple(drifts),
            asked.plan.verify_timeout, asked.plan.verify_interval,
        )  # fmt: skip
        verdict = self._admission.admit(
            plan, resource, policy, history, now,
            allowed_tools=asked.allowed, max_steps=esc.max_steps,
        )  # fmt: skip
        step = llm_next_step(esc.mode, verdict, plan.source)
        if isinstance(step, LlmRecord):
            record(step.decision, step.reason)
            return operator(f"{why}; {step.operator}" if step.after_why else step.operator)
        if isinstance(step, LlmPark):
            pending = self._store.pending_records.add_pending_plan(
                key, plan, f"{plan.source} plan, mode {esc.mode}", now
            )
            record(LlmDecision.PENDING, f"waiting for an operator (pending plan {pending})", None, pending)  # fmt: skip
            return operator(
                f"a {plan.source} plan waits for an operator's approval (plan {pending})"
            )
        fault_at = min([d.since for d in drifts] + ([event_at] if event_at else []))
        run = await self._executor.execute(resource, plan, obs, fault_at, now)
        record(LlmDecision.ADMITTED, run.message, run.fix_id)
        if run.outcome is not Outcome.FIXED:
            result = operator(f"the {plan.source} plan ran but did not fix it: {run.message}")
            return Escalated(result.outcome, result.message, run.fix_id, result.requeue_after)
        return Escalated(run.outcome, f"fixed by the {plan.source} plan", run.fix_id, 0.5)

    def record_outcome(
        self,
        interaction_id: int | None,
        mode: str,
        decision: LlmDecision,
        reason: str,
        *,
        fix_id: int | None = None,
        pending: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Record what became of an LLM exchange's plan (no exchange: nothing to record)."""
        if interaction_id is not None:
            self._store.llm_records.set_llm_outcome(
                interaction_id, mode=mode, decision=decision, reason=reason, fix_id=fix_id,
                pending_plan_id=pending, cost_usd=cost_usd,
            )  # fmt: skip

    def plan_decided(
        self, plan_id: int, decision: LlmDecision, reason: str, *, fix_id: int | None = None
    ) -> None:
        """Carry an operator's (or the controller's) decision on a parked plan over to the
        LLM exchange that proposed it, if one did."""
        asked = self._store.llm_records.llm_interaction_of_pending_plan(plan_id)
        if asked is not None:
            self.record_outcome(
                asked["id"], str(asked["mode"] or "-"), decision, reason, fix_id=fix_id,
                pending=plan_id,
            )  # fmt: skip
