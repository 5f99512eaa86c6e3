"""The JSON API behind the pages, documented by FastAPI's OpenAPI (``/openapi.json``).

Stage: *outputs* in docs/ARCHITECTURE.md. Reads come from the store (and the controller's
log window); actions go to the controller's operator methods, which record who did what in
the store. Resource ids in URLs are keys with ``/`` turned into ``.`` (``Container/shop`` ->
``Container.shop``, see ``driftmend.dashboard.views.resource_id``); request bodies accept
either form.

Routes that touch the controller or its log window are ``async``: both live on the event
loop and are not thread-safe. Routes that only read the store are plain functions, run in
the thread pool, because the store is thread-safe and its calls are short but blocking.

The routes live in one module per concern (``resources``, ``logs``, ``llm``, ``fixes``,
``plans``, ``audit``) on the two routers of ``common``; importing them here registers them,
in the order of the paths' specificity (``/fixes/evaluations`` before ``/fixes/{fid}``).
"""

from __future__ import annotations

from driftmend.dashboard.api import audit, fixes, llm, logs, plans, resources
from driftmend.dashboard.api.common import (
    action_router,
    merged_resource,
    merged_resources,
    read_router,
)

__all__ = [
    "action_router",
    "audit",
    "fixes",
    "llm",
    "logs",
    "merged_resource",
    "merged_resources",
    "plans",
    "read_router",
    "resources",
]
