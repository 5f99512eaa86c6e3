"""The Container tools on both runtimes, through the catalogue, as plans and MCP clients call them.

``container_stop`` and ``container_start`` on a Docker container and on a local process; what
their description promises (a stop is a drift the controller heals unless healing of the
resource is paused); ``container_set_limits`` refusing to raise a limit without a cap.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from driftmend.controller import Controller
from driftmend.drivers.process import ProcessRuntime
from driftmend.model import Outcome, ToolStatus
from driftmend.spec import Container, LoadResult
from tests.integration.docker_harness import (
    Engine,
    docker_container,
    policy,
    running,
)
from tests.integration.harness import REPO, eventually, load, write_specs

pytestmark = pytest.mark.integration

RESYNC = 60.0  # longer than any wait below: only the test's own passes and events drive them
SLEEP = "import time; time.sleep(3600)"


def process_container(name: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "Container",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"process": {"command": [sys.executable, "-c", SLEEP]}, "replicas": replicas},
    }


def specs(tmp_path: Path, docs: list[dict[str, Any]]) -> LoadResult:
    return load(write_specs(tmp_path / "specs.yaml", docs))


def resource(result: LoadResult, name: str) -> Container:
    return next(r for r in result.resources if isinstance(r, Container) and r.name == name)


async def call(controller: Controller, tool: str, c: Container, **params: Any) -> Any:
    found = controller.catalogue.get(tool)
    assert found is not None, tool
    return await found.call(controller.tool_context, c, params)


async def running_count(controller: Controller, c: Container) -> int:
    return int((await controller.runtime.observe(c)).signals["container.replicas_running"] or 0)


async def all_running(controller: Controller, c: Container) -> bool:
    return (await controller.runtime.observe(c)).signals["container.running"] is True


@pytest.mark.parametrize("runtime", ["docker", "process"])
async def test_stop_and_start_on_both_runtimes(
    engine: Engine, tmp_path: Path, runtime: str
) -> None:
    doc = (
        docker_container("app", command=["python3", "-c", SLEEP], replicas=2)
        if runtime == "docker"
        else process_container("app", replicas=2)
    )
    result = specs(tmp_path, [doc])
    app = resource(result, "app")
    state = tmp_path / "state"
    try:
        async with running(state, result, resync_period=RESYNC) as controller:
            await eventually(lambda: all_running(controller, app), what="both replicas running")

            stopped = await call(controller, "container_stop", app)
            assert stopped.status is ToolStatus.OK, stopped
            assert sorted(s["replica"] for s in stopped.data["stopped"]) == [0, 1]
            obs = await controller.runtime.observe(app)
            assert obs.signals["container.running"] is False
            assert obs.signals["container.replicas_running"] == 0
            assert obs.facts["stopped"] == "true"

            started = await call(controller, "container_start", app)
            assert started.status is ToolStatus.OK, started
            assert [s["replica"] for s in started.data["started"]] == [0, 1]
            obs = await controller.runtime.observe(app)
            assert obs.signals["container.running"] is True and "stopped" not in obs.facts

            # Starting what runs already does nothing.
            again = await call(controller, "container_start", app)
            assert again.status is ToolStatus.OK and again.data["started"] == []
    finally:
        if runtime == "process":
            cleanup = ProcessRuntime(state, base_dir=REPO)
            await cleanup.down(app)
            await cleanup.close()


async def test_a_stop_is_healed_unless_healing_is_paused(engine: Engine, tmp_path: Path) -> None:
    """What container_stop's description tells the LLM, as the controller does it."""
    restart_on_exit = {
        "name": "restart-on-exit",
        "when": [{"signal": "container.running", "value": False}],
        "do": [{"tool": "container_restart"}],
        "verify": {"timeout": "20s", "interval": "100ms"},
        "attempts": {"max": 3, "window": "5m"},
    }
    result = specs(
        tmp_path,
        [
            docker_container("app", command=["python3", "-c", SLEEP]),
            policy("app-crash", [restart_on_exit]),
        ],
    )
    app = resource(result, "app")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        await eventually(lambda: all_running(controller, app), what="the replica running")

        controller.operations.set_paused(app.key, True, "test")
        assert (await call(controller, "container_stop", app)).status is ToolStatus.OK
        paused = await controller.reconcile(app.key)
        assert paused.outcome is Outcome.PAUSED, paused
        assert await running_count(controller, app) == 0  # stays down while paused

        controller.operations.set_paused(
            app.key, False, "test"
        )  # queues a pass: the policy heals it

        def healed() -> dict[str, Any] | None:
            fix = controller.store.fix_records.last_fix(app.key)
            return fix if fix and fix["status"] == "done" else None

        fix = await eventually(healed, what="the stop healed once healing resumed")
        assert (fix["outcome"], fix["rule"]) == ("fixed", "restart-on-exit"), fix
        assert await running_count(controller, app) == 1


async def test_set_limits_refuses_to_raise_without_a_cap(engine: Engine, tmp_path: Path) -> None:
    result = specs(
        tmp_path,
        [
            docker_container(
                "app", command=["python3", "-c", SLEEP], limits={"memory": "64Mi", "cpu": 0.5}
            ),
            docker_container(
                "capped",
                command=["python3", "-c", SLEEP],
                limits={"memory": "64Mi", "memoryCap": "96Mi"},
            ),
        ],
    )
    app, capped = resource(result, "app"), resource(result, "capped")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        await eventually(lambda: all_running(controller, app), what="app running")
        out = await call(controller, "container_set_limits", app, memory="128Mi")
        assert out.status is ToolStatus.REFUSED
        assert "no spec.limits.memoryCap is declared" in out.error
        out = await call(controller, "container_set_limits", app, cpu=1)
        assert out.status is ToolStatus.REFUSED and "spec.limits.cpuCap" in out.error
        out = await call(controller, "container_set_limits", capped, memory="128Mi")
        assert out.status is ToolStatus.REFUSED and "above" in out.error and "96Mi" in out.error
        out = await call(controller, "container_set_limits", capped, memory="96Mi")
        assert out.status is ToolStatus.OK, out
        assert out.data["memory"] == 96 << 20
