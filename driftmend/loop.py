"""The reconcile loop: queue, workers, events, resync, backoff, and ``reconcile(key)``.

Stage: the middle of DESIGN.md's data flow. ``reconcile`` is level-triggered: it reads the
spec and the world afresh every time (observe -> diff -> plan -> guard -> act -> verify), so
a lost event costs latency, never correctness. Events and the resync period only put keys
on the queue. This is the one place that turns outcomes into requeues, store rows and
metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.act import DirectInvoker, ToolInvoker, act
from driftmend.diff import diff
from driftmend.drivers.base import ContainerRuntime, PostgresDriver, RedisDriver
from driftmend.errors import PermanentError, TemporaryError
from driftmend.escalation import Escalator, allowed_tools, escalation_policy, shadow_agreement
from driftmend.guard import ToolFacts, admit, escalation_budget, named_targets
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.model import Drift, FixAttempt, Health, Observation, Outcome, Plan
from driftmend.planners.base import Planner
from driftmend.planners.rules import Verdict, plan_rules, root_cause
from driftmend.queue import WorkQueue
from driftmend.settings import Settings
from driftmend.spec import (
    Container,
    HealingPolicy,
    LoadResult,
    PostgresDatabase,
    RedisCache,
    Resource,
)
from driftmend.store import Store, plan_from_dict, plan_to_dict
from driftmend.tools.base import Catalogue, ToolContext
from driftmend.tools.catalogue import tool_facts
from driftmend.verify import verify

log = logging.getLogger("driftmend.loop")

# The mode recorded with an exchange an operator asked for: whatever the policy's mode, its
# plan waits for them (and it is never counted as a shadow plan).
ANALYZE = "analyze"

HEALTH_OF: dict[Outcome, Health] = {
    Outcome.IN_SYNC: Health.HEALTHY,
    Outcome.WAITING: Health.DRIFTING,
    Outcome.FIXED: Health.HEALTHY,
    Outcome.FAILED: Health.DRIFTING,
    Outcome.REJECTED: Health.DRIFTING,
    Outcome.DRY_RUN: Health.DRIFTING,
    Outcome.NEEDS_OPERATOR: Health.NEEDS_OPERATOR,
    Outcome.PAUSED: Health.DRIFTING,
    Outcome.ERROR: Health.UNKNOWN,
}


@dataclass(frozen=True)
class ReconcileResult:
    """How one pass ended and when to look again (None: at the next resync)."""

    key: str
    outcome: Outcome
    message: str = ""
    requeue_after: float | None = None
    fix_id: int | None = None


class Controller:
    """Owns the desired state, the queue and the workers; everything with I/O is passed in."""

    def __init__(
        self,
        *,
        settings: Settings,
        runtime: ContainerRuntime,
        postgres: PostgresDriver,
        redis: RedisDriver,
        logs: LogAccumulator,
        store: Store,
        metrics: Metrics,
        catalogue: Catalogue,
        invoker: ToolInvoker | None = None,
        planners: Mapping[str, Planner] | None = None,
        unconfigured_planners: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.postgres = postgres
        self.redis = redis
        self.logs = logs
        self.store = store
        self.metrics = metrics
        self.catalogue = catalogue
        self.clock = clock
        self.resources: dict[str, Resource] = {}
        self.policies: list[HealingPolicy] = []
        self.tool_context = ToolContext(runtime, postgres, redis, logs, self.resources)
        self.invoker: ToolInvoker = invoker or DirectInvoker(catalogue, self.tool_context)
        self.queue = WorkQueue()
        self._pending: dict[str, Mapping[str, float]] = {}
        self._failures: dict[str, int] = {}
        self._event_at: dict[str, float] = {}
        self._attached: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._busy = 0
        self._not_before: dict[str, float] = {}  # backoff after a failed fix (monotonic)
        # One pass at a time per resource: workers are kept apart by the queue, but operator
        # actions (Fix now, approve) come from the dashboard and must wait their turn.
        self._locks: dict[str, asyncio.Lock] = {}
        self.escalator = Escalator(
            planners=planners or {},
            unconfigured=unconfigured_planners,
            store=store,
            metrics=metrics,
            catalogue=catalogue,
            invoker=lambda: self.invoker,
            logs=logs,
            clock=clock,
            tokens_per_day=settings.llm_tokens_per_day,
            deadline=settings.llm_deadline,
        )
        self.runtime.set_event_sink(self.on_event)

    # --- desired state -------------------------------------------------------------------

    def apply(self, result: LoadResult) -> None:
        """Take a new desired state from a spec source; queue what changed or went away."""
        new = {r.key: r for r in result.resources}
        for key in set(self.resources) - set(new):
            log.info("resource removed: %s", key)
            self.resources.pop(key, None)
            self.queue.forget(key)
            self._pending.pop(key, None)
            self.store.remove_resource(key)
            self.metrics.forget(key)
        self.resources.update(new)
        self.policies = list(result.policies)
        for key in self.resources:
            self.queue.add(key)

    def on_event(self, key: str, reason: str) -> None:
        """A runtime saw something (an exit, a health change): reconcile now, and dependents."""
        self._event_at[key] = self.clock()
        log.info("event %s on %s", reason, key)
        self.queue.add(key)
        for dep in self.dependents(key):
            self.queue.add(dep)

    def dependents(self, key: str) -> list[str]:
        """Databases and caches hosted by the Container ``key``."""
        out = []
        for r in self.resources.values():
            if isinstance(r, PostgresDatabase | RedisCache):
                host = self.tool_context.host_of(r)
                if host is not None and host.key == key:
                    out.append(r.key)
        return out

    # --- observe -------------------------------------------------------------------------

    def _attach_logs(self, resource: Resource) -> None:
        host: Container | None = None
        if isinstance(resource, Container):
            host = resource
        elif isinstance(resource, PostgresDatabase | RedisCache):
            host = self.tool_context.host_of(resource)
        if host is None:
            return
        for path in self.runtime.log_files(host):
            if (resource.key, path) not in self._attached:
                self._attached.add((resource.key, path))
                self.logs.attach(resource.key, path, host.name)

    async def observe(self, resource: Resource) -> Observation:
        """The resource's signals now, from its driver, plus the log-derived signals."""
        if isinstance(resource, Container):
            obs = await self.runtime.observe(resource)
        elif isinstance(resource, PostgresDatabase):
            obs = await self.postgres.observe(resource)
        else:
            obs = await self.redis.observe(resource)
        self._attach_logs(resource)
        signals = dict(obs.signals)
        signals["logs.errors_per_minute"] = self.logs.errors_per_minute(resource.key, obs.at)
        return Observation(obs.key, obs.at, signals, obs.facts, obs.error)

    # --- reconcile -----------------------------------------------------------------------

    def history(self, key: str) -> list[FixAttempt]:
        """Earlier fixes of ``key``, as the planners and the guard see them."""
        return [
            FixAttempt(
                key=key,
                started_at=float(f["detected_at"]),
                outcome=str(f["outcome"]),
                policy=f.get("policy"),
                rule=f.get("rule"),
                source=str(f.get("source") or "rules"),
            )
            for f in self.store.fixes(key=key, limit=200)
            if not f.get("dry_run")
        ]

    def _host_down(self, resource: Resource) -> str | None:
        if isinstance(resource, PostgresDatabase | RedisCache):
            host = self.tool_context.host_of(resource)
            if host is not None and host.spec.replicas > 0:
                return host.key
        return None

    async def reconcile(self, key: str, *, by_operator: bool = False) -> ReconcileResult:
        """One pass over one resource: observe, diff, maybe fix. Never raises.

        ``by_operator`` is an operator's Fix now: the pass runs the ladder even while
        healing of the resource is paused (the pause stays for every other pass).
        """
        resource = self.resources.get(key)
        if resource is None:
            return ReconcileResult(key, Outcome.IN_SYNC, "not declared")
        started = self.clock()
        t0 = time.monotonic()
        try:
            async with self._lock(key):
                result = await self._reconcile(resource, by_operator=by_operator)
        except TemporaryError as exc:
            result = ReconcileResult(key, Outcome.ERROR, str(exc), requeue_after=exc.delay)
        except PermanentError as exc:
            result = ReconcileResult(key, Outcome.ERROR, str(exc))
        except Exception as exc:
            log.exception("bug while reconciling %s", key)
            result = ReconcileResult(
                key, Outcome.ERROR, f"internal error: {type(exc).__name__}: {exc}", 5.0
            )
        duration = time.monotonic() - t0
        self.metrics.observe_reconcile(resource.kind, result.outcome.value, duration)
        if result.outcome is Outcome.ERROR:
            self.store.record_reconciliation(
                key, resource.kind, started, duration, result.outcome, [], {}, result.message
            )
        return result

    async def _reconcile(self, resource: Resource, *, by_operator: bool) -> ReconcileResult:
        key = resource.key
        if isinstance(resource, Container):
            for line in await self.runtime.ensure(resource):
                log.info("%s", line)
                self.store.record_action(
                    key, "provision", "controller", {"message": line}, self.clock()
                )
        # An event (an exit seen by the runtime) dates the fault better than the observation
        # that follows it; it only speaks for the pass right after it.
        event_at = self._event_at.pop(key, None)
        obs = await self.observe(resource)
        result = diff(resource, self.policies, obs, self._pending.get(key))
        self._pending[key] = result.pending
        self.metrics.set_signals(key, obs.signals)
        self.store.record_signals(key, obs.at, obs.signals)
        spec_json = resource.model_dump(mode="json", by_alias=True)

        def settle(
            outcome: Outcome,
            message: str,
            requeue: float | None = None,
            drifts: Sequence[Drift] = (),
        ) -> ReconcileResult:
            if self.resources.get(key) is not resource:
                # Removed or changed while this pass ran: the next pass (if any) speaks for it.
                return ReconcileResult(key, outcome, message)
            health = HEALTH_OF[outcome]
            self.store.upsert_resource(
                key, resource.kind, spec_json, health, obs.signals, obs.at, message
            )
            self.metrics.set_health(key, resource.kind, health)
            # One row per pass that found something; a plain counter for the quiet ones.
            if drifts or outcome is not Outcome.IN_SYNC:
                self.store.record_reconciliation(
                    key, resource.kind, obs.at, 0.0, outcome, list(drifts), obs.signals
                )
            else:
                self.store.count_reconciliation(key, outcome, obs.at)
            return ReconcileResult(key, outcome, message, requeue)

        if result.in_sync:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
            if self.store.needs_operator(key):
                self.store.set_needs_operator(key, None)
            # A plan proposed for an incident that is over must not be approved later; one an
            # operator asked for waits for them.
            for stale in self.store.pending_plans(key=key):
                if stale.get("origin") == "asked":
                    continue
                if self.store.set_pending_status(
                    stale["id"], "superseded", "controller", obs.at, expected="pending"
                ):
                    self._pending_plan_decided(stale["id"], "superseded", "the drift is over")
            return settle(Outcome.IN_SYNC, "in sync")

        for drift in result.drifts:
            self.metrics.drift_detected(resource.kind, drift.signal)
        host = self._host_down(resource)
        if host is not None and self.resources.get(host) is not None:
            host_res = self.resources[host]
            if isinstance(host_res, Container):
                host_obs = await self.runtime.observe(host_res)
                if host_obs.get("container.running") is False:
                    return settle(
                        Outcome.WAITING,
                        f"its host {host} is not running; the host's policy heals it",
                        1.0,
                        result.drifts,
                    )
        if not by_operator and (self.store.resource(key) or {}).get("paused"):
            return settle(
                Outcome.PAUSED, "healing is paused for this resource", None, result.drifts
            )
        if self.store.needs_operator(key):
            reason = (self.store.resource(key) or {}).get(
                "needs_operator_reason"
            ) or "needs an operator"
            return settle(Outcome.NEEDS_OPERATOR, str(reason), None, result.drifts)

        now = self.clock()
        decision = plan_rules(resource, self.policies, result, self.history(key), now)
        if decision.verdict is Verdict.WAIT:
            return settle(
                Outcome.WAITING, decision.reason, decision.retry_after or 1.0, result.drifts
            )
        esc_policy = escalation_policy(resource, self.policies, result.drifts)
        esc = esc_policy.spec.escalate if esc_policy else None
        if esc_policy is not None and esc is not None:
            hand_over = decision.verdict is Verdict.NEEDS_OPERATOR or esc.when == "always"
            if hand_over and not (decision.verdict is Verdict.PLAN and esc.mode == "shadow"):
                outcome, message, fix_id, requeue = await self._escalate(
                    resource, esc_policy, result.drifts, obs, decision.reason, now, event_at
                )
                res = settle(outcome, message, requeue, result.drifts)
                return ReconcileResult(key, res.outcome, res.message, res.requeue_after, fix_id)
            if hand_over:  # shadow beside a rule: record what the LLM would have done
                await self._escalate(
                    resource, esc_policy, result.drifts, obs, decision.reason, now, event_at,
                    record_only=True,
                )  # fmt: skip
        if decision.verdict is Verdict.NEEDS_OPERATOR:
            self.store.set_needs_operator(key, decision.reason)
            log.warning("%s needs an operator: %s", key, decision.reason)
            return settle(Outcome.NEEDS_OPERATOR, decision.reason, None, result.drifts)
        plan = decision.plan
        assert plan is not None
        policy = self._policy_named(resource, plan.policy)
        verdict = admit(
            plan, kind=resource.kind, policy=policy, tools=self.tool_facts(),
            history=self.history(key), now=now, dry_run=self.settings.dry_run,
            targets=named_targets(policy),
        )  # fmt: skip
        self.store.record_guard_decision(key, plan, verdict.admitted, verdict.reason, now)
        self.metrics.guard_decision(verdict.admitted)
        fault_at = min([d.since for d in plan.drifts] + ([event_at] if event_at else []))
        cause = root_cause(plan.drifts)
        if verdict.dry_run:
            fix_id = self.store.begin_fix(
                key, plan, obs.signals, fault_at, now, cause, dry_run=True
            )
            self.store.finish_fix(
                fix_id, Outcome.DRY_RUN, False, obs.signals, now, None, verdict.reason
            )
            return settle(
                Outcome.DRY_RUN, verdict.reason, self.settings.resync_period, result.drifts
            )
        if verdict.needs_approval:
            parked = self.store.pending_plans(key=key)
            if not any(
                p["plan"].get("policy") == plan.policy and p["plan"].get("rule") == plan.rule
                for p in parked
            ):
                self.store.add_pending_plan(key, plan, verdict.reason, now)
            reason = f"awaiting an operator's approval: {verdict.reason}"
            self.store.set_needs_operator(key, reason)
            return settle(Outcome.NEEDS_OPERATOR, reason, None, result.drifts)
        if not verdict.admitted:
            return settle(
                Outcome.REJECTED, f"guard: {verdict.reason}", verdict.retry_after, result.drifts
            )
        outcome, message, fix_id = await self.execute(resource, plan, obs, fault_at, now)
        if outcome is Outcome.FIXED:
            res = settle(Outcome.FIXED, f"fixed: {cause}", 0.5, result.drifts)
        else:
            n = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (n - 1))
            # Events and resyncs keep coming; the backoff holds them off until it has passed.
            self._not_before[key] = time.monotonic() + delay
            log.warning("fix %d of %s failed (%s); next look in %.1fs", fix_id, key, message, delay)
            res = settle(Outcome.FAILED, message, delay, result.drifts)
        return ReconcileResult(key, res.outcome, res.message, res.requeue_after, fix_id)

    async def execute(
        self, resource: Resource, plan: Plan, obs: Observation, fault_at: float, now: float
    ) -> tuple[Outcome, str, int]:
        """Run an admitted plan: journal, act, verify, record. Returns outcome, message, fix id."""
        key = resource.key
        cause = root_cause(plan.drifts) or plan.reasoning
        spec_json = resource.model_dump(mode="json", by_alias=True)
        self.store.upsert_resource(
            key, resource.kind, spec_json, Health.HEALING, obs.signals, obs.at, plan.reasoning
        )
        self.metrics.set_health(key, resource.kind, Health.HEALING)
        fix_id = self.store.begin_fix(key, plan, obs.signals, fault_at, now, cause)
        log.info("fixing %s: %s -> %s", key, cause, ", ".join(s.tool for s in plan.steps))
        recovered_at: float | None = None
        verified, after = False, obs
        try:
            steps = await act(plan, self.resources, self.invoker, self.store, fix_id)
            for step in steps:
                self.metrics.fix_step(step.step.tool, step.result.status.value)
            failed = next((s for s in steps if not s.result.ok), None)
            if failed is not None:
                outcome, after = Outcome.FAILED, await self.observe(resource)
                message = f"{failed.step.tool} {failed.result.status.value}: {failed.result.error}"
            else:
                check = await verify(
                    resource, self.policies, plan, self.observe, self.clock, asyncio.sleep
                )
                verified, after, recovered_at = check.verified, check.observation or obs, check.at
                outcome = Outcome.FIXED if verified else Outcome.FAILED
                message = check.message
        except Exception as exc:  # a driver failing mid-fix: the record must still close
            log.exception("fix %d of %s broke off", fix_id, key)
            outcome, message = Outcome.FAILED, f"broke off: {type(exc).__name__}: {exc}"
        self.store.finish_fix(
            fix_id, outcome, verified, after.signals, self.clock(), recovered_at, message
        )
        ttr = (recovered_at - fault_at) if recovered_at is not None else None
        self.metrics.fix_finished(resource.kind, plan.source, outcome.value, now - fault_at, ttr)
        self._compare_shadow_plans(resource, plan, fix_id, since=fault_at)
        self._pending.pop(key, None)
        if outcome is Outcome.FIXED:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
            self.store.set_needs_operator(key, None)
            log.info("fixed %s in %.2fs (fix %d)", key, ttr or 0.0, fix_id)
        return outcome, message, fix_id

    # --- escalation ----------------------------------------------------------------------

    async def _escalate(
        self,
        resource: Resource,
        policy: HealingPolicy,
        drifts: Sequence[Drift],
        obs: Observation,
        why: str,
        now: float,
        event_at: float | None,
        *,
        record_only: bool = False,
    ) -> tuple[Outcome, str, int | None, float | None]:
        """Ask the LLM, put its plan through the guard, and act as the policy's mode says.

        Returns the pass's outcome, its message, the fix it ran (if any) and when to look
        again. The escalation's own budget (attempts, cooldown) is checked before the model
        is asked, so a plan that could not run costs no tokens. ``record_only`` (shadow
        beside a rule that runs) stores the exchange and changes nothing else: the rules
        keep the resource.
        """
        key = resource.key
        esc = policy.spec.escalate
        assert esc is not None

        def operator(reason: str) -> tuple[Outcome, str, int | None, float | None]:
            if record_only:
                return Outcome.WAITING, reason, None, None
            self.store.set_needs_operator(key, reason)
            log.warning("%s needs an operator: %s", key, reason)
            return Outcome.NEEDS_OPERATOR, reason, None, None

        budget = escalation_budget(policy, self.history(key), now)
        if not budget.ok:
            if budget.exhausted:
                return operator(f"{why}; {budget.reason}" if why else budget.reason)
            return Outcome.WAITING, budget.reason, None, budget.retry_after
        asked = await self.escalator.ask(resource, policy, drifts, obs, why)

        def outcome(
            decision: str, reason: str, fix_id: int | None = None, pending: int | None = None
        ) -> None:
            self._llm_outcome(
                asked.interaction_id, esc.mode, decision, reason, fix_id=fix_id,
                pending=pending, cost_usd=asked.cost_usd,
            )  # fmt: skip

        plan = asked.plan
        if plan is None:
            outcome("no-plan", asked.reason)
            return operator(f"{why}; {asked.reason}" if why else asked.reason)
        # Keep the rule the planner answered: verification then checks that rule's
        # conditions too, not only the spec's promises.
        plan = Plan(
            plan.key, plan.steps, plan.source, plan.reasoning, plan.policy or policy.name, plan.rule,
            tuple(drifts), plan.verify_timeout, plan.verify_interval,
        )  # fmt: skip
        verdict = admit(
            plan, kind=resource.kind, policy=policy, tools=self.tool_facts(),
            history=self.history(key), now=now, dry_run=self.settings.dry_run,
            targets=named_targets(policy), allowed_tools=asked.allowed, max_steps=esc.max_steps,
        )  # fmt: skip
        self.store.record_guard_decision(key, plan, verdict.admitted, verdict.reason, now)
        self.metrics.guard_decision(verdict.admitted)
        if esc.mode == "shadow":
            outcome("shadow", f"recorded, not run (guard: {verdict.reason})")
            return operator(f"{why}; the {plan.source} plan is recorded in shadow mode")
        if verdict.dry_run:
            outcome("dry-run", verdict.reason)
            # Asking again on every pass would spend tokens on a plan that will not run
            # either: the recorded plan waits for an operator, like a shadow plan.
            return operator(f"dry-run: the {plan.source} plan is recorded and nothing runs")
        if esc.mode == "approve" or verdict.needs_approval:
            if not verdict.admitted and not verdict.needs_approval:
                outcome("over-budget" if verdict.over_budget else "rejected", verdict.reason)
                return operator(
                    f"the {plan.source} plan was rejected by the guard: {verdict.reason}"
                )
            pending = self.store.add_pending_plan(
                key, plan, f"{plan.source} plan, mode {esc.mode}", now
            )
            outcome("pending", f"waiting for an operator (pending plan {pending})", None, pending)
            return operator(
                f"a {plan.source} plan waits for an operator's approval (plan {pending})"
            )
        if not verdict.admitted:
            outcome("over-budget" if verdict.over_budget else "rejected", verdict.reason)
            return operator(f"the {plan.source} plan was rejected by the guard: {verdict.reason}")
        fault_at = min([d.since for d in drifts] + ([event_at] if event_at else []))
        result, message, fix_id = await self.execute(resource, plan, obs, fault_at, now)
        outcome("admitted", message, fix_id)
        if result is not Outcome.FIXED:
            return operator(f"the {plan.source} plan ran but did not fix it: {message}")
        return result, f"fixed by the {plan.source} plan", fix_id, 0.5

    # --- operator actions (dashboard, CLI) -----------------------------------------------

    async def trigger_fix(
        self, key: str, actor: str, detail: Mapping[str, Any] | None = None
    ) -> ReconcileResult:
        """The Fix button: forget needs-operator and backoff, and reconcile ``key`` now,
        running its ladder even while its healing is paused. ``detail`` goes with the
        recorded action (a retry names the fix it retries)."""
        self._require(key)
        self.store.record_action(key, "fix", actor, dict(detail or {}), self.clock())
        self.store.set_needs_operator(key, None)
        self._failures.pop(key, None)
        self._not_before.pop(key, None)
        return await self.reconcile(key, by_operator=True)

    def set_paused(self, key: str, paused: bool, actor: str) -> None:
        """Pause or resume healing of ``key`` (observation goes on)."""
        self._require(key)
        self.store.set_paused(key, paused)
        self.store.record_action(key, "pause" if paused else "resume", actor, {}, self.clock())
        self.queue.add(key)

    async def approve_plan(self, plan_id: int, actor: str) -> ReconcileResult:
        """Run a pending plan with an operator's approval, through the guard, act and verify.

        The plan is judged when its turn comes under the resource's lock (a worker may be
        fixing it right now): by the guard, with the fix history as it is then, and against
        the world as it is then. When the drift it was proposed for is over (another fix
        came first, or it healed), it is superseded instead of run. A plan an operator
        asked the LLM for (``analyze``) runs whatever the drift.
        """
        pending = self.store.pending_plan(plan_id)
        if pending is None:
            raise PermanentError(f"no pending plan {plan_id}")
        plan = plan_from_dict(pending["plan"])
        resource = self._require(plan.key)
        approved_at = self.clock()
        if not self.store.set_pending_status(
            plan_id, "approved", actor, approved_at, expected="pending"
        ):
            raise PermanentError(f"plan {plan_id} is {pending['status']}, not pending")
        self.store.record_action(plan.key, "approve", actor, {"plan_id": plan_id}, approved_at)
        async with self._lock(plan.key):
            now = self.clock()
            obs = await self.observe(resource)
            if pending.get("origin") != "asked":
                current = diff(resource, self.policies, obs, self._pending.get(plan.key))
                if current.in_sync:
                    reason = "the drift was over before the approved plan could run"
                    self.store.set_pending_status(
                        plan_id, "superseded", "controller", now, expected="approved"
                    )
                    self._pending_plan_decided(plan_id, "superseded", reason)
                    return ReconcileResult(plan.key, Outcome.IN_SYNC, reason)
            policy = self._policy_named(resource, plan.policy)
            # An LLM's plan stays held to its escalation's allowlist and step limit: approval
            # answers "may this run?", it does not widen what may run.
            allowed, max_steps = None, None
            if plan.source != "rules" and policy is not None and policy.spec.escalate is not None:
                allowed = allowed_tools(policy, self.catalogue, resource.kind)
                max_steps = policy.spec.escalate.max_steps
            verdict = admit(
                plan, kind=resource.kind, policy=policy, tools=self.tool_facts(),
                history=self.history(plan.key), now=now, dry_run=self.settings.dry_run,
                approved=True, targets=named_targets(policy), allowed_tools=allowed,
                max_steps=max_steps,
            )  # fmt: skip
            self.store.record_guard_decision(plan.key, plan, verdict.admitted, verdict.reason, now)
            self.metrics.guard_decision(verdict.admitted)
            if not verdict.admitted:
                self.store.set_pending_status(plan_id, "failed", actor, now)
                self._pending_plan_decided(
                    plan_id,
                    "over-budget" if verdict.over_budget else "rejected",
                    f"approved by {actor}, then refused by the guard: {verdict.reason}",
                )
                return ReconcileResult(plan.key, Outcome.REJECTED, f"guard: {verdict.reason}")
            fault_at = min([d.since for d in plan.drifts] + [now])
            outcome, message, fix_id = await self.execute(resource, plan, obs, fault_at, now)
        self.store.set_pending_status(
            plan_id, "executed" if outcome is Outcome.FIXED else "failed", actor, self.clock()
        )
        # The LLM's exchange (if the plan was one's) now leads to the fix it became.
        self._pending_plan_decided(
            plan_id, "approved", f"approved by {actor}: {message}", fix_id=fix_id
        )
        self.queue.add(plan.key)
        return ReconcileResult(plan.key, outcome, message, None, fix_id)

    def reject_plan(self, plan_id: int, actor: str) -> None:
        """Reject a pending plan; the resource stays with the operator."""
        pending = self.store.pending_plan(plan_id)
        if pending is None:
            raise PermanentError(f"no pending plan {plan_id}")
        if not self.store.set_pending_status(
            plan_id, "rejected", actor, self.clock(), expected="pending"
        ):
            raise PermanentError(f"plan {plan_id} is {pending['status']}, not pending")
        self.store.record_action(
            pending["key"], "reject", actor, {"plan_id": plan_id}, self.clock()
        )
        self._pending_plan_decided(plan_id, "rejected", f"rejected by {actor}")

    def _pending_plan_decided(
        self, plan_id: int, decision: str, reason: str, *, fix_id: int | None = None
    ) -> None:
        """Carry an operator's (or the controller's) decision on a parked plan over to the
        LLM exchange that proposed it, if one did."""
        asked = self.store.llm_interaction_of_pending_plan(plan_id)
        if asked is not None:
            self._llm_outcome(
                asked["id"], str(asked["mode"] or "-"), decision, reason, fix_id=fix_id,
                pending=plan_id,
            )  # fmt: skip

    @property
    def llm_ready(self) -> bool:
        """True when some LLM planner is configured (the dashboard's Ask-the-LLM button)."""
        return self.escalator.ready

    async def analyze(self, key: str, actor: str) -> dict[str, Any]:
        """Ask the LLM about ``key`` now, on an operator's request; run nothing.

        The exchange is stored like any escalation's. A plan the guard would admit (or that
        only lacks an approval) is parked for the operator to approve or reject; one it
        refuses is recorded with the reason. Raises ``PermanentError`` when no planner is
        configured or no policy with an ``escalate`` block selects the resource.
        """
        resource = self._require(key)
        if not self.llm_ready:
            raise PermanentError(
                "no LLM planner is configured (set GEMINI_API_KEY, DRIFTMEND_OPENAI_BASE_URL "
                "or DRIFTMEND_REPLAY_FILE): the controller runs on rules alone"
            )
        now = self.clock()
        self.store.record_action(key, "analyze", actor, {}, now)
        async with self._lock(key):
            obs = await self.observe(resource)
            result = diff(resource, self.policies, obs, self._pending.get(key))
            policy = escalation_policy(resource, self.policies, result.drifts)
            if policy is None or policy.spec.escalate is None:
                raise PermanentError(
                    f"no HealingPolicy with an escalate block selects {key}: "
                    "nothing says which planner and tools to use"
                )
            esc = policy.spec.escalate
            asked = await self.escalator.ask(
                resource, policy, result.drifts, obs, f"an operator ({actor}) asked for a plan"
            )
            answer: dict[str, Any] = {
                "interaction": asked.interaction_id, "decision": "no-plan",
                "reason": asked.reason, "plan": None, "pending_plan": None,
            }  # fmt: skip
            if asked.plan is None:
                self._llm_outcome(asked.interaction_id, ANALYZE, "no-plan", asked.reason)
                return answer
            plan = asked.plan
            verdict = admit(
                plan, kind=resource.kind, policy=policy, tools=self.tool_facts(),
                history=self.history(key), now=now, targets=named_targets(policy),
                allowed_tools=asked.allowed, max_steps=esc.max_steps,
            )  # fmt: skip
            self.store.record_guard_decision(key, plan, verdict.admitted, verdict.reason, now)
            self.metrics.guard_decision(verdict.admitted)
            answer["plan"] = plan_to_dict(plan)
            if not (verdict.admitted or verdict.needs_approval):
                decision = "over-budget" if verdict.over_budget else "rejected"
                answer.update(decision=decision, reason=verdict.reason)
            else:
                pending = self.store.add_pending_plan(
                    key, plan, f"{plan.source} plan asked for by {actor}", now, origin="asked"
                )
                answer.update(
                    decision="pending",
                    reason=f"waiting for an operator (pending plan {pending})",
                    pending_plan=pending,
                )
            self._llm_outcome(
                asked.interaction_id, ANALYZE, answer["decision"], answer["reason"],
                pending=answer["pending_plan"],
            )  # fmt: skip
            return answer

    def _llm_outcome(
        self,
        interaction_id: int | None,
        mode: str,
        decision: str,
        reason: str,
        *,
        fix_id: int | None = None,
        pending: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Record what became of an LLM exchange's plan (no exchange: nothing to record)."""
        if interaction_id is not None:
            self.store.set_llm_outcome(
                interaction_id, mode=mode, decision=decision, reason=reason, fix_id=fix_id,
                pending_plan_id=pending, cost_usd=cost_usd,
            )  # fmt: skip

    def _compare_shadow_plans(
        self, resource: Resource, plan: Plan, fix_id: int, *, since: float
    ) -> None:
        """Judge the shadow plans proposed for this incident (since the fault) against the
        plan that was run instead."""
        if plan.source != "rules" and plan.source != "operator":
            return
        for shadow in self.store.shadow_plans_to_compare(resource.key, since):
            verdict = shadow_agreement(plan_from_dict(shadow["plan"]), plan, self.catalogue)
            self.store.set_shadow_agreement(shadow["id"], verdict, fix_id)
            self.metrics.shadow_compared(str(shadow["plan"].get("policy") or "-"), verdict)

    def _policy_named(self, resource: Resource, name: str | None) -> HealingPolicy | None:
        """The policy called ``name`` in ``resource``'s namespace (policies select only
        their own namespace, and two namespaces may hold policies of the same name)."""
        ns = resource.metadata.namespace
        return next(
            (p for p in self.policies if p.name == name and p.metadata.namespace == ns), None
        )

    def tool_facts(self) -> Mapping[str, ToolFacts]:
        """What the guard knows of every tool: the catalogue's, plus external MCP tools."""
        external = getattr(self.invoker, "tool_facts", None)
        return dict(external()) if callable(external) else dict(tool_facts(self.catalogue))

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _require(self, key: str) -> Resource:
        resource = self.resources.get(key)
        if resource is None:
            raise PermanentError(f"no resource {key} is declared")
        return resource

    # --- running -------------------------------------------------------------------------

    async def reconcile_all(self) -> list[ReconcileResult]:
        """Reconcile every declared resource once, in order (``run --once``)."""
        return [await self.reconcile(key) for key in sorted(self.resources)]

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            wait = self._not_before.get(key, 0.0) - time.monotonic()
            if wait > 0:  # still backing off: look again when the backoff has passed
                self.queue.done(key)
                self.queue.add(key, wait)
                continue
            self._busy += 1
            self.metrics.set_workers_busy(self._busy)
            requeue: float | None = 5.0
            try:
                requeue = (await self.reconcile(key)).requeue_after
            except Exception:  # the store itself failing: keep the worker, try again later
                log.exception("reconcile of %s failed outside its pass", key)
            finally:
                self._busy -= 1
                self.metrics.set_workers_busy(self._busy)
                self.queue.done(key)
                self.metrics.set_queue_depth(len(self.queue))
            if requeue is not None:
                self.queue.add(key, requeue)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_period)
            for key in list(self.resources):
                self.queue.add(key)

    async def start(self) -> None:
        """Start the runtime watchers, the log reader, the resync ticker and the workers."""
        interrupted = self.store.mark_interrupted(self.clock())
        if interrupted:
            log.warning(
                "%d fix(es) were interrupted by a previous shutdown; see `driftmend get`",
                interrupted,
            )
        await self.runtime.start()
        discover = getattr(self.invoker, "discover", None)
        if callable(discover):  # external MCP servers: their tools join the guard's facts
            for server, status in (await discover()).items():
                log.info("external MCP server %s: %s", server, status)
        log.info("%s", self.escalator.describe())
        self._tasks.append(
            asyncio.create_task(self.logs.run(self.settings.log_poll_interval), name="logs")
        )
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
        for i in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"worker-{i}"))

    async def stop(self) -> None:
        """Stop workers and watchers; the supervised processes keep running."""
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.runtime.close()
        await self.escalator.close()
        await self.postgres.close()
        await self.redis.close()
