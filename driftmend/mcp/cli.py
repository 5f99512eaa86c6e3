"""``driftmend mcp``: parse the arguments, then serve. No logic of its own.

Stage: an entry point (see docs/ARCHITECTURE.md). ``driftmend.cli`` adds this
subcommand with ``add_mcp_parser``; ``python -m driftmend.mcp`` runs it on its own. Tokens
come from the environment (``DRIFTMEND_MCP_*``), never from flags, so ``ps`` never shows them.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from driftmend.settings import Settings

DEFAULT_SPECS = "manifests/examples/local"
DEFAULT_PORT = 8765


def add_mcp_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mcp`` to the subcommands of ``driftmend``."""
    p = sub.add_parser(
        "mcp",
        help="serve the tool catalogue over MCP (stdio or streamable HTTP)",
        description="Serve driftmend's tools over MCP. Outside clients get read tools only "
        "unless writes are allowed; over HTTP every request needs DRIFTMEND_MCP_READ_TOKEN or "
        "DRIFTMEND_MCP_WRITE_TOKEN as a bearer token. See docs/MCP_TOOLS.md.",
    )
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        help=f"spec file or directory naming the resources (default {DEFAULT_SPECS})",
    )
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="let clients call tools that change the stack (DRIFTMEND_MCP_ALLOW_WRITES)",
    )
    p.add_argument("--state-dir", type=Path, help="the controller's state (default .driftmend/)")
    p.add_argument("--db-path", type=Path, help="the SQLite store that records refusals")
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    """``driftmend mcp [--transport stdio|http]``: serve until the client or a signal ends it."""
    from driftmend.mcp.server import serve

    overrides: dict[str, Any] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    if args.db_path is not None:
        overrides["db_path"] = args.db_path
    if args.allow_writes:
        overrides["mcp_allow_writes"] = True
    settings = Settings(**overrides)
    try:
        return asyncio.run(
            serve(settings, args.filename or [DEFAULT_SPECS], args.transport, args.host, args.port)
        )
    except KeyboardInterrupt:
        return 130
