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
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from driftmend.errors import StoreError
from driftmend.kube.status import (
    FixFacts,
    KubeEvent,
    PendingFacts,
    fix_events,
    policy_status,
    resource_status,
)
from driftmend.model import Health
from driftmend.sources.kubernetes import CustomResource, KubernetesSource
from driftmend.spec import HealingPolicy
from driftmend.store import Store
from driftmend.store.fixes import FixSummary

log = logging.getLogger("driftmend.kube.publisher")

__all__ = ["KubeWrites", "StatusPublisher", "fix_facts"]


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
        for ref in self._source.custom_resources():
            doc = self._source.declared(ref)
            events: list[KubeEvent] = []
            if isinstance(doc, HealingPolicy) or ref.kind == "HealingPolicy":
                status = self._policy(ref, doc if isinstance(doc, HealingPolicy) else None, now)
            else:
                status, events = self._resource(ref, None if doc is None else doc.key, now)
            if self._sent.get(ref) != status:
                await self._api.patch_status(ref, status)
                self._sent[ref] = status
                sent += 1
            for event in events:
                await self._api.post_event(ref, event)
        gone = set(self._sent) - set(self._source.custom_resources())
        for ref in gone:
            self._sent.pop(ref, None)
        return sent

    def _previous(self, ref: CustomResource) -> Mapping[str, Any]:
        return self._sent.get(ref) or self._source.status_of(ref)

    def _policy(self, ref: CustomResource, doc: HealingPolicy | None, now: float) -> dict[str, Any]:
        problem = self._source.problem(ref)
        matched = 0
        last = None
        if doc is not None:
            resources = self._source.result().resources
            matched = sum(1 for r in resources if doc.selects(r))
            try:
                fixes = [
                    f for f in self._store.fix_records.fixes(limit=200) if f.policy == doc.name
                ]
            except StoreError:
                fixes = []
            last = fix_facts(fixes[0]) if fixes else None
        return policy_status(
            generation=ref.generation,
            accepted=doc is not None and problem is None,
            problem=problem,
            matched=matched,
            last_fix=last,
            previous=self._previous(ref),
            now=now,
        )

    def _resource(
        self, ref: CustomResource, key: str | None, now: float
    ) -> tuple[dict[str, Any], list[KubeEvent]]:
        problem = self._source.problem(ref)
        state = self._store.resource_records.resource(key) if key is not None else None
        health = state.health if state is not None else Health.UNKNOWN
        message = state.message if state is not None else ""
        if problem is not None:
            message = f"the last edit was refused, the previous spec stays in force: {problem}"
        last = fix_facts(state.last_fix) if state is not None and state.last_fix else None
        pending = None
        events: list[KubeEvent] = []
        if key is not None:
            parked = self._store.pending_records.pending_plans(status="pending", key=key)
            if parked:
                plan = parked[0]
                pending = PendingFacts(plan.id, plan.at, plan.reason[:300])
            events = self._events(key, last)
        status = resource_status(
            generation=ref.generation,
            health=health,
            message=message,
            operator_reason=state.needs_operator_reason if state is not None else None,
            last_fix=last,
            pending=pending,
            previous=self._previous(ref),
            now=now,
        )
        return status, events

    def _events(self, key: str, last: FixFacts | None) -> list[KubeEvent]:
        events: list[KubeEvent] = []
        if last is not None and last.started_at >= self._since - 1:
            if self._fixes.get(key) != last:
                events.extend(fix_events(self._fixes.get(key), last))
            self._fixes[key] = last
        for decision in reversed(self._store.audit_records.guard_decisions(key=key, limit=10)):
            if decision.id <= self._seen_guard.get(key, 0) or decision.at < self._since:
                continue
            self._seen_guard[key] = decision.id
            if not decision.admitted:
                events.append(
                    KubeEvent(
                        "Warning", "PlanRefused", f"{decision.source}: {decision.reason}"[:500]
                    )
                )
        for exchange in reversed(self._store.llm_records.llm_summaries(key=key, limit=10)):
            if exchange.id <= self._seen_llm.get(key, 0) or exchange.at < self._since:
                continue
            self._seen_llm[key] = exchange.id
            said = exchange.error or exchange.decision or "answered"
            events.append(
                KubeEvent(
                    "Normal",
                    "Escalated",
                    f"asked {exchange.planner} ({exchange.model}): {said}"[:500],
                )
            )
        for plan in self._store.pending_records.pending_plans(status=None, key=key):
            decided = plan.decided_at is not None and plan.decided_at >= self._since
            if not decided or plan.id in self._seen_decided:
                continue
            # An approved plan runs at once: by now it may be executed or failed already.
            state = plan.status.value
            if state == "expired":
                continue
            self._seen_decided.add(plan.id)
            reason = "PlanRejected" if state == "rejected" else "PlanApproved"
            verb = "rejected" if state == "rejected" else "approved"
            events.append(
                KubeEvent(
                    "Normal", reason, f"plan {plan.id} {verb} by {plan.actor or 'an operator'}"
                )
            )
        return events
