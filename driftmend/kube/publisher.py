"""Publishing what driftmend knows onto the custom resources: status patches and Events.

Stage: *outputs* (docs/ARCHITECTURE.md). The store is the record of every pass, fix, guard
decision, escalation and approval; this reads it on a short period and sends the API server
only what changed: a merge patch of the ``status`` subresource (never the spec, and with no
resourceVersion precondition, so it can never fight a user's edit) and one Event per step of
a resource's story. Only the leader runs it (``driftmend.operator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from driftmend.keys import ResourceKey
from driftmend.kube.status import (
    FixFacts,
    KubeEvent,
    PendingFacts,
    fix_events,
    policy_status,
    resource_status,
)
from driftmend.model import Health, PendingStatus
from driftmend.sources.kubernetes import CustomResource, KubernetesSource
from driftmend.spec import HealingPolicy
from driftmend.store import Store
from driftmend.store.audit import GuardDecision
from driftmend.store.fixes import FixSummary
from driftmend.store.llm import LlmExchangeSummary
from driftmend.store.pending import PendingPlan

log = logging.getLogger("driftmend.kube.publisher")

__all__ = ["KubeWrites", "StatusPublisher", "fix_facts"]

# How many of the newest guard decisions, LLM exchanges and fixes a round reads: far more
# than a second's worth, so nothing new between two rounds is missed.
_RECENT = 500


class KubeWrites(Protocol):
    """The two writes the publisher makes to the API server."""

    async def patch_status(self, ref: CustomResource, status: Mapping[str, Any]) -> None:
        """Merge-patch the ``status`` subresource of ``ref``."""

    async def post_event(self, ref: CustomResource, event: KubeEvent) -> None:
        """Create a core/v1 Event whose involvedObject is ``ref``."""


def fix_facts(fix: FixSummary) -> FixFacts:
    """What the status and the Events say of a stored fix."""
    tools = ", ".join(str(s.get("tool", "?")) for s in fix.planned_steps) or "no step"
    return FixFacts(
        id=fix.id,
        started_at=fix.started_at,
        rule=fix.rule or fix.source,
        status=fix.status,
        outcome=fix.outcome.value if fix.outcome is not None else None,
        seconds_to_recover=fix.time_to_recover,
        summary=f"{tools}: {fix.root_cause}"[:300],
        message=fix.message[:300],
    )


class _Round:
    """What one round reads from the store, read once: a thousand custom resources must not
    cost several queries each every second. The policy facts are read only when a policy
    is among the custom resources."""

    def __init__(self, source: KubernetesSource, store: Store, with_policies: bool) -> None:
        self.states = {state.key: state for state in store.resource_records.resources()}
        self.plans: dict[str, list[PendingPlan]] = defaultdict(list)
        for plan in store.pending_records.pending_plans(status=None):  # oldest first
            self.plans[plan.key].append(plan)
        self.guard: dict[str, list[GuardDecision]] = defaultdict(list)
        for decision in reversed(store.audit_records.guard_decisions(limit=_RECENT)):
            self.guard[decision.key].append(decision)
        self.llm: dict[str, list[LlmExchangeSummary]] = defaultdict(list)
        for exchange in reversed(store.llm_records.llm_summaries(limit=_RECENT)):
            self.llm[exchange.key].append(exchange)
        self._resources = source.result().resources if with_policies else []
        self._fixes = store.fix_records.fixes(limit=_RECENT) if with_policies else []

    def matched(self, policy: HealingPolicy) -> int:
        """How many declared resources ``policy`` selects."""
        return sum(1 for r in self._resources if policy.selects(r))

    def last_fix(self, policy: HealingPolicy) -> FixFacts | None:
        """The newest recent fix by one of ``policy``'s rules (in its own namespace)."""
        namespace = policy.metadata.namespace
        for fix in self._fixes:
            if fix.policy == policy.name and ResourceKey.parse(fix.key).namespace == namespace:
                return fix_facts(fix)
        return None


