"""The values that flow through a reconcile pass: observation, drift, plan, tool result, fix.

Stage: every stage of docs/ARCHITECTURE.md's data flow passes these along. All are frozen dataclasses:
plans are data, and nothing downstream can change what a stage decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from driftmend.quantities import format_duration
from driftmend.signals import SignalValue


@dataclass(frozen=True)
class LogLine:
    """One parsed log line of a resource."""

    at: float
    level: str
    message: str
    source: str = ""


@dataclass(frozen=True)
class Observation:
    """What a driver saw of one resource at one instant (``at``, Unix seconds)."""

    key: str
    at: float
    signals: Mapping[str, SignalValue]
    facts: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def get(self, name: str) -> SignalValue:
        """A signal's value, or None when the driver could not read it."""
        return self.signals.get(name)


@dataclass(frozen=True)
class DriftCondition:
    """One condition of the rule a drift fired: ``signal operator value`` held for ``hold``
    seconds (the policy's ``when`` entry, carried as data so readers need not parse text)."""

    signal: str
    operator: str
    value: SignalValue
    hold: float = 0.0

    def describe(self) -> str:
        """``redis.memory_used_ratio >= 0.95 for 10s``."""
        value = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}"
        held = f" for {format_duration(self.hold)}" if self.hold else ""
        return f"{self.signal} {self.operator} {value}{held}"


@dataclass(frozen=True)
class Drift:
    """One difference between what is declared and what is observed, with the evidence.

    ``policy``/``rule`` name the rung whose conditions fired, and ``conditions`` are that
    rung's ``when``; a drift from the spec itself (a replica down, the database unreachable)
    has none of them.
    """

    key: str
    signal: str
    expected: str
    observed: SignalValue
    since: float
    policy: str | None = None
    rule: str | None = None
    evidence: Mapping[str, SignalValue] = field(default_factory=dict)
    conditions: tuple[DriftCondition, ...] = ()

    @property
    def id(self) -> str:
        """Stable identity of this drift for de-duplication: where it comes from and what."""
        return f"{self.key}|{self.policy or 'spec'}|{self.rule or ''}|{self.signal}"

    def describe(self) -> str:
        """One line for people: ``container.running is false, expected == true`` for a spec
        drift; ``redis.memory_used_ratio is 0.99 (rule cache/purge: redis.memory_used_ratio
        >= 0.95 and redis.evicting_policy == false)`` for a rule's."""
        if isinstance(self.observed, bool):
            observed: object = str(self.observed).lower()
        elif isinstance(self.observed, float):
            observed = f"{self.observed:.4g}"
        else:
            observed = self.observed
        if self.rule is not None and self.conditions:
            conditions = " and ".join(c.describe() for c in self.conditions)
            return f"{self.signal} is {observed} (rule {self.policy}/{self.rule}: {conditions})"
        return f"{self.signal} is {observed}, expected {self.expected}"


PlanSource = Literal["rules", "gemini", "openai", "replay", "operator"]

# Why a rules plan runs: its rung's turn on the ladder (within the rung's attempts), a retry
# of an exhausted ladder after its backoff, or an operator's Fix now. Only ladder fixes use
# a rung's attempts; backoff retries set the next retry's delay.
PlanTrigger = Literal["ladder", "backoff", "operator"]


@dataclass(frozen=True)
class PlanStep:
    """One tool call: which tool, on which resource, with which parameters."""

    tool: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """An ordered list of tool steps, where it came from, and why."""

    key: str
    steps: tuple[PlanStep, ...]
    source: PlanSource
    reasoning: str
    policy: str | None = None
    rule: str | None = None
    drifts: tuple[Drift, ...] = ()
    verify_timeout: float = 30.0
    verify_interval: float = 0.5
    trigger: PlanTrigger = "ladder"


class ToolStatus(StrEnum):
    """How one tool call ended."""

    OK = "ok"
    ERROR = "error"
    REFUSED = "refused"


