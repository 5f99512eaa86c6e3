"""Pieces of pages, rendered by the server for the script to put in place.

Stage: *outputs* in docs/ARCHITECTURE.md. When a page must show something new (a resource
that arrives while the overview is open, a fix whose steps run while its page is open), the
script fetches the piece from here rather than building markup itself: the page and the
piece come from the same Jinja macros (``macros.html`` ``tile``, ``fix_parts.html``), so
there is one copy of the markup and every value in it is escaped by Jinja. Each answer is a
``<template data-fragments>`` whose elements carry a ``data-fragment`` name (or, for a
tile, ``data-resource``) that the script matches against the page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from driftmend.dashboard.api import merged_resource
from driftmend.dashboard.dependencies import OptionalOperationsDep, StoreDep, require_read
from driftmend.dashboard.pages import chart_specs
from driftmend.dashboard.record_ids import FixId
from driftmend.dashboard.templating import TEMPLATES
from driftmend.dashboard.views import fix_summary, signal_changes

__all__ = ["fragment_router"]

fragment_router = APIRouter(
    prefix="/fragments", include_in_schema=False, dependencies=[Depends(require_read)]
)


@fragment_router.get("/tiles/{rid}", response_class=HTMLResponse)
async def tile(
    rid: str, request: Request, store: StoreDep, controller: OptionalOperationsDep
) -> HTMLResponse:
    """One resource's overview tile, with the charts of its kind."""
    _, found = merged_resource(store.resource_records.resources(), controller, rid)
    return TEMPLATES.TemplateResponse(
        request,
        "fragments/tile.html",
        {"resource": found, "charts": chart_specs(str(found["kind"]), with_errors=False)},
    )


@fragment_router.get("/fixes/{fid}", response_class=HTMLResponse)
def fix(fid: FixId, request: Request, store: StoreDep) -> HTMLResponse:
    """The parts of a fix's page that change while it runs: state, message, the Retry
    button, timeline, steps and the signals after."""
    found = store.fix_records.fix(fid)
    if found is None:
        raise HTTPException(404, f"no fix {fid}")
    drifted = [str(d.get("signal")) for d in found.get("drifts") or []]
    changes = signal_changes(found.get("signals_before"), found.get("signals_after"), drifted)
    return TEMPLATES.TemplateResponse(
        request,
        "fragments/fix.html",
        {"fix": found, "summary": fix_summary(found), "changes": changes},
    )
