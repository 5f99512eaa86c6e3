"""Incidents and the backoff of an exhausted ladder. Pure: no I/O, no clock.

Stage: *plan* and *guard* of docs/ARCHITECTURE.md. A rung's attempts are counted in the
current incident only, so faults an hour apart do not share them; an exhausted ladder keeps
converging with a capped exponential backoff, the way the kubelet treats a crash loop, but
with the policy's remedy rather than a bare restart.

An incident is the latest run of a resource's fixes with no pause of ``gap`` (twice the
policy's ``backoff.max``) between the end of one and the start of the next: a crash loop
retried every five minutes stays one incident; a fault after ten quiet minutes starts anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftmend.model import FixAttempt
from driftmend.quantities import format_duration
from driftmend.spec import Backoff

__all__ = ["RetryTurn", "current_incident", "retry_delay", "retry_turn"]

# 2**30 times any initial delay is past any max: the exponent stops there, the delay at max.
_MAX_EXPONENT = 30


def _ended(attempt: FixAttempt) -> float:
    return attempt.finished_at if attempt.finished_at is not None else attempt.started_at


def current_incident(history: Sequence[FixAttempt], now: float, gap: float) -> list[FixAttempt]:
    """The fixes of the incident going on at ``now``, oldest first (none after a quiet ``gap``).

    A fix that started ``gap`` or more after the previous one ended opens a new incident,
    and so does ``now`` itself when the last fix ended ``gap`` or more ago.
    """
    incident: list[FixAttempt] = []
    last_end: float | None = None
    for attempt in sorted(history, key=lambda a: a.started_at):
        if last_end is not None and attempt.started_at - last_end >= gap:
            incident = []
        incident.append(attempt)
        last_end = _ended(attempt) if last_end is None else max(last_end, _ended(attempt))
    if last_end is not None and now - last_end >= gap:
        return []
    return incident


def retry_delay(backoff: Backoff, retries: int) -> float:
    """The wait before retry number ``retries + 1``: ``initial`` doubled per retry, at most ``max``."""
    return float(min(backoff.max, backoff.initial * 2 ** min(retries, _MAX_EXPONENT)))


@dataclass(frozen=True)
class RetryTurn:
    """When an exhausted ladder of ``policy`` may run its next backoff retry."""

    policy: str
    retries: int  # backoff retries already run in this incident
    delay: float  # the backoff before the next one
    due_in: float  # seconds from now; 0 when due

    def describe(self, backoff: Backoff) -> str:
        """``retry 3 in 40s (backoff 10s doubling to 5m)``, for reasons and the dashboard."""
        when = "now" if self.due_in <= 0 else f"in {format_duration(max(1.0, self.due_in))}"
        span = f"{format_duration(backoff.initial)} doubling to {format_duration(backoff.max)}"
        return f"retry {self.retries + 1} {when} (backoff {span})"


def retry_turn(
    policy: str, backoff: Backoff, incident: Sequence[FixAttempt], now: float
) -> RetryTurn:
    """The next backoff retry of ``policy``'s exhausted ladder in ``incident``.

    The delay runs from the end of the policy's last fix of the incident (a ladder rung, a
    retry or an operator's Fix now alike) and doubles with each retry already run.
    """
    mine = [a for a in incident if a.policy == policy and a.source == "rules"]
    retries = sum(1 for a in mine if a.trigger == "backoff")
    delay = retry_delay(backoff, retries)
    last = max((_ended(a) for a in mine), default=None)
    due_in = 0.0 if last is None else max(0.0, last + delay - now)
    return RetryTurn(policy, retries, delay, due_in)