class StatusPublisher:
    """Sends each custom resource's status when it changes, and the Events of what happened."""

    def __init__(
        self,
        *,
        source: KubernetesSource,
        store: Store,
        api: KubeWrites,
        clock: Callable[[], float] = time.time,
        interval_s: float = 1.0,
    ) -> None:
        self._source = source
        self._store = store
        self._api = api
        self._clock = clock
        self._interval_s = interval_s
        self._since = clock()  # Events only for what happens from now: no replay on a restart
        self._sent: dict[CustomResource, dict[str, Any]] = {}
        self._fixes: dict[str, FixFacts] = {}
        self._seen_guard: dict[str, int] = {}
        self._seen_llm: dict[str, int] = {}
        self._seen_decided: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every ``interval_s`` until ``stop`` is set; a failed round is retried."""
        while not stop.is_set():
            try:
                await self.publish_once()
            except Exception:  # the API server or the store away: try again next round
                log.exception("publishing status failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)

    async def publish_once(self) -> int:
        """One round over every custom resource; returns how many status patches it sent."""
        sent = 0
        now = self._clock()
        refs = self._source.custom_resources()
        round_ = _Round(self._source, self._store, any(r.kind == "HealingPolicy" for r in refs))
        for ref in refs:
            events: list[KubeEvent] = []
            doc = self._source.declared(ref)
            if ref.kind == "HealingPolicy":
                policy = doc if isinstance(doc, HealingPolicy) else None
                status = self._policy(ref, policy, round_, now)
            else:
                status, events = self._resource(ref, None if doc is None else doc.key, round_, now)
            if self._sent.get(ref) != status:
                await self._api.patch_status(ref, status)
                self._sent[ref] = status
                sent += 1
            for event in events:
                await self._api.post_event(ref, event)
        for ref in set(self._sent) - set(refs):
            self._sent.pop(ref, None)
        return sent

    def _previous(self, ref: CustomResource) -> Mapping[str, Any]:
        return self._sent.get(ref) or self._source.status_of(ref)

    def _policy(
        self,
        ref: CustomResource,
        doc: HealingPolicy | None,
        facts: _Round,
        now: float,
    ) -> dict[str, Any]:
        problem = self._source.problem(ref)
        return policy_status(
            generation=ref.generation,
            accepted=doc is not None and problem is None,
            problem=problem,
            matched=facts.matched(doc) if doc is not None else 0,
            last_fix=facts.last_fix(doc) if doc is not None else None,
            previous=self._previous(ref),
            now=now,
        )

    def _resource(
        self, ref: CustomResource, key: str | None, facts: _Round, now: float
    ) -> tuple[dict[str, Any], list[KubeEvent]]:
        problem = self._source.problem(ref)
        state = facts.states.get(key) if key is not None else None
        message = state.message if state is not None else ""
        if problem is not None:
            message = f"the last edit was refused, the previous spec stays in force: {problem}"
        last = fix_facts(state.last_fix) if state is not None and state.last_fix else None
        plans = facts.plans.get(key, []) if key is not None else []
        parked = next((p for p in plans if p.status is PendingStatus.PENDING), None)
        status = resource_status(
            generation=ref.generation,
            health=state.health if state is not None else Health.UNKNOWN,
            message=message,
            operator_reason=state.needs_operator_reason if state is not None else None,
            last_fix=last,
            pending=(PendingFacts(parked.id, parked.at, parked.reason[:300]) if parked else None),
            previous=self._previous(ref),
            now=now,
        )
        return status, self._events(key, last, facts) if key is not None else []

    def _events(self, key: str, last: FixFacts | None, facts: _Round) -> list[KubeEvent]:
        """What happened to ``key`` since the last round, as Events (each told once)."""
        events: list[KubeEvent] = []
        if last is not None and last.started_at >= self._since - 1:
            if self._fixes.get(key) != last:
                events.extend(fix_events(self._fixes.get(key), last))
            self._fixes[key] = last
        for decision in facts.guard.get(key, []):
            if decision.id <= self._seen_guard.get(key, 0) or decision.at < self._since:
                continue
            self._seen_guard[key] = decision.id
            if not decision.admitted:
                said = f"{decision.source}: {decision.reason}"[:500]
                events.append(KubeEvent("Warning", "PlanRefused", said))
        for exchange in facts.llm.get(key, []):
            if exchange.id <= self._seen_llm.get(key, 0) or exchange.at < self._since:
                continue
            self._seen_llm[key] = exchange.id
            said = exchange.error or exchange.decision or "answered"
            asked = f"asked {exchange.planner} ({exchange.model}): {said}"[:500]
            events.append(KubeEvent("Normal", "Escalated", asked))
        for plan in facts.plans.get(key, []):
            decided = plan.decided_at is not None and plan.decided_at >= self._since
            if not decided or plan.id in self._seen_decided:
                continue
            if plan.status is PendingStatus.EXPIRED:
                continue
            # An approved plan runs at once: by now it may be executed or failed already.
            self._seen_decided.add(plan.id)
            rejected = plan.status is PendingStatus.REJECTED
            verb = "rejected" if rejected else "approved"
            reason = "PlanRejected" if rejected else "PlanApproved"
            by = plan.actor or "an operator"
            events.append(KubeEvent("Normal", reason, f"plan {plan.id} {verb} by {by}"))
        return events
