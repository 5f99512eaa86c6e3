"""Test doubles at our own Protocols, shared by the driver and tool tests.

Only our seams are doubled here (a runtime that restarts a test server, a log source with
no lines); the servers, drivers and tools under test are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from driftmend.drivers.postgres import PsycopgDriver
from driftmend.drivers.redis import RedisPyDriver
from driftmend.model import LogLine
from driftmend.spec import Container, Resource
from driftmend.tools.base import Catalogue, Tool, ToolContext


class StoppableServer(Protocol):
    """What tests/services.py's servers offer."""

    def stop(self) -> None: ...

    def start(self) -> None: ...


class ServerRuntime:
    """A ``ContainerRuntime`` double whose ``restart`` stops and starts a test server."""

    def __init__(self, server: StoppableServer | None = None) -> None:
        self.server = server
        self.restarts: list[str] = []

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        assert self.server is not None, "this test's runtime hosts no server"
        await asyncio.to_thread(self.server.stop)
        await asyncio.to_thread(self.server.start)
        self.restarts.append(container.key)
        return {"restarted": container.key, "replicas": [0]}


class NoLogs:
    """A ``LogSource`` with no lines: these tools never read logs."""

    def recent(self, key: str, limit: int = 100, min_level: str | None = None) -> list[LogLine]:
        return []

    def errors_per_minute(self, key: str, now: float) -> float:
        return 0.0


@contextlib.asynccontextmanager
async def tool_context(
    runtime: ServerRuntime,
    *resources: Resource,
    postgres: PsycopgDriver | None = None,
    redis: RedisPyDriver | None = None,
) -> AsyncIterator[ToolContext]:
    """A ``ToolContext`` with the given drivers (a fresh, closed-after one for the other)."""
    own_pg = postgres is None
    own_redis = redis is None
    pg = postgres or PsycopgDriver()
    rd = redis or RedisPyDriver()
    try:
        yield ToolContext(
            runtime=runtime,  # type: ignore[arg-type]  # implements restart only
            postgres=pg,
            redis=rd,
            logs=NoLogs(),
            resources={r.key: r for r in resources},
        )
    finally:
        if own_pg:
            await pg.close()
        if own_redis:
            await rd.close()


def tool_from(catalogue: Catalogue, name: str) -> Tool[Any]:
    """The catalogue's tool called ``name`` (the test fails when there is none)."""
    found = catalogue.get(name)
    assert found is not None, f"no tool {name}"
    return found
