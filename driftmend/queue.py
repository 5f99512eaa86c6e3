"""The work queue of the reconcile loop: de-duplicating, delayed, rate-limited per key.

Stage: *queue* in docs/ARCHITECTURE.md, in client-go's manner: a key is queued at most once;
a key added while a worker holds it is queued again when the worker is done, so no event is
lost and no resource is reconciled twice at once. Delayed adds keep only the earliest due
time. An urgent add (a runtime's event: an exit, a failed probe) goes ahead of the keys the
resync queued, so that at 1,000 resources an exit is not served after a second of resyncs.
``add_rate_limited`` is the backoff after a failed fix: the delay doubles with each
failure in a row (capped, with jitter so a fleet that failed together does not retry in
step) and holds the key back, events included, until it has passed; ``forget`` ends it.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

__all__ = ["MAX_EXPONENT", "WorkQueue", "backoff_delay"]

# 2**30 base delays is far past any sane cap: the exponent stops growing there, so the
# arithmetic never overflows however long a key keeps failing (base * 2**1024 did).
MAX_EXPONENT = 30


def backoff_delay(failures: int, base: float, cap: float, jitter: float = 0.0) -> float:
    """The delay before retry number ``failures`` (1 for the first): ``base * 2**(n-1)``,
    capped at ``cap``, plus ``jitter`` (a fraction in [0, 1), drawn by the caller) of it.

    Pure, so the schedule is tested without a clock. The cap applies before the jitter:
    a key at the cap still spreads its retries instead of all of them landing together.
    """
    exponent = min(max(failures, 1) - 1, MAX_EXPONENT)
    delay = min(cap, base * 2.0**exponent)
    return delay * (1.0 + 0.1 * jitter)


class WorkQueue:
    """Keys waiting for a reconcile, with a per-key failure backoff."""

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._jitter = jitter
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}  # loop time until which a key is held back
        # Two lines: events ahead of resyncs. A key in both (queued, then made urgent) is
        # served from the first it reaches; ``_queued`` says which entry is live.
        self._urgent: deque[str] = deque()
        self._ready: deque[str] = deque()
        self._queued: dict[str, bool] = {}  # key -> queued as urgent
        self._processing: set[str] = set()
        self._dirty: dict[str, bool] = {}  # added while processing -> urgent
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: str, delay: float = 0.0, *, urgent: bool = False) -> None:
        """Queue ``key`` now, or after ``delay`` seconds (the earliest request wins).

        ``urgent`` puts it ahead of every key queued without it (an event, not a resync);
        a delayed add is never urgent when it comes due.
        """
        if self._closed:
            return
        held = self.held_back(key)
        if held > delay:  # backing off: events and resyncs wait until the backoff has passed
            delay = held
        if delay > 0:
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            current = self._timers.get(key)
            if current and current[0] <= due:
                return
            if current:
                current[1].cancel()
            self._timers[key] = (due, loop.call_at(due, self._fire, key))
            return
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is not None and (queued or not urgent):
            return
        self._queued[key] = urgent
        (self._urgent if urgent else self._ready).append(key)
        self._wakeup.set()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> str | None:
        """The next key to reconcile; None once the queue is closed."""
        while True:
            while self._urgent or self._ready:
                urgent = bool(self._urgent)
                key = (self._urgent if urgent else self._ready).popleft()
                if self._queued.get(key) is not urgent:
                    continue  # the other line's entry of a key made urgent, or served
                del self._queued[key]
                self._processing.add(key)
                return key
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """A worker finished ``key``; requeue it if it was added meanwhile."""
        self._processing.discard(key)
        urgent = self._dirty.pop(key, None)
        if urgent is not None:
            self.add(key, urgent=urgent)

    def add_rate_limited(self, key: str) -> float:
        """Count one more failure of ``key`` and queue it after its backoff; returns the delay.

        Until the delay has passed, every ``add`` of the key is held back to the same time.
        """
        n = self._failures[key] = self._failures.get(key, 0) + 1
        delay = backoff_delay(n, self.backoff_base, self.backoff_cap, self._jitter())
        if not self._closed:
            self._not_before[key] = asyncio.get_running_loop().time() + delay
        self.add(key, delay)
        return delay

    def failures(self, key: str) -> int:
        """How many failures in a row ``key`` has had since it was last forgotten."""
        return self._failures.get(key, 0)

    def held_back(self, key: str) -> float:
        """Seconds left of ``key``'s backoff (0 when it is not backing off)."""
        until = self._not_before.get(key)
        if until is None:
            return 0.0
        left = until - asyncio.get_running_loop().time()
        if left <= 0:
            self._not_before.pop(key, None)
            return 0.0
        return left

    def forget(self, key: str) -> None:
        """End ``key``'s backoff: it was fixed, it is in sync, or an operator asked to retry."""
        self._failures.pop(key, None)
        self._not_before.pop(key, None)

    def discard(self, key: str) -> None:
        """Drop every delayed add and the backoff of ``key`` (the resource was deleted)."""
        self.forget(key)
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()

    def close(self) -> None:
        """Wake every waiting worker with None and accept no more keys."""
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._wakeup.set()
