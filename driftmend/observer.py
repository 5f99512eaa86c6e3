"""Observing a resource: its driver's signals, plus the signals read from its logs.

Stage: *observe* in docs/ARCHITECTURE.md. A Container is observed by the container runtime,
a database or cache by its driver; a resource's log files (its host's, for a database or
cache) are attached to the log accumulator the first time it is observed, which then adds
``logs.errors_per_minute`` to every observation. It also hears the runtimes' events
(``changed``), so that a verification waiting between two observations (``pause``) looks
again at once when its resource (or the Container hosting it) changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from driftmend.desired import DesiredState
from driftmend.drivers.base import ContainerRuntime, PostgresDriver, RedisDriver
from driftmend.logs import LogAccumulator
from driftmend.model import Observation
from driftmend.spec import Container, PostgresDatabase, RedisCache, Resource
from driftmend.tools.base import ToolContext

__all__ = ["LOG_FILES_CHECK", "Observer"]

LOG_FILES_CHECK = 5.0  # seconds between two listings of a resource's log files


class Observer:
    """Reads the world for one resource at a time; holds no state but attached log files."""

    def __init__(
        self,
        *,
        desired: DesiredState,
        runtime: ContainerRuntime,
        postgres: PostgresDriver,
        redis: RedisDriver,
        logs: LogAccumulator,
        tool_context: ToolContext,
    ) -> None:
        self._desired = desired
        self.runtime = runtime
        self.postgres = postgres
        self.redis = redis
        self.logs = logs
        self._context = tool_context
        self._attached: set[tuple[str, str]] = set()
        self._logs_checked: dict[str, float] = {}  # key -> when its log files were listed
        self._changes: dict[str, int] = {}  # events seen per key, to notice one between looks
        self._wake: dict[str, asyncio.Event] = {}

    async def observe(self, resource: Resource) -> Observation:
        """The resource's signals now, from its driver, plus the log-derived signals."""
        if isinstance(resource, Container):
            obs = await self.runtime.observe(resource)
        elif isinstance(resource, PostgresDatabase):
            obs = await self.postgres.observe(resource)
        else:
            obs = await self.redis.observe(resource)
        self._attach_logs(resource)
        signals = dict(obs.signals)
        signals["logs.errors_per_minute"] = self.logs.errors_per_minute(resource.key, obs.at)
        return Observation(obs.key, obs.at, signals, obs.facts, obs.error)

    def changed(self, key: str) -> None:
        """A runtime reported an event on ``key``: wake what waits on it and its dependents."""
        for k in (key, *self.dependents(key)):
            self._changes[k] = self._changes.get(k, 0) + 1
            self._logs_checked.pop(k, None)
            wake = self._wake.pop(k, None)
            if wake is not None:
                wake.set()

    def pause(
        self, key: str, sleep: Callable[[float], Awaitable[None]]
    ) -> Callable[[float], Awaitable[None]]:
        """A ``sleep`` for a loop that observes ``key``: it returns early on an event.

        An event between two calls (while the caller observed) ends the next pause at
        once, so none is missed: the count is read when the pause is made and after each.
        """
        seen = self._changes.get(key, 0)

        async def pause(seconds: float) -> None:
            nonlocal seen
            if self._changes.get(key, 0) == seen:
                wake = self._wake.setdefault(key, asyncio.Event())
                waiter = asyncio.ensure_future(wake.wait())
                sleeper = asyncio.ensure_future(sleep(seconds))
                try:
                    await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    sleeper.cancel()
                    await asyncio.gather(waiter, sleeper, return_exceptions=True)
            seen = self._changes.get(key, 0)

        return pause

    def host_of(self, resource: Resource) -> Container | None:
        """The declared Container a database or cache runs in, if any."""
        if isinstance(resource, PostgresDatabase | RedisCache):
            return self._context.host_of(resource)
        return None

    def dependents(self, key: str) -> list[str]:
        """Databases and caches hosted by the Container ``key``."""
        out = []
        for r in self._desired.resources.values():
            host = self.host_of(r)
            if host is not None and host.key == key:
                out.append(r.key)
        return out

    async def host_down(self, resource: Resource) -> str | None:
        """The key of the declared host of a database or cache when it is not running.

        A database whose container is down is not the database's to heal: its host's
        policy restarts the container, and the database waits for that.
        """
        host = self.host_of(resource)
        if host is None or host.spec.replicas <= 0:
            return None
        declared = self._desired.resources.get(host.key)
        if not isinstance(declared, Container):
            return None
        host_obs = await self.runtime.observe(declared)
        return host.key if host_obs.get("container.running") is False else None

    def _attach_logs(self, resource: Resource) -> None:
        # Listing a Container's log files is a directory glob: every LOG_FILES_CHECK
        # seconds, and at once after an event, not on every pass (issue 15). A file found
        # later is read from its last 64 KiB: a new replica's first seconds are in it.
        now = time.monotonic()
        checked = self._logs_checked.get(resource.key)
        if checked is not None and now - checked < LOG_FILES_CHECK:
            return
        self._logs_checked[resource.key] = now
        host = resource if isinstance(resource, Container) else self.host_of(resource)
        if host is None:
            return
        for path in self.runtime.log_files(host):
            if (resource.key, path) not in self._attached:
                self._attached.add((resource.key, path))
                self.logs.attach(resource.key, path, host.name)
