"""An external MCP server for the tests: another team's "ops" tools, served over stdio.

A real ``mcp`` SDK server (``MCPServer``), started by the controller's MCP client as a
command, as any external server declared in ``DRIFTMEND_MCP_SERVERS`` would be. Its one
write tool removes a file, which is how the test app is made healthy again.
"""

from __future__ import annotations

from pathlib import Path

from mcp.server import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("ops")


@server.tool(
    description="Remove one file (a flag an app reads). Changes the host; it can be re-created.",
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False),
)
def remove_file(path: str) -> dict[str, object]:
    """Remove ``path``; says whether it was there."""
    target = Path(path)
    existed = target.exists()
    target.unlink(missing_ok=True)
    return {"removed": existed, "path": path}


if __name__ == "__main__":
    server.run("stdio")
