"""The controller's own fixes travel through MCP: a crash healed, each step naming its call.

Same real process and policy as ``test_heal_crash.py``, with the controller's invoker set to
``McpInvoker`` (an in-memory MCP session to its own server), as ``build_controller`` does.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.app import build_controller
from controller.mcp.client import McpInvoker
from controller.settings import Settings
from tests.integration.harness import build, down_all, eventually, load, write_specs
from tests.integration.test_heal_crash import crash_policy, web_container
from tests.services import free_port

pytestmark = pytest.mark.integration


async def test_a_crash_is_healed_through_mcp(tmp_path: Path) -> None:
    specs = write_specs(
        tmp_path / "specs.yaml", [web_container("web", free_port()), crash_policy()]
    )
    result = load(specs)
    state = tmp_path / "state"
    controller = build(state)
    controller.invoker = McpInvoker(controller.catalogue, controller.tool_context)
    controller.apply(result)
    await controller.start()
    try:
        await eventually(
            lambda: (controller.store.resource("Container/web") or {}).get("health") == "healthy",
            what="web healthy",
        )
        stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
        os.kill(stats["replicas"][0]["pid"], signal.SIGKILL)
        fix = await eventually(
            lambda: (
                (f := controller.store.last_fix("Container/web")) and f["status"] == "done" and f
            ),
            what="the fix finished",
        )
    finally:
        await controller.stop()
        controller.store.close()
        await down_all(state, result)
    assert fix["outcome"] == "fixed", fix
    (step,) = fix["steps"]
    assert step["tool"] == "container_restart" and step["status"] == "ok"
    call = step["mcp_call"]
    assert call is not None, "the stored step names no MCP call"
    assert call["server"] == "driftmend" and call["transport"] == "memory"
    assert call["tool"] == "container_restart" and call["is_error"] is False
    assert call["arguments"] == {"resource": "Container/web"}
    assert 0 <= call["duration_s"] < 10


async def test_build_controller_calls_its_tools_through_mcp(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        mcp_servers=[{"name": "pg", "command": ["true"]}, {"name": "bad"}],
    )
    controller = build_controller(settings, CollectorRegistry())
    try:
        assert isinstance(controller.invoker, McpInvoker)
        assert controller.invoker.externals == ["pg"]  # the invalid one is logged and left out
    finally:
        await controller.stop()
        controller.store.close()
