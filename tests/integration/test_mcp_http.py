"""``driftmend mcp`` over streamable HTTP with bearer tokens, on real servers.

The server is a child process on a free port of 127.0.0.1; the clients are the official
``mcp`` client (through httpx2, which it uses) and a bare HTTP request for the 401.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from driftmend.mcp.client import ExternalServer, McpInvoker
from driftmend.model import ToolStatus
from driftmend.spec import RedisCache
from driftmend.store import Store
from driftmend.tools.base import ToolContext
from driftmend.tools.catalogue import default_catalogue
from tests.integration.harness import REPO, write_specs
from tests.services import RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"
READ_TOKEN = "read-secret-7f3a"
WRITE_TOKEN = "write-secret-91c2"
APPROVAL = "approval-secret-5d0e"


class McpHttp:
    """A running ``driftmend mcp --transport http`` and what it was started with."""

    def __init__(self, url: str, state: Path, resource: RedisCache) -> None:
        self.url = url
        self.state = state
        self.resource = resource


@pytest.fixture
def mcp_http(tmp_path: Path, own_redis: RedisServer) -> Iterator[McpHttp]:
    """The server, with writes allowed: what a caller may do depends on its token."""
    with redis.Redis(port=own_redis.port) as r:
        r.mset({"a": "1", "b": "2"})
    doc = {
        "apiVersion": API,
        "kind": "RedisCache",
        "metadata": {"name": "cache"},
        "spec": {"host": "127.0.0.1", "port": own_redis.port},
    }
    spec = write_specs(tmp_path / "stack.yaml", [doc])
    state, port = tmp_path / "state", free_port()
    env = {
        **os.environ,
        "DRIFTMEND_MCP_ALLOW_WRITES": "true",
        "DRIFTMEND_MCP_READ_TOKEN": READ_TOKEN,
        "DRIFTMEND_MCP_WRITE_TOKEN": WRITE_TOKEN,
        "DRIFTMEND_MCP_APPROVAL_TOKEN": APPROVAL,
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftmend.mcp", "--transport", "http"),
            *("--port", str(port), "-f", str(spec), "--state-dir", str(state)),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, deadline_s=30)
        yield McpHttp(f"http://127.0.0.1:{port}/mcp", state, RedisCache.model_validate(doc))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    text = (tmp_path / "server.log").read_text(errors="replace")
    for secret in (READ_TOKEN, WRITE_TOKEN, APPROVAL):
        assert secret not in text, "a token reached the server's log"


def client(url: str, http: httpx2.AsyncClient) -> Client:
    return Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30)


def bearer(token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_without_a_valid_token_every_request_is_401(mcp_http: McpHttp) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as h:
        none = await h.post(mcp_http.url, json=hello, headers=headers)
        wrong = await h.post(
            mcp_http.url, json=hello, headers={**headers, "Authorization": "Bearer nope"}
        )
    assert none.status_code == 401 and wrong.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")


async def test_the_read_token_reads_and_is_refused_writes(
    mcp_http: McpHttp, own_redis: RedisServer
) -> None:
    async with bearer(READ_TOKEN) as http, client(mcp_http.url, http) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        info = await c.call_tool("redis_info", {"resource": "RedisCache/cache"})
        write = await c.call_tool(
            "redis_set_policy", {"resource": "RedisCache/cache", "policy": "allkeys-lru"}
        )
    assert names == {"container_logs", "container_stats", "pg_sessions", "redis_info"}
    assert info.structured_content is not None and info.structured_content["status"] == "ok"
    assert int(info.structured_content["data"]["keys"]) == 2
    assert write.is_error and write.structured_content is not None
    assert write.structured_content["status"] == "refused"
    assert "write scope" in write.structured_content["error"]
    with redis.Redis(port=own_redis.port) as r:
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    with Store(mcp_http.state / "driftmend.db") as store:
        (action,) = store.audit_records.actions()
    assert action["action"] == "mcp_refused" and action["actor"] == "mcp:http:read-token"


async def test_the_write_token_writes_and_destructive_needs_approval(
    mcp_http: McpHttp, own_redis: RedisServer
) -> None:
    async with bearer(WRITE_TOKEN) as http, client(mcp_http.url, http) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        policy = await c.call_tool(
            "redis_set_policy", {"resource": "RedisCache/cache", "policy": "allkeys-lru"}
        )
        unapproved = await c.call_tool("redis_flush", {"resource": "RedisCache/cache"})
        approved = await c.call_tool(
            "redis_flush", {"resource": "RedisCache/cache", "approval_token": APPROVAL}
        )
    flush = tools["redis_flush"]
    assert flush.annotations is not None and flush.annotations.destructive_hint is True
    assert "approval_token" in flush.input_schema["properties"]
    assert policy.structured_content is not None and policy.structured_content["status"] == "ok"
    assert unapproved.structured_content is not None
    assert unapproved.structured_content["status"] == "refused"
    assert approved.structured_content is not None
    assert approved.structured_content["status"] == "ok", approved.structured_content
    assert approved.structured_content["data"]["keys_removed"] == 2
    with redis.Redis(port=own_redis.port) as r:
        assert r.dbsize() == 0
    with Store(mcp_http.state / "driftmend.db") as store:
        actions = store.audit_records.actions()
    assert {a["actor"] for a in actions} == {"mcp:http:write-token"}
    assert APPROVAL not in str(actions)


async def test_the_controller_reaches_it_as_an_external_server(mcp_http: McpHttp) -> None:
    """An external MCP server by URL, with a bearer header, as ``settings.mcp_servers`` says."""
    server = ExternalServer(
        name="twin", url=mcp_http.url, headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    ctx = ToolContext(None, None, None, None, {})  # type: ignore[arg-type]
    invoker = McpInvoker(default_catalogue(), ctx, externals=[server])
    assert await invoker.discover() == {}
    facts = invoker.tool_facts()
    assert facts["external.twin/redis_info"].effect == "read"
    assert "external.twin/redis_flush" not in facts  # the read token does not list it
    result, call = await invoker.invoke(
        "external.twin/redis_info", mcp_http.resource, {"resource": "RedisCache/cache"}
    )
    assert result.ok and int(result.data["keys"]) == 2
    assert call is not None
    assert (call["server"], call["transport"], call["tool"]) == ("twin", "http", "redis_info")
    assert call["is_error"] is False and "headers" not in call


async def test_an_unreachable_external_server_is_a_failed_result() -> None:
    server = ExternalServer(name="gone", url=f"http://127.0.0.1:{free_port()}/mcp", timeout_s=5)
    ctx = ToolContext(None, None, None, None, {})  # type: ignore[arg-type]
    invoker = McpInvoker(default_catalogue(), ctx, externals=[server])
    doc = {"apiVersion": API, "kind": "RedisCache", "metadata": {"name": "c"}, "spec": {}}
    result, call = await invoker.invoke("external.gone/x", RedisCache.model_validate(doc), {})
    assert result.status is ToolStatus.ERROR and "MCP call to gone failed" in (result.error or "")
    assert call is not None and call["is_error"] is True and "transport_error" in call
    assert set(await invoker.discover()) == {"gone"}
