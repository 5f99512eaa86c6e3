"""The MCP Inspector's command-line mode, from npm, as a third-party client of ``driftmend mcp``.

It starts our stdio server itself, lists the tools and calls one against a real Redis. The
Inspector is fetched with ``npx -y`` at test time; when npm cannot fetch it, the tests skip
and say so (nothing else skips them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.harness import REPO, write_specs
from tests.services import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PACKAGE = "@modelcontextprotocol/inspector"
# What npm prints when it cannot reach or resolve the registry: the only reasons to skip.
_FETCH_FAILURES = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "E404", "ENETUNREACH")


def inspector(spec: Path, state: Path, *args: str) -> Any:
    """Run the Inspector CLI against a fresh stdio server; its JSON answer."""
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed: the MCP Inspector comes from npm")
    command = [npx, "-y", PACKAGE, "--cli", sys.executable, "-m", "driftmend.mcp"]
    command += ["--transport", "stdio", "-f", str(spec), "--state-dir", str(state), *args]
    done = subprocess.run(
        command, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=240
    )
    if done.returncode != 0 and any(code in done.stderr for code in _FETCH_FAILURES):
        pytest.skip(f"npm cannot fetch {PACKAGE}: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def spec(tmp_path: Path, own_redis: RedisServer) -> Path:
    with redis.Redis(port=own_redis.port) as r:
        r.mset({"k1": "v", "k2": "v"})
    doc = {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "RedisCache",
        "metadata": {"name": "cache"},
        "spec": {"host": "127.0.0.1", "port": own_redis.port},
    }
    return write_specs(tmp_path / "stack.yaml", [doc])


def test_the_inspector_lists_the_tools(spec: Path, tmp_path: Path) -> None:
    answer = inspector(spec, tmp_path / "state", "--method", "tools/list")
    tools = {t["name"]: t for t in answer["tools"]}
    assert set(tools) == {"container_logs", "container_stats", "pg_sessions", "redis_info"}
    info = tools["redis_info"]
    assert info["annotations"]["readOnlyHint"] is True
    assert info["inputSchema"]["properties"]["resource"]["enum"] == ["RedisCache/cache"]
    assert info["outputSchema"]["required"] == ["status"]


def test_the_inspector_calls_a_read_tool(spec: Path, tmp_path: Path) -> None:
    answer = inspector(
        spec,
        tmp_path / "state",
        "--method",
        "tools/call",
        "--tool-name",
        "redis_info",
        "--tool-arg",
        "resource=RedisCache/cache",
    )
    assert answer["isError"] is False
    assert answer["structuredContent"]["status"] == "ok"
    assert int(answer["structuredContent"]["data"]["keys"]) == 2
    assert json.loads(answer["content"][0]["text"]) == answer["structuredContent"]
