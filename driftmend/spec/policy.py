"""The ``HealingPolicy`` kind's spec: selector, rules (conditions, steps, attempts), escalation.

Stage: *spec sources* (docs/ARCHITECTURE.md). Conditions are checked against the signal
catalogue (``driftmend.signals``) here; the tools a rule names are checked against the tool
catalogue by ``driftmend.validate``, which the spec does not import.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from driftmend.quantities import format_duration
from driftmend.signals import SIGNALS, signals_for
from driftmend.spec.fields import (
    DNS_NAME,
    Duration,
    FieldError,
    Model,
    PositiveDuration,
    did_you_mean,
    shown,
)

Operator = Literal["==", "!=", ">", ">=", "<", "<="]
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": op.eq, "!=": op.ne, ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le,
}  # fmt: skip
ResourceKind = Literal["Container", "PostgresDatabase", "RedisCache"]


class Selector(Model):
    """Which resources a policy applies to: one kind, and labels that must all match."""

    kind: ResourceKind
    match_labels: dict[str, str] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list, description="when set, only these names")


class Condition(Model):
    """``signal operator value``, holding for at least ``for``."""

    signal: str
    operator: Operator = "=="
    value: bool | float
    for_: Duration = Field(default=0.0, alias="for")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        if name not in SIGNALS:
            # All 27 names on one line drown the typo: the closest few and where to look.
            raise ValueError(
                f"unknown signal {shown(name)}{did_you_mean(name, SIGNALS, n=3)} "
                "(`driftmend signals` lists them all)"
            )
        return name

    @model_validator(mode="after")
    def _value_fits_signal(self) -> Condition:
        info = SIGNALS[self.signal]
        if info.type == "bool" and not isinstance(self.value, bool):
            raise FieldError("value", f"{self.signal} is a flag: compare it with true or false")
        if info.type != "bool" and isinstance(self.value, bool):
            value = str(self.value).lower()
            raise FieldError(
                "value", f"{self.signal} is a number: compare it with a number, not {value}"
            )
        if info.type == "bool" and self.operator not in ("==", "!="):
            raise FieldError(
                "operator", f"{self.signal} is a flag: use == or !=, not {self.operator}"
            )
        return self

    def holds(self, observed: object) -> bool:
        """True when ``observed`` satisfies the condition (a missing value never does)."""
        if observed is None:
            return False
        try:
            return OPERATORS[self.operator](observed, self.value)
        except TypeError:
            return False

    def describe(self) -> str:
        """``redis.memory_used_ratio >= 0.95 for 10s``, for humans and prompts."""
        value = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}"
        held = f" for {format_duration(self.for_)}" if self.for_ else ""
        return f"{self.signal} {self.operator} {value}{held}"


class ToolStep(Model):
    """One tool call of a rule's remedy: the tool's name and its parameters."""

    tool: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Verify(Model):
    """How long the fix may take to clear the drift before it counts as failed."""

    timeout: PositiveDuration = 30.0
    interval: PositiveDuration = 0.5


class Attempts(Model):
    """A rule's budget: at most ``max`` fixes per sliding ``window``."""

    max: int = Field(default=3, ge=1)
    window: Duration = 600.0


class Rule(Model):
    """One rung of a policy's ladder: when all conditions hold, do the steps, then verify."""

    name: str = Field(pattern=DNS_NAME)
    when: list[Condition] = Field(min_length=1)
    do: list[ToolStep] = Field(min_length=1)
    verify: Verify = Field(default_factory=Verify)
    attempts: Attempts = Field(default_factory=Attempts)
    cooldown: Duration = 0.0
    approval: Literal["operator", "auto"] | None = Field(
        default=None,
        description="operator: this rung's plans wait for an operator's approval even when no "
        "step is destructive (say, a restart of a database); auto: run without one, even "
        "destructive steps; unset: the policy's approval, which governs destructive steps",
    )


class Backoff(Model):
    """How an exhausted ladder keeps converging, the kubelet's way for a crash loop.

    The first rung that fired runs again ``initial`` after the last fix, then after twice as
    long each time, up to ``max``, for as long as the drift lasts. An incident (the fixes a
    rung's attempts are counted in) ends when no fix has run for twice ``max``, as the kubelet
    forgets a crash loop after ten minutes of running.
    """

    initial: PositiveDuration = 10.0
    max: PositiveDuration = 300.0

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> Backoff:
        if self.max < self.initial:
            raise FieldError(
                "max",
                f"max ({format_duration(self.max)}) is shorter than initial "
                f"({format_duration(self.initial)}): make max at least initial",
            )
        return self

    @property
    def incident_gap(self) -> float:
        """How long without a fix ends an incident: twice ``max``."""
        return 2 * self.max


