"""The controller's own fixes travel through MCP: a crash healed, each step naming its call.

Same real process and policy as ``test_heal_crash.py``, with the controller's invoker set to
``McpInvoker`` (an in-memory MCP session to its own server), as ``build_controller`` does.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftmend.app import build_controller
from driftmend.mcp.client import McpInvoker
from driftmend.settings import Settings
from tests.integration.harness import build, down_all, eventually, load, write_specs
from tests.integration.test_heal_crash import crash_policy, web_container
from tests.services import free_port

pytestmark = pytest.mark.integration
OPS_SERVER = Path(__file__).resolve().parents[1] / "fakes" / "ops_mcp_server.py"


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
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="web healthy",
        )
        stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
        os.kill(stats["replicas"][0]["pid"], signal.SIGKILL)
        fix = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["status"] == "done"
                and f
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


# Answers 500 while the file named in $FLAG exists, 200 otherwise.
FLAGGED = r"""
import http.server, os, pathlib
flag = pathlib.Path(os.environ["FLAG"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if flag.exists() else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


async def test_a_fix_through_an_external_mcp_server(tmp_path: Path) -> None:
    """A policy allows an external server's tool by name; the guard checks it against the
    server's schema and kinds, act calls it over stdio, and the journal names the call."""
    flag = tmp_path / "unhealthy"
    web = web_container("web", free_port(), command=[sys.executable, "-c", FLAGGED])
    web["spec"]["process"]["env"] = {"FLAG": str(flag)}
    web["spec"]["health"]["startupTimeout"] = "0s"
    policy = {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "HealingPolicy",
        "metadata": {"name": "flagged"},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
            "rules": [
                {
                    "name": "clear-the-flag",
                    "when": [{"signal": "container.healthy", "value": False}],
                    "do": [{"tool": "external.ops/remove_file", "params": {"path": str(flag)}}],
                    "verify": {"timeout": "10s", "interval": "100ms"},
                }
            ],
        },
    }
    result = load(write_specs(tmp_path / "specs.yaml", [web, policy]))
    state = tmp_path / "state"
    ops = {"name": "ops", "command": [sys.executable, str(OPS_SERVER)], "kinds": ["Container"]}
    controller = build_controller(
        Settings(state_dir=state, mcp_servers=[ops], resync_period=1.0), CollectorRegistry()
    )
    controller.apply(result)
    await controller.start()
    try:
        assert "external.ops/remove_file" in controller.tool_facts()
        await eventually(
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="web healthy",
        )
        flag.touch()
        fix = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["status"] == "done"
                and f
            ),
            what="the external fix finished",
            deadline=60,
        )
    finally:
        await controller.stop()
        controller.store.close()
        await down_all(state, result)
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert not flag.exists()
    (step,) = fix["steps"]
    assert step["tool"] == "external.ops/remove_file" and step["status"] == "ok"
    call = step["mcp_call"]
    assert call["server"] == "ops" and call["transport"] == "stdio"
    assert call["tool"] == "remove_file" and call["arguments"] == {"path": str(flag)}
