"""The status a custom resource shows ``kubectl``, and the Events that tell its story.

No string here is ever empty: the API server (1.20 at least) reads ``""`` in a merge patch of
a custom resource's status as null, and its schema then refuses the whole patch.

Stage: *outputs* (docs/ARCHITECTURE.md), pure: records in, dictionaries out. The publisher
(``driftmend.kube.publisher``) reads the records from the store and sends what changed.

Conditions follow Kubernetes' convention (``Ready``, ``Drifting``, ``Healing``,
``NeedsOperator``; status "True"/"False"/"Unknown"; CamelCase reasons): a condition's
``lastTransitionTime`` moves only when its status does, so ``kubectl describe`` says since
when a resource has been drifting, not when driftmend last looked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.model import Health

__all__ = [
    "CONDITION_TYPES",
    "FixFacts",
    "KubeEvent",
    "PendingFacts",
    "conditions",
    "fix_events",
    "policy_status",
    "resource_status",
    "rfc3339",
]

CONDITION_TYPES = ("Ready", "Drifting", "Healing", "NeedsOperator")


def rfc3339(at: float) -> str:
    """``at`` (epoch seconds) as Kubernetes writes times: ``2026-12-05T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@dataclass(frozen=True)
class FixFacts:
    """What a status and the Events say of one fix."""

    id: int
    started_at: float
    rule: str
    status: str  # running, done, interrupted
    outcome: str | None  # fixed, failed, ... (None while running)
    seconds_to_recover: float | None
    summary: str
    message: str


@dataclass(frozen=True)
class PendingFacts:
    """A plan parked for an operator's approval."""

    id: int
    since: float
    summary: str


@dataclass(frozen=True)
class KubeEvent:
    """One Kubernetes Event to post on a custom resource."""

    type: str  # Normal or Warning
    reason: str
    message: str


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def _wanted(
    health: Health, message: str, operator_reason: str | None
) -> dict[str, tuple[str, str, str]]:
    """Condition type -> (status, reason, message) for one health."""
    unknown = health is Health.UNKNOWN
    drifting = health in (Health.DRIFTING, Health.NEEDS_OPERATOR)
    said = message or health.value
    return {
        "Ready": (
            "Unknown" if unknown else ("True" if health is Health.HEALTHY else "False"),
            "NotObserved"
            if unknown
            else ("InSync" if health is Health.HEALTHY else _camel(health.value)),
            said,
        ),
        "Drifting": (
            "Unknown" if unknown else ("True" if drifting else "False"),
            "Drift" if drifting else ("NotObserved" if unknown else "NoDrift"),
            said if drifting else "no drift",
        ),
        "Healing": (
            "True" if health is Health.HEALING else "False",
            "FixRunning" if health is Health.HEALING else "Idle",
            said if health is Health.HEALING else "no fix running",
        ),
        "NeedsOperator": (
            "True" if operator_reason else "False",
            "LadderSpent" if operator_reason else "Handled",
            operator_reason or "driftmend handles it",
        ),
    }


def _since(old: Mapping[str, Any] | None, status: str, now: float) -> str:
    """A condition's lastTransitionTime: kept while its status holds, ``now`` when it moves."""
    if old is None or old.get("status") != status or not old.get("lastTransitionTime"):
        return rfc3339(now)
    return str(old["lastTransitionTime"])


def conditions(
    health: Health,
    message: str,
    operator_reason: str | None,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    now: float,
) -> list[dict[str, Any]]:
    """The four conditions for ``health``; a transition time moves only with its status."""
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    out = []
    for kind, (status, reason, text) in _wanted(health, message, operator_reason).items():
        old = before.get(kind)
        out.append({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": text,
            "lastTransitionTime": _since(old, status, now),
            "observedGeneration": generation,
        })  # fmt: skip
    return out


def _last_fix(fix: FixFacts | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    out: dict[str, Any] = {
        "id": fix.id,
        "at": rfc3339(fix.started_at),
        "rule": fix.rule,
        "outcome": fix.outcome or fix.status,
        "summary": fix.summary,
    }
    if fix.seconds_to_recover is not None:
        out["secondsToRecover"] = round(fix.seconds_to_recover, 3)
    return out


def resource_status(
    *,
    generation: int,
    health: Health,
    message: str,
    operator_reason: str | None,
    last_fix: FixFacts | None,
    pending: PendingFacts | None,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The ``status`` of a Container, PostgresDatabase or RedisCache custom resource.

    ``lastFix`` and ``pendingPlan`` are set to None (a merge patch deletes them) when there
    is none, so a plan approved elsewhere leaves the status too.
    """
    prev = previous or {}
    return {
        "observedGeneration": generation,
        "health": health.value,
        "message": message or health.value,
        "conditions": conditions(
            health, message, operator_reason, generation, prev.get("conditions") or [], now
        ),
        "lastFix": _last_fix(last_fix),
        "pendingPlan": (
            {
                "id": pending.id,
                "since": rfc3339(pending.since),
                "summary": pending.summary or "waiting for an operator's approval",
            }
            if pending is not None
            else None
        ),
    }


def policy_status(
    *,
    generation: int,
    accepted: bool,
    problem: str | None,
    matched: int,
    last_fix: FixFacts | None,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The ``status`` of a HealingPolicy: accepted or not, how many resources it covers."""
    prev = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    status = "True" if accepted else "False"
    old = prev.get("Ready")
    ready = {
        "type": "Ready",
        "status": status,
        "reason": "Accepted" if accepted else "Invalid",
        "message": problem or f"in force; applies to {matched} resource(s)",
        "lastTransitionTime": _since(old, status, now),
        "observedGeneration": generation,
    }
    return {
        "observedGeneration": generation,
        "matchedResources": matched,
        "conditions": [ready],
        "lastFix": _last_fix(last_fix),
    }


def fix_events(before: FixFacts | None, now: FixFacts) -> list[KubeEvent]:
    """The Events one fix's change of state deserves (``before``: as last seen, or None)."""
    out: list[KubeEvent] = []
    if before is None or before.id != now.id:
        out.append(KubeEvent("Normal", "FixStarted", f"fix {now.id} ({now.rule}): {now.summary}"))
    ended = now.status != "running" and (
        before is None or before.id != now.id or before.status == "running"
    )
    if ended:
        outcome = now.outcome or now.status
        if outcome == "fixed":
            took = (
                f" in {now.seconds_to_recover:.2f}s" if now.seconds_to_recover is not None else ""
            )
            out.append(KubeEvent("Normal", "Fixed", f"fix {now.id} ({now.rule}) recovered{took}"))
        else:
            text = f"fix {now.id} ({now.rule}) {outcome}: {now.message}".rstrip(": ")
            out.append(KubeEvent("Warning", "Fix" + _camel(outcome), text))
    return out
