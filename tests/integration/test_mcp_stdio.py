"""``driftmend mcp`` over stdio, driven by the official ``mcp`` client, on real servers.

The server is a child process (``python -m driftmend.mcp``) reading a spec file that names
a Redis and a PostgreSQL server started by the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from mcp import Client, StdioServerParameters

from driftmend.mcp.client import ExternalServer, McpInvoker
from driftmend.spec import RedisCache
from driftmend.store import Store
from driftmend.tools.base import ToolContext
from driftmend.tools.catalogue import default_catalogue
from tests.integration.harness import REPO, write_specs
from tests.services import PostgresServer, RedisServer

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"
APPROVAL = "approve-flush-42"
READ_TOOLS = {"container_logs", "container_stats", "pg_sessions", "redis_info"}


@pytest.fixture
def spec(tmp_path: Path, own_redis: RedisServer, postgres_server: PostgresServer) -> Iterator[Path]:
    """A spec naming the test's Redis (with three keys) and PostgreSQL."""
    with redis.Redis(port=own_redis.port) as r:
        r.mset({"a": "1", "b": "2", "c": "3"})
    yield write_specs(
        tmp_path / "stack.yaml",
        [
            {
                "apiVersion": API,
                "kind": "RedisCache",
                "metadata": {"name": "cache"},
                "spec": {"host": "127.0.0.1", "port": own_redis.port},
            },
            {
                "apiVersion": API,
                "kind": "PostgresDatabase",
                "metadata": {"name": "db"},
                "spec": {"host": "127.0.0.1", "port": postgres_server.port},
            },
        ],
    )


def stdio_client(spec: Path, state: Path, **env: str) -> Client:
    """A client of a fresh ``driftmend mcp --transport stdio`` child process."""
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "driftmend.mcp", "--transport", "stdio"),
            *("-f", str(spec), "--state-dir", str(state)),
        ],
        cwd=str(REPO),
        env={"PATH": os.environ["PATH"], **env},
    )
    return Client(params, read_timeout_seconds=30)


async def test_lists_read_tools_and_reads_live_redis_and_postgres(
    spec: Path, tmp_path: Path
) -> None:
    async with stdio_client(spec, tmp_path / "state") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        info = await client.call_tool("redis_info", {"resource": "RedisCache/cache"})
        sessions = await client.call_tool("pg_sessions", {"resource": "PostgresDatabase/db"})
    assert set(tools) == READ_TOOLS
    redis_info = tools["redis_info"]
    assert redis_info.annotations is not None and redis_info.annotations.read_only_hint is True
    assert redis_info.input_schema["properties"]["resource"]["enum"] == ["RedisCache/cache"]
    assert redis_info.output_schema is not None
    assert set(redis_info.output_schema["properties"]) == {"status", "data", "error"}
    assert tools["pg_sessions"].input_schema["properties"]["limit"]["maximum"] == 50

    assert not info.is_error and info.structured_content is not None
    data = info.structured_content["data"]
    assert info.structured_content["status"] == "ok"
    assert data["maxmemory_bytes"] == 16 * 1024 * 1024 and data["maxmemory_policy"] == "noeviction"
    assert int(data["keys"]) == 3
    assert sessions.structured_content is not None
    assert sessions.structured_content["status"] == "ok", sessions.structured_content
    assert sessions.structured_content["data"]["max_connections"] == 30


async def test_writes_are_refused_and_recorded_when_not_allowed(
    spec: Path, tmp_path: Path, own_redis: RedisServer
) -> None:
    state = tmp_path / "state"
    async with stdio_client(spec, state) as client:
        refused = await client.call_tool(
            "redis_set_policy", {"resource": "RedisCache/cache", "policy": "allkeys-lru"}
        )
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["status"] == "refused"
    assert "DRIFTMEND_MCP_ALLOW_WRITES" in refused.structured_content["error"]
    with redis.Redis(port=own_redis.port) as r:
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    with Store(state / "driftmend.db") as store:
        (action,) = store.audit_records.actions()
    assert action["action"] == "mcp_refused" and action["key"] == "RedisCache/cache"
    assert action["actor"] == "mcp:stdio" and action["detail"]["tool"] == "redis_set_policy"


async def test_with_writes_allowed_destructive_tools_still_need_approval(
    spec: Path, tmp_path: Path, own_redis: RedisServer
) -> None:
    env = {"DRIFTMEND_MCP_ALLOW_WRITES": "true", "DRIFTMEND_MCP_APPROVAL_TOKEN": APPROVAL}
    state = tmp_path / "state"
    async with stdio_client(spec, state, **env) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        policy = await client.call_tool(
            "redis_set_policy", {"resource": "RedisCache/cache", "policy": "allkeys-lru"}
        )
        unapproved = await client.call_tool("redis_flush", {"resource": "RedisCache/cache"})
        with redis.Redis(port=own_redis.port) as r:
            keys_after_refusal = r.dbsize()
        approved = await client.call_tool(
            "redis_flush", {"resource": "RedisCache/cache", "approval_token": APPROVAL}
        )
    assert {"redis_flush", "redis_set_policy", "container_restart"} <= names
    assert policy.structured_content is not None and policy.structured_content["status"] == "ok"
    assert unapproved.structured_content is not None
    assert unapproved.structured_content["status"] == "refused"
    assert "approval_token" in unapproved.structured_content["error"]
    assert keys_after_refusal == 3
    assert approved.structured_content is not None
    assert approved.structured_content["status"] == "ok", approved.structured_content
    with redis.Redis(port=own_redis.port) as r:
        assert r.dbsize() == 0
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    with Store(state / "driftmend.db") as store:
        actions = store.audit_records.actions()
    assert [a["action"] for a in reversed(actions)] == ["mcp_call", "mcp_refused", "mcp_call"]
    assert APPROVAL not in str(actions)


async def test_the_controller_reaches_it_as_an_external_server_by_command(
    spec: Path, tmp_path: Path
) -> None:
    """``settings.mcp_servers`` with a command: tools named ``external.<server>/<tool>``."""
    command = (sys.executable, "-m", "driftmend.mcp", "--transport", "stdio", "-f", str(spec))
    twin = ExternalServer(
        name="twin", command=(*command, "--state-dir", str(tmp_path / "twin")), timeout_s=30
    )
    ctx = ToolContext(None, None, None, None, {})  # type: ignore[arg-type]
    invoker = McpInvoker(default_catalogue(), ctx, externals=[twin])
    assert await invoker.discover() == {}
    facts = invoker.tool_facts()
    assert facts["external.twin/pg_sessions"].effect == "read"
    assert "external.twin/redis_flush" not in facts  # a read-only server does not list it
    cache = RedisCache.model_validate(
        {"apiVersion": API, "kind": "RedisCache", "metadata": {"name": "cache"}, "spec": {}}
    )
    result, call = await invoker.invoke(
        "external.twin/redis_info", cache, {"resource": "RedisCache/cache"}
    )
    assert result.ok and int(result.data["keys"]) == 3
    assert call is not None
    assert (call["server"], call["transport"], call["tool"]) == ("twin", "stdio", "redis_info")
    refused, _ = await invoker.invoke(
        "external.twin/redis_flush", cache, {"resource": "RedisCache/cache"}
    )
    assert refused.status.value == "refused"
