"""``python -m driftmend.mcp [ARGS]``: ``driftmend mcp`` before (or without) the main CLI.

Stage: an entry point. Logs go to stderr: on stdio, stdout is the MCP wire.
"""

from __future__ import annotations

import argparse
import logging
import sys

from driftmend.mcp.cli import add_mcp_parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``driftmend mcp``'s arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m driftmend.mcp")
    sub = parser.add_subparsers(dest="command", required=True)
    add_mcp_parser(sub)
    args = parser.parse_args(["mcp", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
