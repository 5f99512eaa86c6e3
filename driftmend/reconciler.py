"""The reconciler: one level-triggered pass over one resource, ``reconcile(key) -> result``.

Stage: the middle of docs/ARCHITECTURE.md's data flow. A pass reads what it needs once (the
spec, an observation, the diff, the resource's flags, its fix history, its host), decides in
pure code (``decision.triage``, ``decision.after_guard``), carries out the one step decided
(escalate, park, dry-run, execute), and writes its outcome once at the end, with the time
the pass took. It reads the world afresh every time, so a lost event costs latency, never
correctness. Queueing, workers and resync are the controller's (``controller.py``).

A quiet pass (in sync, as the one before) costs no store read and, most of the time, no
write: its row and signal sample are written when they change and otherwise once per
``record_interval`` (``pacing.py``), and its count is added up in memory and written with
the others every ``COUNT_FLUSH`` seconds (issue 15: 1,000 resources at a 1 s resync).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from driftmend.admission import Admission
from driftmend.decision import (
    HEALTH_OF,
    DryRun,
    Escalate,
    Execute,
    Park,
    PassFacts,
    Settle,
    after_guard,
    policy_named,
    triage,
)
from driftmend.desired import DesiredState
from driftmend.diff import diff
from driftmend.drivers.base import ContainerRuntime
from driftmend.errors import PermanentError, StoreBusyError, StoreError, TemporaryError
from driftmend.escalation.handling import EscalationHandler
from driftmend.execution import Executor
from driftmend.metrics import Metrics
from driftmend.model import (
    Drift,
    FixAttempt,
    Health,
    LlmDecision,
    Observation,
    Outcome,
    PendingStatus,
    ReconcileResult,
)
from driftmend.observer import Observer
from driftmend.pacing import Pacer, state_of
from driftmend.planners.rules import root_cause
from driftmend.redaction import shown_spec
from driftmend.spec import Container, Resource
from driftmend.store import Store

log = logging.getLogger("driftmend.reconciler")

__all__ = ["Backoff", "Reconciler"]

HISTORY_LIMIT = 200  # enough fixes for any attempts window; a pass reads no more
COUNT_FLUSH = 5.0  # seconds between two writes of the quiet passes' counts


class Backoff(Protocol):
    """The queue's side of a failed fix (``WorkQueue`` is one): count it, or forget them."""

    def add_rate_limited(self, key: str) -> float:
        """Count one more failure of ``key``; returns the delay before it is looked at."""

    def forget(self, key: str) -> None:
        """End ``key``'s backoff."""


@dataclass(frozen=True)
class _Ended:
    """What a pass decided, for the one write at its end."""

    outcome: Outcome
    message: str
    requeue_after: float | None = None
    drifts: Sequence[Drift] = ()
    fix_id: int | None = None


