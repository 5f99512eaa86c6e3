"""The work queue of the reconcile loop: de-duplicating, delayed, one worker per key.

Stage: *queue* in DESIGN.md, in client-go's manner: a key is queued at most once; a key added
while a worker holds it is queued again when the worker is done, so no event is lost and no
resource is reconciled twice at once. Delayed adds keep only the earliest due time.
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    """Keys waiting for a reconcile."""

    def __init__(self) -> None:
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._ready)

    def add(self, key: str, delay: float = 0.0) -> None:
        """Queue ``key`` now, or after ``delay`` seconds (the earliest request wins)."""
        if self._closed:
            return
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
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._wakeup.set()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> str | None:
        """The next key to reconcile; None once the queue is closed."""
        while not self._ready:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._ready.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        """A worker finished ``key``; requeue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: str) -> None:
        """Drop any delayed add of ``key`` (the resource was deleted)."""
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
