"""Prometheus metrics of the controller, all in one place.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``/metrics``). The loop turns each stage's result
into a call here (reconcile, drift, guard, act, verify, LLM); nothing else touches
prometheus_client. Every metric lives on the ``CollectorRegistry`` passed in, so a test
builds a fresh one and reads exact sample values back.

Names follow controller-runtime's habit: ``driftmend_reconcile_total{kind,result}``,
``driftmend_reconcile_duration_seconds{kind}``, ``driftmend_reconcile_errors_total{kind}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from driftmend.model import Health, Outcome, ToolStatus
from driftmend.resource_series import ResourceSeries, wanting_text
from driftmend.signals import SignalValue

__all__ = ["RECONCILE_BUCKETS", "RECOVERY_BUCKETS", "Metrics", "render"]

# A pass is usually milliseconds; a slow driver (a cloud API) can take tens of seconds.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Detection and recovery span a sub-second restart to a ten-minute escalation.
RECOVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class Metrics:
    """Every driftmend metric, registered on ``registry``, with one method per event."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.reconcile_total = Counter(
            "driftmend_reconcile_total",
            "Reconcile passes by result.",
            ["kind", "result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "driftmend_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            ["kind"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "driftmend_reconcile_errors_total",
            "Reconcile passes that ended in an error.",
            ["kind"],
            registry=r,
        )
        self.drifts = Counter(
            "driftmend_drift_detected_total",
            "Drifts detected, by the signal that drifted.",
            ["kind", "signal"],
            registry=r,
        )
        self.fix_steps = Counter(
            "driftmend_fix_total",
            "Executed fix steps (tool calls) by outcome.",
            ["tool", "outcome"],
            registry=r,
        )
        self.fixes = Counter(
            "driftmend_fixes_total",
            "Finished fixes by plan source and outcome.",
            ["kind", "source", "outcome"],
            registry=r,
        )
        self.time_to_detect = Histogram(
            "driftmend_time_to_detect_seconds",
            "From the fault to its detection.",
            ["kind"],
            buckets=RECOVERY_BUCKETS,
            registry=r,
        )
        self.time_to_recover = Histogram(
            "driftmend_time_to_recover_seconds",
            "From the fault to verified recovery.",
            ["kind"],
            buckets=RECOVERY_BUCKETS,
            registry=r,
        )
        self.start_failures = Counter(
            "driftmend_replica_start_failures_total",
            "Replicas that failed to start: could not be created, or exited in their first "
            "moments; reason is permission-denied, not-found, address-in-use, exited-early "
            "or other.",
            ["kind", "reason"],
            registry=r,
        )
        self.guard_decisions = Counter(
            "driftmend_guard_decisions_total",
            "Guard verdicts on plans.",
            ["decision"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "driftmend_queue_depth", "Resource keys waiting in the work queue.", registry=r
        )
        self.workers_busy = Gauge(
            "driftmend_workers_busy", "Workers reconciling a resource right now.", registry=r
        )
        self.store_writable = Gauge(
            "driftmend_store_writable",
            "1 while the store's file takes writes; 0 while it refuses them (healing goes on, "
            "records wait in memory).",
            registry=r,
        )
        self.store_writable.set(1)
        self.store_size = Gauge(
            "driftmend_store_size_bytes",
            "Bytes the store takes: the SQLite file and its WAL, or the tables on PostgreSQL. "
            "Bounded by the retention settings; measured each time the store is pruned.",
            registry=r,
        )
        self.store_pruned = Counter(
            "driftmend_store_pruned_rows",
            "History rows deleted by retention (age, or beyond the newest rows kept), by table.",
            ["table"],
            registry=r,
        )
        # driftmend_resource_health and driftmend_resource_signal: 15 series a resource,
        # kept as text (resource_series.py).
        self.series = ResourceSeries()
        r.register(self.series)
        self.llm_requests = Counter(
            "driftmend_llm_requests_total",
            "Requests to an LLM planner by outcome.",
            ["planner", "outcome"],
            registry=r,
        )
        self.shadow_comparisons = Counter(
            "driftmend_llm_shadow_comparisons_total",
            "Shadow-mode LLM plans judged against the fix that was run: agrees or differs.",
            ["policy", "agreement"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "driftmend_llm_tokens_total",
            "LLM tokens, direction in (prompt) or out (answer).",
            ["planner", "direction"],
            registry=r,
        )
        self.llm_latency = Histogram(
            "driftmend_llm_latency_seconds",
            "Latency of one LLM request.",
            ["planner"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            "driftmend_leader",
            "1 while this controller holds the leader lease and acts; 0 while it stands by.",
            ["identity"],
            registry=r,
        )
        self.leader_transitions = Counter(
            "driftmend_leader_transitions_total",
            "Times this controller took the leader lease (created it, or took it over from "
            "another holder or from nobody).",
            registry=r,
        )

    # -- the reconcile loop

    def observe_reconcile(self, kind: str, result: Outcome | str, duration_s: float) -> None:
        """Count one pass and its duration; a pass whose result is ``error`` is an error too."""
        self.reconcile_total.labels(kind, str(result)).inc()
        self.reconcile_duration.labels(kind).observe(duration_s)
        if str(result) == Outcome.ERROR:
            self.reconcile_errors.labels(kind).inc()

    def drift_detected(self, kind: str, signal: str) -> None:
        """Count one drift detected on ``signal``."""
        self.drifts.labels(kind, signal).inc()

    def set_queue_depth(self, depth: int) -> None:
        """How many keys wait in the queue."""
        self.queue_depth.set(depth)

    def set_workers_busy(self, busy: int) -> None:
        """How many workers are reconciling right now."""
        self.workers_busy.set(busy)

    def set_store_writable(self, writable: bool) -> None:
        """Whether the store's file takes writes."""
        self.store_writable.set(1 if writable else 0)

    def store_upkept(self, size_bytes: int, pruned: Mapping[str, int]) -> None:
        """The store's size after a pruning, and the rows it deleted per table."""
        self.store_size.set(size_bytes)
        for table, rows in pruned.items():
            self.store_pruned.labels(table).inc(rows)

    def set_leader(self, identity: str, leading: bool) -> None:
        """Whether this controller (``identity`` on the lease) leads right now."""
        self.leader.labels(identity).set(1 if leading else 0)

    def leader_transition(self) -> None:
        """Count one time this controller took the leader lease."""
        self.leader_transitions.inc()

    # -- guard, act, verify

    def fix_step(self, tool: str, outcome: ToolStatus | str) -> None:
        """Count one executed tool step by its result status."""
        self.fix_steps.labels(tool, str(outcome)).inc()

    def fix_finished(
        self,
        kind: str,
        source: str,
        outcome: Outcome | str,
        time_to_detect: float | None,
        time_to_recover: float | None,
    ) -> None:
        """Count one finished fix and observe its times (None: not known / not recovered)."""
        self.fixes.labels(kind, source, str(outcome)).inc()
        if time_to_detect is not None:
            self.time_to_detect.labels(kind).observe(time_to_detect)
        if time_to_recover is not None:
            self.time_to_recover.labels(kind).observe(time_to_recover)

    def replica_start_failed(self, kind: str, reason: str) -> None:
        """Count one replica of a ``kind`` resource that failed to start, and why (a bounded
        word: the runtime's ``START_REASONS``)."""
        self.start_failures.labels(kind, reason).inc()

    def shadow_compared(self, policy: str, agreement: str) -> None:
        """Count one shadow plan judged against the fix that ran (``agrees``/``differs``)."""
        self.shadow_comparisons.labels(policy, agreement).inc()

    def guard_decision(self, admitted: bool) -> None:
        """Count one guard verdict: ``admitted`` or ``rejected``."""
        self.guard_decisions.labels("admitted" if admitted else "rejected").inc()

    # -- per-resource state

    def set_health(self, key: str, kind: str, health: Health) -> None:
        """Set the health state set of a resource: 1 for ``health``, 0 for every other state."""
        self.series.set_health(key, kind, health)

    def set_signals(self, key: str, signals: Mapping[str, SignalValue]) -> None:
        """Export a resource's numeric and boolean signals (bools as 0/1).

        A signal that is None or missing is removed rather than left at a stale value: a
        flat line that is not being measured would lie on a dashboard.
        """
        self.series.set_signals(key, signals)

    def forget(self, key: str) -> None:
        """Remove every series of a deleted resource from the per-resource gauges."""
        self.series.forget(key)

    # -- planners

    def llm_request(
        self,
        planner: str,
        outcome: str,
        latency_s: float,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> None:
        """Count one LLM request (``ok``, ``error``, ``timeout``, ...), its latency and tokens."""
        self.llm_requests.labels(planner, outcome).inc()
        self.llm_latency.labels(planner).observe(latency_s)
        if tokens_in:
            self.llm_tokens.labels(planner, "in").inc(tokens_in)
        if tokens_out:
            self.llm_tokens.labels(planner, "out").inc(tokens_out)


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type, for a plain ``/metrics`` route.

    A route, not a mounted ASGI app: Starlette answers a mount at ``/metrics`` with a 307
    redirect to ``/metrics/``, which some scrapers do not follow.
    """
    with wanting_text() as wanted:  # the per-resource series hand over their kept text
        body = generate_latest(registry)
    return body + "".join(series.text() for series in wanted.series).encode(), CONTENT_TYPE_LATEST
