"""Log lines of the resources, searched in the controller's log window.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from driftmend.dashboard.api.common import read_router, resource_key
from driftmend.dashboard.dependencies import Operations, OptionalOperationsDep
from driftmend.dashboard.views import log_dict
from driftmend.logs import normalize_level

__all__ = ["get_log_errors", "get_logs"]


async def _search_logs(
    controller: Operations | None,
    q: str | None,
    resource: str | None,
    level: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[dict[str, Any]]:
    if controller is None:
        return []
    key = resource_key(resource) if resource else None
    try:
        min_level = normalize_level(level) if level else None
    except ValueError as exc:
        # As FastAPI's own 422, so the answer has the documented shape (a list of errors).
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "level"), "msg": str(exc), "input": level}]
        ) from exc
    # Searched whole, then cut at ``until``: the window is bounded (2000 lines a resource).
    found = controller.logs.search(q or None, key, min_level, since, limit=1_000_000)
    if until is not None:
        found = [(k, line) for k, line in found if line.at <= until]
    return [log_dict(k, line) for k, line in found[-limit:]]


@read_router.get("/logs", summary="Log lines of the resources, filtered")
async def get_logs(
    controller: OptionalOperationsDep,
    q: Annotated[str | None, Query(description="text to find, case-insensitive")] = None,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    level: Annotated[str | None, Query(description="minimum level: DEBUG ... CRITICAL")] = None,
    since: Annotated[float | None, Query(description="Unix time")] = None,
    until: Annotated[float | None, Query(description="Unix time")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """The newest ``limit`` matching lines, oldest first. Messages are untrusted text."""
    return await _search_logs(controller, q, resource, level, since, until, limit)


@read_router.get("/logs/errors", summary="ERROR and CRITICAL log lines")
async def get_log_errors(
    controller: OptionalOperationsDep,
    q: Annotated[str | None, Query()] = None,
    resource: Annotated[str | None, Query()] = None,
    since: Annotated[float | None, Query()] = None,
    until: Annotated[float | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """As ``/api/logs`` with ``level=ERROR``."""
    return await _search_logs(controller, q, resource, "ERROR", since, until, limit)
