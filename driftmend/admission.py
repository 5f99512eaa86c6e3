"""Admitting a plan: the guard's decision, recorded in the store and counted in the metrics.

Stage: *guard* in docs/ARCHITECTURE.md. Every plan that could run, from the rules, an LLM or
an operator's approval, passes through ``Admission.admit``: one call that asks the pure
guard and leaves the same trace (a ``guard_decisions`` row and the
``driftmend_guard_decisions_total`` counter) whoever proposed the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from driftmend.guard import GuardDecision, ToolFacts, admit, named_targets
from driftmend.metrics import Metrics
from driftmend.model import FixAttempt, Plan
from driftmend.spec import HealingPolicy, Resource
from driftmend.store import Store

__all__ = ["Admission"]


class Admission:
    """Ask the guard, record its decision, count it."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        tool_facts: Callable[[], Mapping[str, ToolFacts]],
        dry_run: bool,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._tool_facts = tool_facts
        self.dry_run = dry_run

    def admit(
        self,
        plan: Plan,
        resource: Resource,
        policy: HealingPolicy | None,
        history: Sequence[FixAttempt],
        now: float,
        *,
        approved: bool = False,
        allowed_tools: Collection[str] | None = None,
        max_steps: int | None = None,
        dry_run: bool | None = None,
    ) -> GuardDecision:
        """The guard's decision on ``plan`` for ``resource``, recorded and counted.

        ``dry_run`` defaults to the controller's setting; an operator's question to the LLM
        (which runs nothing anyway) passes False so the answer says what would happen.
        """
        verdict = admit(
            plan,
            kind=resource.kind,
            policy=policy,
            tools=self._tool_facts(),
            history=history,
            now=now,
            dry_run=self.dry_run if dry_run is None else dry_run,
            approved=approved,
            targets=named_targets(policy),
            allowed_tools=allowed_tools,
            max_steps=max_steps,
        )
        self._store.audit_records.record_guard_decision(
            resource.key, plan, verdict.admitted, verdict.reason, now
        )
        self._metrics.guard_decision(verdict.admitted)
        return verdict
