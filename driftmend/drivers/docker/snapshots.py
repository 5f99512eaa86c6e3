"""The last snapshot of each Docker Container, kept while nothing says it changed.

Stage: *observe*. A pass used to list and inspect a Container's containers twice (``ensure``
and ``observe``): at 1,000 Containers and a 1 s resync, 4,000 requests a second to the
engine (issue 15). The engine's event stream says when a container is created, started,
stopped, changed or removed; a snapshot is kept until an event concerns its Container, an
action of driftmend's own touches it, the stream reconnects, or ``max_age`` passes (a
safety net for an event lost in a reconnect). Pure bookkeeping: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from driftmend.drivers.docker.replicas import Snapshot

__all__ = ["SNAPSHOT_MAX_AGE", "SnapshotCache"]

SNAPSHOT_MAX_AGE = 10.0  # seconds a snapshot is used without an event at most


class SnapshotCache:
    """Snapshots by Container key, with a generation per key so that a snapshot taken
    while an event arrived is not kept (it may predate the change)."""

    def __init__(
        self, max_age: float = SNAPSHOT_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._kept: dict[str, tuple[float, Snapshot]] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0  # bumped by ``clear``: every token older than it is void

    def get(self, key: str) -> Snapshot | None:
        """The kept snapshot of ``key``, if nothing has changed it since."""
        kept = self._kept.get(key)
        if kept is None or self._clock() - kept[0] >= self.max_age:
            return None
        return kept[1]

    def begin(self, key: str) -> tuple[int, int, float]:
        """Before asking the engine: a token for ``put``."""
        return self._epoch, self._generation.get(key, 0), self._clock()

    def put(self, key: str, snap: Snapshot, token: tuple[int, int, float]) -> None:
        """Keep ``snap`` unless ``key`` went stale since ``begin``."""
        epoch, generation, taken = token
        if epoch == self._epoch and self._generation.get(key, 0) == generation:
            self._kept[key] = (taken, snap)

    def stale(self, key: str) -> None:
        """Something changed ``key``'s containers: the next look asks the engine."""
        self._kept.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    def clear(self) -> None:
        """Every key is stale (the event stream reconnected: events may have been lost)."""
        self._kept.clear()
        self._epoch += 1
