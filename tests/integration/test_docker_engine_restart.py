"""The Docker event stream survives a restart of the engine, and the controller heals across it.

The test restarts only a dockerd that scripts/docker-engine.sh started (its pid file says
which); an engine run by anyone else (systemd, Docker Desktop) is never touched, and the test
skips. Without ``--live-restore`` the engine stops every container when it stops, so the
test also skips while any running container is not a test's (``driftmend.test=1``): it never
takes down someone else's containers. The reconnect queues every Docker resource, so the
controller restarts the container; then a ``docker kill`` is healed although the resync
period is minutes long, and the runtime reported the kill's event: the new stream's doing.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.docker_harness import (
    WEB,
    Engine,
    docker_container,
    docker_runtime,
    engine_session,
    foreign_running_containers,
    own_dockerd_pid,
    policy,
    record_events,
    restart_dockerd,
    running,
)
from tests.integration.harness import eventually, load, write_specs
from tests.services import free_port

pytestmark = [
    pytest.mark.integration,
    # While the engine restarts, calls in flight meet a refused connection, and docker-py
    # then leaves its socket for the garbage collector (a ResourceWarning, nothing more).
    # The test collects that garbage itself, under this filter.
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with engine_session() as e:
        yield e


async def test_event_stream_survives_an_engine_restart(engine: Engine, tmp_path: Path) -> None:
    pid = own_dockerd_pid()
    if pid is None:
        pytest.skip(
            "this engine was not started by scripts/docker-engine.sh; "
            "the test restarts only an engine it started"
        )
    others = foreign_running_containers(engine.api)
    if others:
        pytest.skip(
            f"restarting the engine would stop containers no test made: {', '.join(others)}"
        )
    port = free_port()
    docs = [
        docker_container("web", command=["python3", "-u", "-c", WEB], port=port),
        policy(
            "app-crash",
            [
                {
                    "name": "restart-on-exit",
                    "when": [{"signal": "container.running", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "20s", "interval": "100ms"},
                    "attempts": {"max": 5, "window": "5m"},
                }
            ],
        ),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    async with running(tmp_path / "state", result, resync_period=300.0) as controller:
        runtime = docker_runtime(controller)
        events = record_events(controller)
        await eventually(lambda: runtime.event_stream_connects >= 1, what="the event stream")
        await eventually(
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="web healthy",
        )

        await asyncio.to_thread(restart_dockerd, pid)

        await eventually(
            lambda: runtime.event_stream_connects >= 2, deadline=30, what="a reconnect"
        )
        # The engine stopped the container on its way down: healed after the reconnect.
        first = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["status"] == "done"
                and f["outcome"] == "fixed"
                and f
            ),
            deadline=30,
            what="the container healed after the engine restart",
        )

        # Events flow on the new stream: a kill is reported and healed long before any resync.
        name = "driftmend-default.web-0"
        events.clear()
        await asyncio.to_thread(engine.api.kill, name)
        second = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["id"] > first["id"]
                and f["status"] == "done"
                and f
            ),
            deadline=15,
            what="the kill healed through the new event stream",
        )
        assert second["outcome"] == "fixed", second
        assert ("Container/web", "exit") in events
    gc.collect()