class Reconciler:
    """Runs passes; holds the diff's memory of conditions that are timing their ``for``."""

    def __init__(
        self,
        *,
        desired: DesiredState,
        runtime: ContainerRuntime,
        observer: Observer,
        store: Store,
        metrics: Metrics,
        admission: Admission,
        executor: Executor,
        escalation: EscalationHandler,
        backoff: Backoff,
        resync_period: float,
        record_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._desired = desired
        self._runtime = runtime
        self._observer = observer
        self._store = store
        self._metrics = metrics
        self._admission = admission
        self._executor = executor
        self._escalation = escalation
        self._backoff = backoff
        self._resync = resync_period
        self._clock = clock
        self.memory: dict[str, Mapping[str, float]] = {}
        self.event_at: dict[str, float] = {}
        self.pacer = Pacer(record_interval)
        # Keys whose last pass was in sync with no operator flag and no plan to supersede:
        # the next in-sync pass has nothing to clear, so it reads nothing.
        self._quiet: set[str] = set()
        self._counts: dict[tuple[str, Outcome], tuple[int, float]] = {}
        self._counts_at = time.monotonic()

    def history(self, key: str) -> list[FixAttempt]:
        """Earlier fixes of ``key``, as the planners and the guard see them.

        A fix a controller's stop cut short is no attempt: it never got to say whether its
        remedy works, and counting it would exhaust a ladder with restarts of the healer.
        """
        return [
            FixAttempt(
                key=key,
                started_at=f.detected_at,
                outcome=str(f.outcome),
                policy=f.policy,
                rule=f.rule,
                source=f.source or "rules",
                trigger=str(f.plan.get("trigger") or "ladder"),
                finished_at=f.finished_at,
            )
            for f in self._store.fix_records.fixes(key=key, limit=HISTORY_LIMIT)
            if not f.dry_run and f.status != "interrupted"
        ]

    def forget(self, key: str) -> None:
        """Drop what the reconciler remembers of ``key`` (removed)."""
        self.event_at.pop(key, None)
        self.fix_ended(key)
        for counted in [c for c in self._counts if c[0] == key]:
            del self._counts[counted]

    def fix_ended(self, key: str) -> None:
        """A fix of ``key`` ended (it wrote the row): the next pass writes and reads afresh,
        and the diff's timing of the old fault is over."""
        self.memory.pop(key, None)
        self.pacer.forget(key)
        self._quiet.discard(key)

    def start_afresh(self) -> None:
        """Forget what the last passes wrote and found quiet: another controller (an
        operator replica that led before this one) may have written and flagged since."""
        self.pacer = Pacer(self.pacer.interval)
        self._quiet.clear()

    def flush_counts(self) -> None:
        """Write the counts of the quiet passes added up since the last flush.

        Kept for the next flush when the store cannot take them; the controller calls this
        once more when it stops."""
        counts, self._counts = self._counts, {}
        self._counts_at = time.monotonic()
        try:
            self._store.reconciliation_records.count_reconciliations(counts)
        except StoreError:
            for k, (n, at) in counts.items():
                m, last = self._counts.get(k, (0, at))
                self._counts[k] = (n + m, max(at, last))
            raise

    async def reconcile(self, key: str, *, by_operator: bool = False) -> ReconcileResult:
        """One pass over one resource: observe, diff, maybe fix. Never raises.

        ``by_operator`` is an operator's Fix now: the pass runs the ladder even while
        healing of the resource is paused (the pause stays for every other pass). The
        caller holds the resource's lock.
        """
        resource = self._desired.resources.get(key)
        if resource is None:
            return ReconcileResult(key, Outcome.IN_SYNC, "not declared")
        started = self._clock()
        t0 = time.monotonic()
        obs: Observation | None = None
        try:
            obs, ended = await self._pass(resource, by_operator=by_operator)
        except (TemporaryError, StoreBusyError) as exc:
            # A store locked by another writer is a moment's wait, not a broken pass.
            ended = _Ended(Outcome.ERROR, str(exc), exc.delay)
        except StoreError as exc:
            # A store that cannot be written may be fixed any moment (disk freed): look again
            # soon rather than only at the next resync.
            ended = _Ended(Outcome.ERROR, str(exc), 5.0)
        except PermanentError as exc:
            ended = _Ended(Outcome.ERROR, str(exc))
        except Exception as exc:
            log.exception("bug while reconciling %s", key)
            ended = _Ended(Outcome.ERROR, f"internal error: {type(exc).__name__}: {exc}", 5.0)
        duration = time.monotonic() - t0
        self._metrics.observe_reconcile(resource.kind, ended.outcome.value, duration)
        try:
            self._write(resource, ended, obs, started, duration)
        except Exception as exc:
            # The store is the record, not the healer: a pass that cannot be written down
            # still ends (reconcile never raises), and the next one tries again.
            if isinstance(exc, StoreError):
                log.warning("the pass over %s could not be recorded: %s", key, exc)
            else:
                log.exception("bug while recording the pass over %s", key)
            retry = exc.delay if isinstance(exc, StoreBusyError) else 5.0
            if ended.requeue_after is None or ended.requeue_after > retry:
                ended = _Ended(ended.outcome, ended.message, retry, ended.drifts, ended.fix_id)
        return ReconcileResult(key, ended.outcome, ended.message, ended.requeue_after, ended.fix_id)

    # --- the pass: read, decide, act -----------------------------------------------------

    async def _pass(self, resource: Resource, *, by_operator: bool) -> tuple[Observation, _Ended]:
        key = resource.key
        if isinstance(resource, Container):
            for line in await self._runtime.ensure(resource):
                log.info("%s", line)
                self._store.audit_records.record_action(
                    key, "provision", "controller", {"message": line}, self._clock()
                )
        # An event (an exit seen by the runtime) dates the fault better than the observation
        # that follows it; it only speaks for the pass right after it.
        event_at = self.event_at.pop(key, None)
        obs = await self._observer.observe(resource)
        result = diff(resource, self._desired.policies, obs, self.memory.get(key))
        self.memory[key] = result.pending
        self._metrics.set_signals(key, obs.signals)
        if result.in_sync:
            self._in_sync(key, obs.at)
            return obs, _Ended(Outcome.IN_SYNC, "in sync")

        for drift in result.drifts:
            self._metrics.drift_detected(resource.kind, drift.signal)
        records = self._store.resource_records
        row = records.resource(key)
        facts = PassFacts(
            resource=resource,
            policies=tuple(self._desired.policies),
            result=result,
            history=self.history(key),
            now=self._clock(),
            paused=row is not None and row.paused,
            needs_operator=records.operator_reason(key),
            parked=bool(self._store.pending_records.pending_plans(key=key)),
            host_down=await self._observer.host_down(resource),
            by_operator=by_operator,
        )
        return obs, await self._carry_out(facts, obs, event_at)

    async def _carry_out(
        self, facts: PassFacts, obs: Observation, event_at: float | None
    ) -> _Ended:
        resource, drifts, now = facts.resource, facts.result.drifts, facts.now
        step = triage(facts)
        if isinstance(step, Escalate):
            escalated = await self._escalation.handle(
                resource, step.policy, drifts, obs, step.why, facts.history, now, event_at,
                record_only=step.record_only,
            )  # fmt: skip
            if step.then is None:
                return _Ended(
                    escalated.outcome, escalated.message, escalated.requeue_after, drifts,
                    escalated.fix_id,
                )  # fmt: skip
            step = step.then
        if step.flag_operator is not None and step.flag_operator != facts.needs_operator:
            # An exhausted ladder retries on its policy's declared backoff, not on the
            # queue's, which counted the ladder's failures and would only stretch it.
            self._backoff.forget(resource.key)
        self._flag(resource.key, step.flag_operator, facts.needs_operator)
        if isinstance(step, Settle):
            return _Ended(step.outcome, step.message, step.requeue_after, drifts)

        plan = step.plan
        policy = policy_named(resource, facts.policies, plan.policy)
        verdict = self._admission.admit(plan, resource, policy, facts.history, now)
        fault_at = min([d.since for d in plan.drifts] + ([event_at] if event_at else []))
        cause = root_cause(plan.drifts)
        then = after_guard(verdict)
        if isinstance(then, DryRun):
            fix_id = self._store.fix_records.begin_fix(
                resource.key, plan, obs.signals, fault_at, now, cause, dry_run=True
            )
            self._store.fix_records.finish_fix(
                fix_id, Outcome.DRY_RUN, False, obs.signals, now, None, then.reason
            )
            return _Ended(Outcome.DRY_RUN, then.reason, self._resync, drifts)
        if isinstance(then, Park):
            parked = self._store.pending_records.pending_plans(key=resource.key)
            if not any(
                p["plan"].get("policy") == plan.policy and p["plan"].get("rule") == plan.rule
                for p in parked
            ):
                self._store.pending_records.add_pending_plan(
                    resource.key, plan, verdict.reason, now
                )
            self._store.resource_records.set_needs_operator(resource.key, then.reason)
            return _Ended(Outcome.NEEDS_OPERATOR, then.reason, None, drifts)
        if isinstance(then, Settle):
            return _Ended(then.outcome, then.message, then.requeue_after, drifts)
        assert isinstance(then, Execute)
        run = await self._executor.execute(resource, plan, obs, fault_at, now)
        if run.outcome is Outcome.FIXED:
            return _Ended(Outcome.FIXED, f"fixed: {cause}", 0.5, drifts, run.fix_id)
        if self._desired.resources.get(resource.key) is not resource:
            # Removed or changed while the fix ran: the new spec starts without a backoff.
            return _Ended(Outcome.FAILED, run.message, None, drifts, run.fix_id)
        if plan.trigger != "ladder":
            # A backoff retry is spaced by its policy's backoff (the next pass says when);
            # an operator's Fix now that failed is theirs to judge, not a reason to wait.
            log.warning("fix %d of %s failed (%s)", run.fix_id, resource.key, run.message)
            return _Ended(Outcome.FAILED, run.message, 0.5, drifts, run.fix_id)
        # Events and resyncs keep coming; the queue holds them off until the backoff passed.
        delay = self._backoff.add_rate_limited(resource.key)
        log.warning(
            "fix %d of %s failed (%s); next look in %.1fs", run.fix_id, resource.key,
            run.message, delay,
        )  # fmt: skip
        return _Ended(Outcome.FAILED, run.message, delay, drifts, run.fix_id)

    def _flag(self, key: str, reason: str | None, current: str | None) -> None:
        """Set the needs-operator flag to ``reason`` when it says something new."""
        if reason is None or reason == current:
            return
        self._store.resource_records.set_needs_operator(key, reason)
        if current is None:
            log.warning("%s needs an operator: %s", key, reason)

    def _in_sync(self, key: str, at: float) -> None:
        """Back in sync: end the backoff, clear the operator flag, supersede parked plans.

        A plan proposed for an incident that is over must not be approved later; one an
        operator asked for waits for them. Flags and parked plans come from passes that
        found a drift (which end the key's quiet) or are an operator's own (kept), so a key
        in sync since its last pass has nothing here to clear.
        """
        self._backoff.forget(key)
        if key in self._quiet:
            return
        if self._store.resource_records.needs_operator(key):
            self._store.resource_records.set_needs_operator(key, None)
        for stale in self._store.pending_records.pending_plans(key=key):
            if stale.get("origin") == "asked":
                continue
            if self._store.pending_records.set_pending_status(
                stale["id"], PendingStatus.SUPERSEDED, "controller", at,
                expected=PendingStatus.PENDING,
            ):  # fmt: skip
                self._escalation.plan_decided(
                    stale["id"], LlmDecision.SUPERSEDED, "the drift is over"
                )
        self._quiet.add(key)

    # --- the one write at the end --------------------------------------------------------

    def _write(
        self,
        resource: Resource,
        ended: _Ended,
        obs: Observation | None,
        started: float,
        duration: float,
    ) -> None:
        """Record how the pass ended: the resource's row, and one reconciliation row for a
        pass that found something (a counter for the quiet ones)."""
        key = resource.key
        eventful = bool(ended.drifts) or ended.outcome is not Outcome.IN_SYNC
        if eventful:  # it may have flagged or parked: the next in-sync pass reads again
            self._quiet.discard(key)
        if obs is None:  # the pass broke before it could observe: record the error alone
            self._store.reconciliation_records.record_reconciliation(
                key, resource.kind, started, duration, ended.outcome, [], {}, ended.message
            )
            return
        if self._desired.resources.get(key) is not resource:
            # Removed or changed while this pass ran: the next pass (if any) speaks for it.
            return
        health = HEALTH_OF[ended.outcome]
        if health is Health.DRIFTING and self._store.resource_records.needs_operator(key):
            # A retry of an exhausted ladder that failed: still the operator's to look at.
            health = Health.NEEDS_OPERATOR
        self._metrics.set_health(key, resource.kind, health)
        message = _row_message(ended, obs)
        # The spec object itself (compared by identity first): an edited spec is a new one.
        signature = (health, message, resource, state_of(obs.signals))
        if eventful or self.pacer.due(key, signature, obs.at):
            spec_json = shown_spec(resource)  # secret values never leave memory
            self._store.resource_records.upsert_resource(
                key, resource.kind, spec_json, health, obs.signals, obs.at, message
            )
            self._store.signal_records.record_signals(key, obs.at, obs.signals)
            self.pacer.written(key, signature, obs.at)
        if eventful:
            self._store.reconciliation_records.record_reconciliation(
                key, resource.kind, obs.at, duration, ended.outcome, list(ended.drifts),
                obs.signals,
            )  # fmt: skip
            return
        n, _ = self._counts.get((key, ended.outcome), (0, obs.at))
        self._counts[(key, ended.outcome)] = (n + 1, obs.at)
        if time.monotonic() - self._counts_at >= COUNT_FLUSH:
            self.flush_counts()


def _row_message(ended: _Ended, obs: Observation) -> str:
    """The resource row's message: how the pass ended, and what the driver says is wrong
    (a replica that cannot start, a server that refuses connections) unless all is well.

    Where ``driftmend get`` and the dashboard show why, not only that, a resource is down.
    """
    if not obs.error or ended.outcome is Outcome.IN_SYNC or obs.error in ended.message:
        return ended.message
    return f"{ended.message}; {obs.error}" if ended.message else obs.error