@dataclass(frozen=True)
class ToolResult:
    """The value a tool returns: never an exception across the executor or the LLM loop."""

    status: ToolStatus
    data: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ToolStatus.OK

    @classmethod
    def success(cls, **data: Any) -> ToolResult:
        """A successful result carrying ``data``."""
        return cls(ToolStatus.OK, data)

    @classmethod
    def failure(cls, error: str, **data: Any) -> ToolResult:
        """A failed result: what went wrong, in words an operator and an LLM can act on."""
        return cls(ToolStatus.ERROR, data, error)

    @classmethod
    def refused(cls, reason: str) -> ToolResult:
        """The call was not made: a guard or a cap said no."""
        return cls(ToolStatus.REFUSED, {}, reason)


class Outcome(StrEnum):
    """How one reconciliation or fix ended; also the ``result`` label of the metrics."""

    IN_SYNC = "in-sync"
    WAITING = "waiting"  # a condition holds but its `for` has not elapsed
    FIXED = "fixed"
    FAILED = "failed"  # the fix ran but verification did not pass
    REJECTED = "rejected"  # the guard refused the plan
    DRY_RUN = "dry-run"
    NEEDS_OPERATOR = "needs-operator"
    PAUSED = "paused"
    ERROR = "error"


class Health(StrEnum):
    """The one-word status of a resource, as the dashboard colours it."""

    HEALTHY = "healthy"
    DRIFTING = "drifting"
    HEALING = "healing"
    NEEDS_OPERATOR = "needs-operator"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        """The words shown next to the health's colour: colour alone would not reach everyone."""
        return self.value.replace("-", " ").capitalize()


class LlmDecision(StrEnum):
    """What became of an LLM interaction's plan, as the controller records it."""

    ADMITTED = "admitted"
    PENDING = "pending"
    APPROVED = "approved"
    SUPERSEDED = "superseded"
    SHADOW = "shadow"
    DRY_RUN = "dry-run"
    REJECTED = "rejected"
    OVER_BUDGET = "over-budget"
    NO_PLAN = "no-plan"

    @property
    def badge(self) -> str:
        """The one word the dashboard shows (the guard's "rejected" reads as "refused")."""
        return "refused" if self is LlmDecision.REJECTED else self.value

    @property
    def label(self) -> str:
        """What the decision means, in a sentence fragment for operators."""
        return _LLM_DECISION_LABELS[self]


_LLM_DECISION_LABELS: dict[LlmDecision, str] = {
    LlmDecision.ADMITTED: "admitted by the guard",
    LlmDecision.PENDING: "waiting for an operator's approval",
    LlmDecision.APPROVED: "approved by an operator",
    LlmDecision.SUPERSEDED: "superseded: the drift was over before it could run",
    LlmDecision.SHADOW: "shadow mode: recorded, not run",
    LlmDecision.DRY_RUN: "dry run: recorded, not run",
    LlmDecision.REJECTED: "refused by the guard",
    LlmDecision.OVER_BUDGET: "refused: over its budget",
    LlmDecision.NO_PLAN: "no usable plan",
}


class PendingStatus(StrEnum):
    """Where a plan parked for an operator's approval stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class ShadowAgreement(StrEnum):
    """How a shadow policy's plan compares with the fix that ran for the same drift."""

    AGREES = "agrees"
    DIFFERS = "differs"
    PENDING = "pending"


@dataclass(frozen=True)
class FixAttempt:
    """One earlier fix of a resource, as the planners and the guard need to see it."""

    key: str
    started_at: float
    outcome: str
    policy: str | None = None
    rule: str | None = None
    source: str = "rules"
    trigger: str = "ladder"
    finished_at: float | None = None


@dataclass(frozen=True)
class ReconcileResult:
    """How one pass ended and when to look again (None: at the next resync)."""

    key: str
    outcome: Outcome
    message: str = ""
    requeue_after: float | None = None
    fix_id: int | None = None
