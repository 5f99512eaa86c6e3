"""The whole catalogue, assembled from one module per target.

Stage: *act*. ``default_catalogue()`` is what the controller, validation and the MCP server
use; tests may build a smaller ``Catalogue`` of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from driftmend.guard import ToolFacts
from driftmend.tools import container, postgres, redis
from driftmend.tools.base import Catalogue


def default_catalogue() -> Catalogue:
    """Every tool driftmend ships."""
    return Catalogue((*container.TOOLS, *postgres.TOOLS, *redis.TOOLS))


def tool_facts(catalogue: Catalogue) -> Mapping[str, ToolFacts]:
    """What the pure guard needs to know of each tool."""
    return {t.name: ToolFacts(t.kinds, t.effect.value, t.validate) for t in catalogue}
