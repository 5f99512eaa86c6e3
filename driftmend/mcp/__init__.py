"""The tool catalogue over MCP: the server outside clients use, and the client ``act`` uses.

Stage: *act* in docs/ARCHITECTURE.md. ``server`` turns the catalogue into MCP tools under the access
rules of ``auth``; ``client`` is the ``ToolInvoker`` that reaches those tools (and tools of
external MCP servers) through an MCP client session, so what the controller runs is what an
outside client would run; ``docs`` renders docs/MCP_TOOLS.md; ``cli`` is ``driftmend mcp``.
"""

from __future__ import annotations

from driftmend.mcp.auth import AccessRules, BearerTokens, Caller
from driftmend.mcp.client import ExternalServer, McpInvoker
from driftmend.mcp.server import build_server, serve

__all__ = [
    "AccessRules",
    "BearerTokens",
    "Caller",
    "ExternalServer",
    "McpInvoker",
    "build_server",
    "serve",
]
