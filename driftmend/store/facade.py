"""The ``Store``: one object over the store's record families, with the methods callers know.

Stage: *outputs* in DESIGN.md's data flow (``store``). The loop writes here after each stage
(observe, reconcile, guard, act, verify); the dashboard and ``driftmend get`` read it back.
One SQLite file in WAL mode (``db.Database``); each table family has its own object:

==========================  ===============================================================
``store.resource_records``  resources as last observed, pause and operator flags
``store.signal_records``    signal samples for the charts
``store.reconciliation_records``  recorded passes and counts per outcome
``store.fix_records``       fixes and their step journal
``store.fix_stats_records`` success rates and times to recover
``store.audit_records``     guard decisions and audited actions
``store.pending_records``   plans parked for an operator
``store.llm_records``       LLM exchanges and what became of their plans
==========================  ===============================================================

(The families are not called ``store.fixes`` or ``store.resources``: those names are
methods of the compatibility surface below.)

Reads return frozen records (``records.Record``) that read like the dicts they replaced.
Times are Unix float seconds (UTC). Nothing secret is stored here: callers redact first.
Every SQLite error reaches callers as a ``StoreError`` (``driftmend.errors``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from driftmend.model import Drift, Health, Outcome, Plan, PlanStep, ToolResult
from driftmend.store.audit import Action, AuditRecords, GuardDecision
from driftmend.store.db import Database
from driftmend.store.fixes import Fix, FixRecords, FixSummary
from driftmend.store.llm import LlmExchange, LlmExchangeSummary, LlmExchangeWithFix, LlmRecords
from driftmend.store.pending import PendingPlan, PendingRecords
from driftmend.store.reconciliations import Reconciliation, ReconciliationRecords
from driftmend.store.resources import ResourceRecords, ResourceState
from driftmend.store.signals import SignalRecords, SignalSample
from driftmend.store.stats import FixStats

__all__ = ["Store"]


class Store:
    """The SQLite-backed record of the controller. Thread-safe; every call is short.

    This class is the compatibility surface: every method the single-module store had,
    each a one-line delegation to a record family (also reachable as attributes, see the
    module docstring). New code should depend on a family, or on the small read Protocols
    the family modules define (``FixHistory``, ``ParkedPlans``, ...), not on this class.

    ``clock`` stamps the few rows whose time the caller does not pass (step start/finish).
    ``signal_retention_s`` bounds the signal history kept per resource for charts.
    ``busy_timeout_s`` is how long a write waits for another process's lock before it
    raises ``StoreBusyError``.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        signal_retention_s: float = 24 * 3600.0,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self._db = Database(Path(path), busy_timeout_s=busy_timeout_s)
        self.path = self._db.path
        self.fix_records = FixRecords(self._db, clock)
        self.resource_records = ResourceRecords(self._db, self.fix_records, clock)
        self.signal_records = SignalRecords(self._db, signal_retention_s)
        self.reconciliation_records = ReconciliationRecords(self._db)
        self.fix_stats_records = FixStats(self._db)
        self.audit_records = AuditRecords(self._db)
        self.pending_records = PendingRecords(self._db)
        self.llm_records = LlmRecords(self._db, self.fix_records)

    # -- lifecycle

    def close(self) -> None:
        """Close the connection; later calls raise ``StoreClosedError``. Safe to call twice."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._db.schema_version()

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``)."""
        return self._db.journal_mode()

    # -- resources (resource_records)

    def upsert_resource(
        self,
        key: str,
        kind: str,
        spec: Mapping[str, Any],
        health: Health,
        signals: Mapping[str, Any],
        observed_at: float,
        message: str = "",
        paused: bool | None = None,
    ) -> None:
        """Record the latest observed state of a resource; ``paused=None`` keeps the flag."""
        return self.resource_records.upsert_resource(
            key, kind, spec, health, signals, observed_at, message, paused
        )

    def resources(self) -> list[ResourceState]:
        """Every resource with its observed state, operator flag and last fix, by key."""
        return self.resource_records.resources()

    # Typed as a Mapping, not ``ResourceState``, so that the loop's ``store.resource(key) or
    # {}`` still type-checks (mypy infers ``{}`` from the left operand's type);
    # ``store.resource_records.resource`` gives the typed record.
    def resource(self, key: str) -> Mapping[str, Any] | None:
        """One resource as in ``resources()``, or None: a ``ResourceState`` record."""
        return self.resource_records.resource(key)

    def set_paused(self, key: str, paused: bool) -> None:
        """Pause or resume healing of a resource (its row is created if not yet observed)."""
        return self.resource_records.set_paused(key, paused)

    def remove_resource(self, key: str) -> None:
        """Forget a deleted resource's current state; its reconciliations and fixes stay."""
        return self.resource_records.remove_resource(key)

    def needs_operator(self, key: str) -> bool:
        """Whether the resource waits for an operator (an escalation nobody could plan)."""
        return self.resource_records.needs_operator(key)

    def set_needs_operator(self, key: str, reason: str | None, at: float | None = None) -> None:
        """Flag a resource as needing an operator with ``reason``, or clear it with None."""
        return self.resource_records.set_needs_operator(key, reason, at)

    # -- signal history (signal_records)

    def record_signals(self, key: str, at: float, signals: Mapping[str, Any]) -> None:
        """Append one sample of a resource's signals; samples older than the retention go."""
        return self.signal_records.record_signals(key, at, signals)

    def signal_history(
        self, key: str, names: Sequence[str] | None, since: float
    ) -> list[SignalSample]:
        """Samples since ``since``, oldest first: ``{"at", "signals"}``, only ``names`` if given."""
        return self.signal_records.signal_history(key, names, since)

    # -- reconciliations (reconciliation_records)

    def record_reconciliation(
        self,
        key: str,
        kind: str,
        started_at: float,
        duration_s: float,
        outcome: Outcome,
        drifts: Sequence[Drift],
        signals: Mapping[str, Any],
        error: str | None = None,
    ) -> int:
        """Record an interesting pass (drift or error) in full; it is counted too."""
        return self.reconciliation_records.record_reconciliation(
            key, kind, started_at, duration_s, outcome, drifts, signals, error
        )

    def count_reconciliation(self, key: str, outcome: Outcome, at: float) -> None:
        """Count an uneventful pass (in sync, waiting, paused) without storing its details."""
        return self.reconciliation_records.count_reconciliation(key, outcome, at)

    def reconciliation_counts(self, key: str | None = None) -> dict[str, int]:
        """Passes per outcome, for one resource or all."""
        return self.reconciliation_records.reconciliation_counts(key)

    def reconciliations(self, key: str | None = None, limit: int = 100) -> list[Reconciliation]:
        """Recorded passes, newest first."""
        return self.reconciliation_records.reconciliations(key, limit)

    # -- fixes and the journal (fix_records)

    def begin_fix(
        self,
        key: str,
        plan: Plan,
        signals_before: Mapping[str, Any],
        fault_at: float,
        detected_at: float,
        root_cause: str,
        dry_run: bool = False,
    ) -> int:
        """Open a fix (status ``running``) before any step runs; returns its id."""
        return self.fix_records.begin_fix(
            key, plan, signals_before, fault_at, detected_at, root_cause, dry_run
        )

    def journal_step(self, fix_id: int, index: int, step: PlanStep) -> int:
        """Commit a step (status ``started``) *before* it runs; returns the step id."""
        return self.fix_records.journal_step(fix_id, index, step)

    def finish_step(
        self,
        step_id: int,
        result: ToolResult,
        duration_s: float,
        mcp_call: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how a journaled step ended (its status becomes the result's status)."""
        return self.fix_records.finish_step(step_id, result, duration_s, mcp_call)

    def finish_fix(
        self,
        fix_id: int,
        outcome: Outcome,
        verified: bool,
        signals_after: Mapping[str, Any],
        finished_at: float,
        recovered_at: float | None,
        message: str = "",
    ) -> None:
        """Close a fix: outcome, verification and time to recover (None when not recovered)."""
        return self.fix_records.finish_fix(
            fix_id, outcome, verified, signals_after, finished_at, recovered_at, message
        )

    def fixes(
        self,
        key: str | None = None,
        limit: int = 100,
        outcome: Outcome | str | None = None,
        status: str | None = None,
    ) -> list[FixSummary]:
        """Fixes newest first, without their steps; filter by key, outcome or status."""
        return self.fix_records.fixes(key, limit, outcome, status)

    def fix(self, fix_id: int) -> Fix | None:
        """One fix with its journaled steps (each with its result), or None."""
        return self.fix_records.fix(fix_id)

    def last_fix(self, key: str) -> Fix | None:
        """The newest fix of a resource, with its steps, or None."""
        return self.fix_records.last_fix(key)

    def interrupted_fixes(self, since: float | None = None) -> list[Fix]:
        """Fixes a crash cut short (``mark_interrupted``), newest first, with their steps."""
        return self.fix_records.interrupted_fixes(since)

    def mark_interrupted(self, now: float) -> int:
        """Mark fixes still ``running`` and steps still ``started`` as ``interrupted``."""
        return self.fix_records.mark_interrupted(now)

    # -- fix statistics (fix_stats_records)

    def fix_stats(self, since: float | None = None) -> dict[str, Any]:
        """How well fixing works: count, success rate, time to recover; by rule and by tool."""
        return self.fix_stats_records.fix_stats(since)

    # -- guard decisions and actions (audit_records)

    def record_guard_decision(
        self, key: str, plan: Plan, admitted: bool, reason: str, at: float
    ) -> int:
        """Record the guard's verdict on a plan, admitted or not, with the reason."""
        return self.audit_records.record_guard_decision(key, plan, admitted, reason, at)

    def guard_decisions(self, key: str | None = None, limit: int = 100) -> list[GuardDecision]:
        """Guard verdicts, newest first."""
        return self.audit_records.guard_decisions(key, limit)

    def record_action(
        self, key: str | None, action: str, actor: str, detail: Mapping[str, Any], at: float
    ) -> int:
        """Audit one action by a person or the controller (pause, approve, chaos, ...)."""
        return self.audit_records.record_action(key, action, actor, detail, at)

    def actions(self, limit: int = 100, key: str | None = None) -> list[Action]:
        """Audited actions, newest first."""
        return self.audit_records.actions(limit, key)

    # -- parked plans (pending_records)

    def add_pending_plan(
        self, key: str, plan: Plan, reason: str, at: float, origin: str = "incident"
    ) -> int:
        """Park a plan until an operator approves or rejects it; returns its id."""
        return self.pending_records.add_pending_plan(key, plan, reason, at, origin)

    def pending_plans(
        self, status: str | None = "pending", key: str | None = None
    ) -> list[PendingPlan]:
        """Parked plans with ``status`` (None: any), oldest first like a queue."""
        return self.pending_records.pending_plans(status, key)

    def pending_plan(self, plan_id: int) -> PendingPlan | None:
        """One parked plan, or None; ``plan_from_dict(d["plan"])`` rebuilds the ``Plan``."""
        return self.pending_records.pending_plan(plan_id)

    def set_pending_status(
        self, plan_id: int, status: str, actor: str, at: float, expected: str | None = None
    ) -> bool:
        """Move a parked plan to ``status``; with ``expected``, only from that status."""
        return self.pending_records.set_pending_status(plan_id, status, actor, at, expected)

    # -- LLM exchanges (llm_records)

    def record_llm_interaction(
        self,
        key: str,
        planner: str,
        model: str,
        prompt: Any,
        response: Any,
        plan: Plan | None,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        at: float,
        error: str | None = None,
    ) -> int:
        """Store one LLM exchange whole: prompt, response, parsed plan, tokens, latency."""
        return self.llm_records.record_llm_interaction(
            key, planner, model, prompt, response, plan, tokens_in, tokens_out, latency_s, at, error
        )

    def llm_interactions(self, key: str | None = None, limit: int = 100) -> list[LlmExchange]:
        """LLM exchanges, newest first, whole."""
        return self.llm_records.llm_interactions(key, limit)

    def llm_interaction(self, interaction_id: int) -> LlmExchangeWithFix | None:
        """One LLM exchange, with the fix its plan became (if any)."""
        return self.llm_records.llm_interaction(interaction_id)

    def shadow_plans_to_compare(self, key: str, since: float) -> list[LlmExchange]:
        """Shadow-mode plans of ``key`` since ``since`` not yet compared with a fix."""
        return self.llm_records.shadow_plans_to_compare(key, since)

    def set_shadow_agreement(self, interaction_id: int, agreement: str, fix_id: int) -> None:
        """Record whether a shadow plan agreed with the fix that was run instead."""
        return self.llm_records.set_shadow_agreement(interaction_id, agreement, fix_id)

    def shadow_agreement(self) -> dict[str, dict[str, int]]:
        """Per policy, how many shadow plans agreed or differed with the fix that ran, and"""
        return self.llm_records.shadow_agreement()

    def set_llm_outcome(
        self,
        interaction_id: int,
        *,
        mode: str,
        decision: str,
        reason: str,
        fix_id: int | None = None,
        cost_usd: float | None = None,
        pending_plan_id: int | None = None,
    ) -> None:
        """Record what became of an interaction's plan (admitted, rejected, over-budget,"""
        return self.llm_records.set_llm_outcome(
            interaction_id,
            mode=mode,
            decision=decision,
            reason=reason,
            fix_id=fix_id,
            cost_usd=cost_usd,
            pending_plan_id=pending_plan_id,
        )

    def llm_interaction_of_pending_plan(self, plan_id: int) -> LlmExchange | None:
        """The LLM exchange whose plan was parked as pending plan ``plan_id``, or None."""
        return self.llm_records.llm_interaction_of_pending_plan(plan_id)

    def llm_tokens_since(self, key: str | None, since: float) -> int:
        """Tokens (in and out) spent on ``key`` (None: on every resource) since ``since``:"""
        return self.llm_records.llm_tokens_since(key, since)

    def llm_summaries(self, key: str | None = None, limit: int = 100) -> list[LlmExchangeSummary]:
        """LLM exchanges, newest first, without their prompt and response: what a list, or"""
        return self.llm_records.llm_summaries(key, limit)
