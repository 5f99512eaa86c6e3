"""``driftmend mcp``'s arguments: parsed, never secrets on the command line."""

from __future__ import annotations

import argparse

import pytest

from driftmend.mcp.cli import DEFAULT_PORT, add_mcp_parser, cmd_mcp


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driftmend")
    add_mcp_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["mcp", *argv])


def test_defaults_serve_stdio_read_only() -> None:
    args = parse()
    assert args.transport == "stdio" and not args.allow_writes
    assert (args.host, args.port) == ("127.0.0.1", DEFAULT_PORT)
    assert args.func is cmd_mcp


def test_http_options() -> None:
    args = parse(
        "--transport", "http", "--port", "9000", "-f", "a.yaml", "-f", "b", "--allow-writes"
    )
    assert (args.transport, args.port, args.filename, args.allow_writes) == (
        "http",
        9000,
        ["a.yaml", "b"],
        True,
    )


@pytest.mark.parametrize("flag", ["--token", "--read-token", "--write-token", "--approval-token"])
def test_tokens_are_not_flags(flag: str) -> None:
    with pytest.raises(SystemExit):
        parse(flag, "x")
