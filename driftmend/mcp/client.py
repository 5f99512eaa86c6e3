"""The controller's MCP client: ``act`` reaches every tool through an MCP session.

Stage: *act*. ``McpInvoker`` implements ``act.ToolInvoker``. Catalogue tools travel through
an in-memory session to the controller's own MCP server (built with the trusted controller
caller: the guard admitted the plan before ``act`` runs). Tools of external MCP servers,
declared in ``settings.mcp_servers`` by command or URL, are named
``external.<server>/<tool>`` and travel through a stdio or streamable HTTP session. Every
call returns ``(ToolResult, mcp_call)``: the call made (server, transport, tool, redacted
arguments, duration, isError), which ``act`` journals with the step.

Calls to our own server share one session, opened at the first call and kept until
``close``: a session per call cost a handshake and a ``tools/list`` whose schemas enumerate
every resource key, which at 1,000 resources and 50 fixes at once was most of a fix's time
(issue 15). A task of its own enters and leaves it (anyio's cancel scopes must be left by
the task that entered them); the fixes' tasks only send requests on it. A session that
broke is dropped and the next call opens a new one. An external server gets a session per
call: for a stdio server that is a process start, which healing steps (seconds apart) can
afford. Nothing raises out of ``invoke``: a transport or protocol error is a failed
``ToolResult``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import httpx2
import jsonschema  # type: ignore[import-untyped]
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from driftmend.guard import ToolFacts
from driftmend.mcp.auth import CONTROLLER, AccessRules, redact
from driftmend.mcp.server import RESOURCE_ARG, SERVER_NAME, build_server
from driftmend.model import ToolResult, ToolStatus
from driftmend.spec import KINDS, Resource
from driftmend.tools.base import Catalogue, ToolContext
from driftmend.tools.catalogue import tool_facts

log = logging.getLogger("driftmend.mcp.client")

EXTERNAL_PREFIX = "external."
# Every resource kind: an external tool is not bound to one, the policy decides where it runs.
_ALL_KINDS = tuple(k for k in KINDS if k != "HealingPolicy")
_CLIENT_INFO = types.Implementation(name="driftmend-controller", version="1")


class ExternalServer(BaseModel):
    """One external MCP server of ``settings.mcp_servers``: a command or a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")
    # Extra environment for a command (PATH and HOME are always passed on).
    env: dict[str, str] = Field(default_factory=dict)
    # Extra HTTP headers for a URL (an Authorization header, say); never logged.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout_s: float = Field(default=60.0, gt=0)
    # The resource kinds whose policies may use this server's tools (the guard checks it):
    # a PostgreSQL server's tools have no business on a Redis cache. Default: every kind.
    kinds: tuple[str, ...] = Field(default=_ALL_KINDS, min_length=1)
    # Tools whose own hints are not to be believed: their effect here, by tool name.
    # An unhinted tool is already taken as destructive; this is for a server whose
    # "read-only" tool writes.
    effects: dict[str, Literal["read", "reversible", "destructive"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_in(self) -> ExternalServer:
        unknown = [k for k in self.kinds if k not in _ALL_KINDS]
        if unknown:
            raise ValueError(
                f"external MCP server {self.name!r}: unknown kind(s) {', '.join(unknown)}; "
                f"use {', '.join(_ALL_KINDS)}"
            )
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"external MCP server {self.name!r}: give exactly one of command or url"
            )
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """How we reach it."""
        return "stdio" if self.command is not None else "http"


def external_servers(raw: Sequence[Mapping[str, object]]) -> list[ExternalServer]:
    """The valid external servers of ``settings.mcp_servers``; each invalid one is logged."""
    out: list[ExternalServer] = []
    for i, item in enumerate(raw):
        try:
            out.append(ExternalServer.model_validate(item))
        except ValidationError as exc:
            log.error("mcp_servers[%d] is ignored: %s", i, exc.errors()[0]["msg"])
    return out


def split_external(name: str) -> tuple[str, str] | None:
    """``external.<server>/<tool>`` as ``(server, tool)``; None for any other name."""
    if not name.startswith(EXTERNAL_PREFIX) or "/" not in name:
        return None
    server, _, tool = name.removeprefix(EXTERNAL_PREFIX).partition("/")
    return (server, tool) if server and tool else None


def effect_of(annotations: types.ToolAnnotations | None) -> str:
    """An external tool's effect from its hints; unhinted counts as destructive, as MCP says."""
    if annotations is not None and annotations.read_only_hint:
        return "read"
    if annotations is not None and annotations.destructive_hint is False:
        return "reversible"
    return "destructive"


def to_tool_result(result: types.CallToolResult) -> ToolResult:
    """An MCP result as a ``ToolResult``: ours carry one whole; others are wrapped."""
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    structured = result.structured_content
    # A driftmend server's shape (ours, or another driftmend reached as an external server).
    if (
        isinstance(structured, dict)
        and structured.keys() <= {"status", "data", "error"}
        and structured.get("status") in {s.value for s in ToolStatus}
    ):
        data = structured.get("data")
        error = structured.get("error")
        return ToolResult(
            ToolStatus(structured["status"]),
            data if isinstance(data, dict) else {},
            error if isinstance(error, str) else None,
        )
    if result.is_error:
        return ToolResult.failure(text[:2000] or "the MCP tool reported an error")
    if isinstance(structured, dict):
        return ToolResult.success(**structured)
    return ToolResult.success(text=text[:20000])


class McpInvoker:
    """Calls tools through MCP: our own server in memory, external servers by name."""

    def __init__(
        self,
        catalogue: Catalogue,
        ctx: ToolContext,
        *,
        externals: Sequence[ExternalServer] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalogue = catalogue
        self._server = build_server(catalogue, ctx, AccessRules(), caller=CONTROLLER)
        # "legacy" frames every message as JSON-RPC over in-memory streams, as a stdio or
        # HTTP client would; the SDK's default for an in-process server skips serialization,
        # and then a plan could pass what no outside client can.
        self._own = _SharedSession(
            lambda: Client(self._server, mode="legacy", client_info=_CLIENT_INFO)
        )
        self._externals = {e.name: e for e in externals}
        self._clock = clock
        self._external_facts: dict[str, ToolFacts] = {}

    @property
    def externals(self) -> list[str]:
        """The names of the external servers this invoker can reach."""
        return sorted(self._externals)

    async def invoke(
        self, tool: str, resource: Resource, params: Mapping[str, Any]
    ) -> tuple[ToolResult, dict[str, Any] | None]:
        """Run ``tool`` on ``resource`` over MCP; the result and the MCP call made."""
        external = split_external(tool)
        if external is not None:
            server_name, remote = external
            server = self._externals.get(server_name)
            if server is None:
                known = ", ".join(self.externals) or "none"
                return ToolResult.refused(
                    f"no external MCP server {server_name!r} (configured: {known})"
                ), None
            # An external tool knows nothing of our resources: its parameters are its input.
            return await self._call(
                server.name, server.transport, self._open(server), remote, dict(params)
            )
        arguments = {RESOURCE_ARG: resource.key, **params}
        return await self._call(SERVER_NAME, "memory", self._own, tool, arguments)

    async def close(self) -> None:
        """End the session to our own server, if one is open (the controller stops)."""
        await self._own.close()

    async def _call(
        self,
        server: str,
        transport: str,
        client: AbstractAsyncContextManager[Client] | _SharedSession,
        tool: str,
        arguments: dict[str, Any],
    ) -> tuple[ToolResult, dict[str, Any]]:
        call: dict[str, Any] = {
            "server": server,
            "transport": transport,
            "tool": tool,
            "arguments": redact(arguments),
        }
        started = self._clock()
        try:
            async with client as session:
                answer = await session.call_tool(tool, arguments)
            result = to_tool_result(answer)
            call["is_error"] = answer.is_error
        except Exception as exc:  # the transport or the peer failed: a value, never a raise
            why = _describe(exc)
            log.warning("MCP call %s/%s failed: %s", server, tool, why)
            result = ToolResult.failure(f"MCP call to {server} failed: {why}")
            call["is_error"] = True
            call["transport_error"] = why
        call["duration_s"] = round(self._clock() - started, 4)
        return result, call

    def _open(self, server: ExternalServer) -> AbstractAsyncContextManager[Client]:
        """A client of ``server``, to be entered."""
        if server.command is not None:
            params = StdioServerParameters(
                command=server.command[0], args=list(server.command[1:]), env=_env(server.env)
            )
            return Client(params, client_info=_CLIENT_INFO, read_timeout_seconds=server.timeout_s)
        assert server.url is not None
        http = httpx2.AsyncClient(headers=server.headers, timeout=server.timeout_s)
        return _HttpClient(
            http,
            Client(streamable_http_client(server.url, http_client=http), client_info=_CLIENT_INFO),
        )

    async def discover(self) -> dict[str, str]:
        """List every external server's tools for the guard; returns the servers that failed."""
        problems: dict[str, str] = {}
        facts: dict[str, ToolFacts] = {}
        for server in self._externals.values():
            try:
                async with self._open(server) as session:
                    listed = await session.list_tools()
            except Exception as exc:  # one unreachable server must not hide the others
                problems[server.name] = _describe(exc)
                log.warning(
                    "external MCP server %s: cannot list tools: %s",
                    server.name,
                    problems[server.name],
                )
                continue
            for t in listed.tools:
                name = f"{EXTERNAL_PREFIX}{server.name}/{t.name}"
                effect = server.effects.get(t.name) or effect_of(t.annotations)
                facts[name] = ToolFacts(server.kinds, effect, _validator(t))
        self._external_facts = facts
        return problems

    def tool_facts(self) -> dict[str, ToolFacts]:
        """What the guard knows of every tool: the catalogue's and the discovered external ones."""
        return {**tool_facts(self._catalogue), **self._external_facts}


class _SharedSession:
    """One long-lived client session, entered and left by a task of its own.

    Used as ``async with shared as session``: entering waits for the session (opening it
    the first time), leaving does nothing unless the call failed, which drops the session
    so that the next call opens a fresh one.
    """

    def __init__(self, open_client: Callable[[], Client]) -> None:
        self._open_client = open_client
        self._ready: asyncio.Future[Client] | None = None
        self._done: asyncio.Event | None = None
        self._owner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Client:
        ready = self._ready
        if ready is None or (ready.done() and (ready.cancelled() or ready.exception())):
            self._start()
        assert self._ready is not None
        return await asyncio.shield(self._ready)

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, Exception):  # the session may be broken: the next call reopens
            await self.close()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready, self._done = loop.create_future(), asyncio.Event()
        self._owner = loop.create_task(
            self._own(self._ready, self._done), name="MCP session to the controller's tools"
        )

    async def _own(self, ready: asyncio.Future[Client], done: asyncio.Event) -> None:
        try:
            async with self._open_client() as client:
                ready.set_result(client)
                await done.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("the MCP session to the controller's tools ended: %s", _describe(exc))
        finally:
            if not ready.done():  # cancelled before it was open
                ready.cancel()

    async def close(self) -> None:
        """Leave the session (from its own task) and wait until it is left."""
        owner, done = self._owner, self._done
        self._ready = self._done = self._owner = None
        if owner is None or done is None:
            return
        done.set()
        await asyncio.wait([owner])  # its errors were logged by itself


class _HttpClient:
    """A ``Client`` over streamable HTTP that also closes the httpx2 client it was given."""

    def __init__(self, http: httpx2.AsyncClient, client: Client) -> None:
        self._http = http
        self._client = client

    async def __aenter__(self) -> Client:
        await self._http.__aenter__()
        try:
            return await self._client.__aenter__()
        except BaseException:
            await self._http.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._client.__aexit__(*exc)
        finally:
            await self._http.__aexit__(None, None, None)


def _validator(tool: types.Tool) -> Callable[[Mapping[str, Any]], object]:
    """Check a step's parameters against an external tool's input schema, for the guard."""
    schema = tool.input_schema

    def validate(params: Mapping[str, Any]) -> object:
        jsonschema.validate(dict(params), schema)
        return params

    return validate


def _describe(exc: BaseException) -> str:
    """The innermost cause of ``exc``: anyio wraps a transport's error in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    from mcp.client.stdio import get_default_environment

    return {**get_default_environment(), **extra}
