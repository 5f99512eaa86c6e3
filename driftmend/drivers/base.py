"""The narrow seams the core sees of each driver: small Protocols, injected, swappable.

Stage: *observe* / *act*. The reconcile loop, the tools and the verifier depend on these
Protocols only; the real drivers live beside this file and tests may pass their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from driftmend.errors import RefusedError
from driftmend.model import LogLine, Observation
from driftmend.spec import Container, PostgresDatabase, RedisCache

EventSink = Callable[[str, str], None]
"""Called with (resource key, reason) when a runtime sees an event worth a reconcile now."""

StartFailureSink = Callable[[str, str], None]
"""Called with (resource kind, reason) each time a replica fails to start; ``reason`` is a
bounded word (``permission-denied``, ``not-found``, ``address-in-use``, ``exited-early``,
``other``), fit for a metric label."""


class ContainerRuntime(Protocol):
    """Runs the replicas of ``Container`` resources (the ``process``, ``docker`` and
    ``kubernetes`` runtimes)."""

    def set_event_sink(self, sink: EventSink) -> None:
        """Where to report exits and health changes; called once before ``start``."""

    def set_start_failure_sink(self, sink: StartFailureSink) -> None:
        """Where to count replicas that fail to start; called once before ``start``."""

    async def start(self) -> None:
        """Begin watching (exit waiters, health probes); adopt what already runs."""

    async def close(self) -> None:
        """Stop watching; never stops the supervised processes themselves."""

    async def ensure(self, container: Container) -> list[str]:
        """Create the replicas that were never created (provisioning, not healing).

        Returns what it did, one line per action; empty when nothing was missing.
        """

    async def observe(self, container: Container) -> Observation:
        """The container's signals now: running, replicas, health, CPU, memory, exit code."""

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """Restart one replica, or all (one after another) when ``replica`` is None."""

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose, until ``start_replicas``, ``restart`` or ``scale``.

        The spec still asks for the replicas: the next pass sees the drift (fact ``stopped``).
        """

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Start the desired replicas that are not running (undoes ``stop``); others are left."""

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Run exactly ``replicas`` replicas (within ``spec.maxReplicas``)."""

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        """Update CPU (cores) and memory (bytes) limits, within the spec's caps."""

    async def rollback(self, container: Container) -> dict[str, Any]:
        """Back to the previous revision; ``RefusedError`` on runtimes that keep none."""

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per-replica pid, CPU, memory, uptime, restarts."""

    def log_files(self, container: Container) -> Sequence[str]:
        """The files where the replicas' output goes, for the log accumulator."""


class PostgresDriver(Protocol):
    """SQL access to a ``PostgresDatabase``."""

    async def observe(self, db: PostgresDatabase) -> Observation:
        """up, connections used and ratio, longest query, idle in transaction, settings."""

    async def terminate(
        self, db: PostgresDatabase, min_duration_s: float, states: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Terminate client backends in ``states`` older than ``min_duration_s``; what was ended."""

    async def set_max_connections(self, db: PostgresDatabase, value: int) -> dict[str, Any]:
        """``ALTER SYSTEM SET max_connections``: takes effect at the next restart."""

    async def vacuum(
        self, db: PostgresDatabase, table: str | None, analyze: bool
    ) -> dict[str, Any]:
        """VACUUM (optionally ANALYZE) one table or the whole database."""

    async def analyze(self, db: PostgresDatabase, table: str | None) -> dict[str, Any]:
        """ANALYZE one table or the whole database."""

    async def close(self) -> None:
        """Close pools and connections."""


class RedisDriver(Protocol):
    """RESP access to a ``RedisCache``."""

    async def observe(self, cache: RedisCache) -> Observation:
        """up, memory used and ratio, maxmemory, policy, evicted keys, rejected writes."""

    async def memory_purge(self, cache: RedisCache) -> dict[str, Any]:
        """MEMORY PURGE: give fragmented memory back to the allocator."""

    async def set_maxmemory(self, cache: RedisCache, value: int) -> dict[str, Any]:
        """CONFIG SET maxmemory (bytes)."""

    async def set_policy(self, cache: RedisCache, policy: str) -> dict[str, Any]:
        """CONFIG SET maxmemory-policy."""

    async def flush(self, cache: RedisCache) -> dict[str, Any]:
        """FLUSHDB: every key of the cache's database is deleted."""

    async def close(self) -> None:
        """Close connections."""


class LogSource(Protocol):
    """Recent log lines per resource (the log accumulator)."""

    def recent(self, key: str, limit: int = 100, min_level: str | None = None) -> list[LogLine]:
        """The newest lines of ``key``, oldest first."""

    def errors_per_minute(self, key: str, now: float) -> float:
        """ERROR or worse lines of ``key`` over the minute before ``now``."""


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def no_revisions(container: Container) -> RefusedError:
    """``rollback``'s refusal by a runtime that keeps no revisions (process, docker)."""
    return RefusedError(
        f"{container.key} runs on the {container.spec.runtime} runtime, which keeps no "
        "revisions: container_rollback is for runtime kubernetes"
    )