class Escalate(Model):
    """When the rules cannot fix a drift: ask an LLM planner for a plan of tool calls.

    ``mode`` says what happens to its plan: ``auto`` runs it once the guard admits it,
    ``approve`` waits for an operator, ``shadow`` only records it beside what the rules or
    the operator did, so its agreement can be measured before it is trusted.
    """

    planner: Literal["gemini", "openai", "replay"] = "gemini"
    mode: Literal["auto", "approve", "shadow"] = "approve"
    when: Literal["no-rule", "always"] = Field(
        default="no-rule",
        description="no-rule: when no rung applies or the ladder is exhausted; always: on every drift",
    )
    allowed_tools: list[str] = Field(
        default_factory=list,
        description="tools the LLM may call (read tools to investigate, others to fix); "
        "empty: the tools of this policy's rules plus every read tool of the kind",
    )
    max_steps: int = Field(default=5, ge=1, le=16, description="steps of the proposed plan")
    max_turns: int = Field(default=4, ge=1, le=10, description="model calls, read tools included")
    token_budget_per_day: int = Field(
        default=200_000, ge=1000, description="tokens per resource per day; over it, needs-operator"
    )
    attempts: Attempts = Field(
        default_factory=lambda: Attempts(max=3, window=3600.0),
        description="LLM plans run per resource per window, like a rule's: a crash loop "
        "is not restarted by the LLM forever either",
    )
    cooldown: Duration = Field(default=0.0, description="the least time between two LLM plans")


class HealingPolicySpec(Model):
    """Which resources, an ordered ladder of rules, and what happens when it is exhausted."""

    selector: Selector
    rules: list[Rule] = Field(default_factory=list)
    escalate: Escalate | None = None
    on_exhausted: Literal["retry", "hold"] = Field(
        default="retry",
        description="when every rung has used its attempts, the resource is flagged "
        "needs-operator and: retry (the first rung that fired runs again with a capped "
        "exponential backoff until the drift is over) or hold (nothing more runs by itself "
        "until the resource is healthy again or an operator acts: where a retry would do harm)",
    )
    backoff: Backoff = Field(default_factory=Backoff)
    approval: Literal["operator", "auto"] = Field(
        default="operator",
        description="who approves destructive steps: an operator in the dashboard, or auto",
    )
    max_steps: int = Field(default=8, ge=1, le=32, description="the guard refuses longer plans")
    paused: bool = False

    def allowed_tools(self) -> set[str]:
        """The allowlist: every tool named by a rule of this policy."""
        return {step.tool for rule in self.rules for step in rule.do}

    @field_validator("on_exhausted", mode="before")
    @classmethod
    def _renamed_needs_operator(cls, value: object) -> object:
        if value == "needs-operator":
            # The old single value: it held the ladder for good, which left crash loops down.
            raise ValueError(
                "needs-operator is no longer a value: an exhausted ladder always flags "
                "needs-operator; say `retry` (the default: keep converging with backoff) or "
                "`hold` (run nothing more by itself, as before)"
            )
        return value

    @model_validator(mode="after")
    def _rules_or_escalation(self) -> HealingPolicySpec:
        if not self.rules and self.escalate is None:
            raise FieldError("rules", "a policy needs at least one rule, or an escalate block")
        return self

    def rule(self, name: str | None) -> Rule | None:
        """The rule called ``name``, if any."""
        return next((r for r in self.rules if r.name == name), None)

    @model_validator(mode="after")
    def _rules_fit_kind(self) -> HealingPolicySpec:
        kind = self.selector.kind
        allowed = {s.name for s in signals_for(kind)}
        names: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in names:
                raise FieldError(
                    f"rules[{i}].name",
                    f"duplicate rule name {rule.name!r}: give each rule of a policy its own name",
                )
            names.add(rule.name)
            for j, cond in enumerate(rule.when):
                if cond.signal not in allowed:
                    owner = ", ".join(SIGNALS[cond.signal].kinds)
                    raise FieldError(
                        f"rules[{i}].when[{j}].signal",
                        f"{cond.signal} is a signal of {owner}, not of {kind}"
                        f"{did_you_mean(cond.signal, allowed, n=3)} "
                        f"(`driftmend signals {kind}` lists them)",
                    )
        return self
