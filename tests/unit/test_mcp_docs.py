"""docs/MCP_TOOLS.md is generated from the catalogue; this fails when it is stale."""

from __future__ import annotations

from driftmend.mcp.docs import DOC_PATH, render
from driftmend.tools.catalogue import default_catalogue


def test_mcp_tools_doc_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(default_catalogue()), (
        "docs/MCP_TOOLS.md is stale: run `.venv/bin/python -m driftmend.mcp.docs`"
    )


def test_every_tool_is_documented_with_its_effect() -> None:
    text = render(default_catalogue())
    for tool in default_catalogue():
        assert f"### `{tool.name}`" in text
        assert f"effect **{tool.effect.value}**" in text
    assert "Authorization: Bearer" in text and "mcpServers" in text
