"""Diff: spec + policies + observation -> drifts. Pure: no I/O, no clock, no globals.

Stage: *diff* in docs/ARCHITECTURE.md. Two kinds of drift come out:

- **spec drifts**: what the spec itself promises (every replica running and healthy, the
  database and cache reachable). They exist with or without a policy.
- **rule drifts**: a policy rule whose ``when`` conditions all hold, each for at least its
  ``for`` duration.

A condition's ``for`` needs memory across passes: ``pending`` maps a condition to the time it
was first seen holding. The caller keeps it between passes and passes it back in; a lost
``pending`` only delays a drift by its ``for`` window, it never invents one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from driftmend.model import Drift, DriftCondition, Observation
from driftmend.signals import SignalValue
from driftmend.spec import Container, HealingPolicy, PostgresDatabase, RedisCache, Resource


@dataclass(frozen=True)
class DiffResult:
    """What one diff found.

    ``drifts`` fire now; ``waiting`` are conditions that hold but not yet for long enough
    (with the seconds left); ``pending`` is the memory to pass to the next diff.
    """

    spec_drifts: tuple[Drift, ...] = ()
    rule_drifts: tuple[Drift, ...] = ()
    waiting: Mapping[str, float] = field(default_factory=dict)
    pending: Mapping[str, float] = field(default_factory=dict)

    @property
    def drifts(self) -> tuple[Drift, ...]:
        """Every drift, spec drifts first."""
        return self.spec_drifts + self.rule_drifts

    @property
    def in_sync(self) -> bool:
        """Nothing drifts and nothing is about to."""
        return not self.drifts and not self.waiting


# Flags that are None while a first result is pending (a new replica's first health probe):
# not yet known is not a drift. Verification still waits for the real value.
NOT_YET_KNOWN = frozenset({"container.healthy"})


def spec_expectations(resource: Resource, observation: Observation) -> list[tuple[str, bool]]:
    """The flags the spec promises for this resource, given what was observed.

    A container that is not running is also unhealthy; only the first fact is a drift, so a
    policy for crashes is not also asked to fix health.
    """
    if isinstance(resource, Container):
        # A Kubernetes workload's desired count is its own (spec.replicas does not apply).
        if resource.spec.runtime == "kubernetes":
            if observation.get("container.replicas_desired") == 0:
                return []
        elif resource.spec.replicas == 0:
            return []
        if observation.get("container.running") is False:
            return [("container.running", True)]
        if resource.spec.declares_health:
            return [("container.running", True), ("container.healthy", True)]
        return [("container.running", True)]
    if isinstance(resource, PostgresDatabase):
        return [("postgres.up", True)]
    if isinstance(resource, RedisCache):
        return [("redis.up", True)]
    return []


def _evidence(observation: Observation, names: Sequence[str]) -> dict[str, SignalValue]:
    keep = {n: observation.get(n) for n in names}
    # The evidence carries the signals named plus their usual companions, so a reader of
    # the stored drift (or an LLM) sees the ratio next to the numbers it came from.
    for name, value in observation.signals.items():
        if any(name.split(".")[0] == n.split(".")[0] for n in names) and len(keep) < 12:
            keep.setdefault(name, value)
    return keep


def diff(
    resource: Resource,
    policies: Sequence[HealingPolicy],
    observation: Observation,
    pending: Mapping[str, float] | None = None,
) -> DiffResult:
    """Compare one resource's spec and the policies that select it with one observation.

    Pure: the same inputs always give the same result. ``observation.at`` is "now".
    """
    now = observation.at
    before = pending or {}
    after: dict[str, float] = {}
    waiting: dict[str, float] = {}

    spec_drifts: list[Drift] = []
    for signal, want in spec_expectations(resource, observation):
        observed = observation.get(signal)
        if observed is want or (observed is None and signal in NOT_YET_KNOWN):
            continue
        cond_key = f"spec|{signal}"
        since = before.get(cond_key, now)
        after[cond_key] = since
        spec_drifts.append(Drift(
            key=resource.key, signal=signal, expected=f"== {str(want).lower()}",
            observed=observed, since=since, evidence=_evidence(observation, [signal]),
        ))  # fmt: skip

    rule_drifts: list[Drift] = []
    for policy in sorted(policies, key=lambda p: p.name):
        if policy.spec.paused or not policy.selects(resource):
            continue
        for rule in policy.spec.rules:
            all_hold = True
            # The drift began when the last of its conditions began to hold: before that,
            # not all of them did (a flag that has been false for hours does not make a
            # memory spike that many hours old).
            fired_since = float("-inf")
            longest_wait = 0.0
            for i, cond in enumerate(rule.when):
                cond_key = f"{policy.name}|{rule.name}|{i}"
                if not cond.holds(observation.get(cond.signal)):
                    all_hold = False
                    continue
                since = before.get(cond_key, now)
                after[cond_key] = since
                fired_since = max(fired_since, since)
                longest_wait = max(longest_wait, cond.for_ - (now - since))
            if not all_hold:
                continue
            first = rule.when[0]
            if longest_wait > 0:
                waiting[f"{policy.name}/{rule.name}"] = longest_wait
                continue
            rule_drifts.append(Drift(
                key=resource.key, signal=first.signal,
                expected=f"not ({'; '.join(c.describe() for c in rule.when)})",
                observed=observation.get(first.signal), since=fired_since,
                policy=policy.name, rule=rule.name,
                evidence=_evidence(observation, [c.signal for c in rule.when]),
                conditions=tuple(
                    DriftCondition(c.signal, c.operator, c.value, c.for_) for c in rule.when
                ),
            ))  # fmt: skip
    return DiffResult(tuple(spec_drifts), tuple(rule_drifts), waiting, after)


def covered_signals(resource: Resource, policies: Sequence[HealingPolicy]) -> set[str]:
    """Signals that some rule of a policy selecting ``resource`` watches."""
    return {
        cond.signal
        for policy in policies
        if policy.selects(resource) and not policy.spec.paused
        for rule in policy.spec.rules
        for cond in rule.when
    }
