"""The leader election's decision: take, keep or leave a ``coordination.k8s.io/v1`` Lease.

Stage: *High availability* in docs/ARCHITECTURE.md (one controller acts at a time). Pure: no
I/O, no clock of its own. ``driftmend.leader`` reads the Lease, asks ``decide`` what to write,
and writes it with the record's ``resourceVersion`` (optimistic concurrency).

Expiry follows client-go's leaderelection: a lease held by another is expired once *this*
process has seen the same record, unchanged, for its ``leaseDurationSeconds`` on its own
clock. The holder's ``renewTime`` is written (for ``kubectl`` and other readers) but never
compared with our clock: a holder whose clock runs behind ours would look expired while it
renews every second, and one whose clock runs ahead would hold a dead lease for as long as
the skew. Comparing only local durations makes clock skew between replicas harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Decision",
    "LeaseRecord",
    "Verdict",
    "decide",
    "format_micro_time",
    "from_manifest",
    "parse_micro_time",
    "released",
    "to_manifest",
]


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says, plus the ``resourceVersion`` a write must name."""

    holder: str | None
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None


class Verdict(StrEnum):
    """What to do with the lease as it is now."""

    ACQUIRE = "acquire"  # nobody holds it, or its holder stopped renewing: take it
    RENEW = "renew"  # we hold it: write a fresh renewTime
    HELD = "held"  # another holder renews it: wait


@dataclass(frozen=True)
class Decision:
    """A verdict and, unless ``HELD``, the record to write."""

    verdict: Verdict
    record: LeaseRecord | None = None


def decide(
    current: LeaseRecord | None,
    *,
    identity: str,
    now: datetime,
    unchanged_for: float,
    lease_duration: float,
) -> Decision:
    """Take, keep or leave the lease ``current`` (None: it does not exist yet).

    ``unchanged_for`` is how long (seconds, on our own clock) we have seen ``current`` without
    any change; ``now`` only stamps what we write. A lease held by ``identity`` is renewed at
    once (a restarted replica with the same identity picks its lease up again); one held by
    another is taken once it went unrenewed for its own ``leaseDurationSeconds``; every change
    of holder counts one transition. Pure.
    """
    seconds = max(1, math.ceil(lease_duration))
    if current is None:
        return Decision(Verdict.ACQUIRE, LeaseRecord(identity, seconds, now, now, 0))
    if current.holder == identity:
        return Decision(
            Verdict.RENEW,
            replace(
                current,
                lease_duration_seconds=seconds,
                acquire_time=current.acquire_time or now,
                renew_time=now,
            ),
        )
    if current.holder and unchanged_for < current.lease_duration_seconds:
        return Decision(Verdict.HELD)
    return Decision(
        Verdict.ACQUIRE,
        replace(
            current,
            holder=identity,
            lease_duration_seconds=seconds,
            acquire_time=now,
            renew_time=now,
            transitions=current.transitions + 1,
        ),
    )


def released(current: LeaseRecord, now: datetime) -> LeaseRecord:
    """``current`` given up by its holder: no holder, so a standby takes it at its next try
    (client-go writes the same on ``ReleaseOnCancel``). Pure."""
    return replace(current, holder=None, lease_duration_seconds=1, renew_time=now)


def format_micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with microseconds, ``2026-12-05T12:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime | None:
    """A MicroTime (or a plain RFC 3339 time, as other writers may use) as an aware datetime."""
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_manifest(lease: dict[str, Any]) -> LeaseRecord:
    """A Lease object as the API returns it, as a ``LeaseRecord``."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 1),
        acquire_time=parse_micro_time(spec.get("acquireTime")),
        renew_time=parse_micro_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def to_manifest(record: LeaseRecord, *, name: str, namespace: str) -> dict[str, Any]:
    """The Lease object to create or replace; a replace names ``resourceVersion`` so that a
    write based on a stale read is refused (409) instead of overwriting another's."""
    spec: dict[str, Any] = {
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.transitions,
    }
    if record.holder:
        spec["holderIdentity"] = record.holder
    if record.acquire_time:
        spec["acquireTime"] = format_micro_time(record.acquire_time)
    if record.renew_time:
        spec["renewTime"] = format_micro_time(record.renew_time)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }
