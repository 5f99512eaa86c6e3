"""Resources: the list, one in full, its signal history; pausing and resuming its healing.

Stage: *outputs* in docs/ARCHITECTURE.md. Store reads run in the thread pool; routes that
touch the controller are ``async`` (it lives on the event loop).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import HTTPException, Query

from driftmend.dashboard.api.common import (
    ActionBody,
    action_router,
    declared,
    merged_resources,
    read_router,
    resource_key,
)
from driftmend.dashboard.dependencies import OperationsDep, OptionalOperationsDep, StoreDep
from driftmend.dashboard.stream import plan_summary
from driftmend.dashboard.views import (
    chart_signals,
    downsample,
    fix_summary,
    resource_id,
    sanitize_actor,
)

__all__ = ["get_metrics", "get_resource", "list_resources", "pause", "resume"]


@read_router.get("/resources", summary="Every resource with its health, signals and last fix")
async def list_resources(
    store: StoreDep, controller: OptionalOperationsDep
) -> list[dict[str, Any]]:
    """Each resource: ``id`` for URLs, key, kind, health, message, signals, paused, last fix."""
    # On the loop, not in a worker thread: at 1,000 resources the list is ~15 ms of CPU,
    # which a worker thread took in 5 ms slices between the loop's (the GIL), 130 ms at
    # p95 (issue 15); here it runs in one go between two passes.
    return merged_resources(store.resource_records.resources(), controller)


@read_router.get("/resources/{rid}", summary="One resource with its recent history")
def get_resource(rid: str, store: StoreDep, controller: OptionalOperationsDep) -> dict[str, Any]:
    """One resource by id (``Container.shop``): its state, spec, recent fixes, pending plans,
    recorded reconciliations, guard decisions and audited actions."""
    key = resource_key(rid)
    row = store.resource_records.resource(key)
    declared = controller is not None and key in controller.resources
    if row is None and not declared:
        raise HTTPException(404, f"no resource {key}")
    rows = merged_resources([row] if row is not None else [], controller)
    base = next(r for r in rows if r["key"] == key)
    return base | {
        "declared": declared,
        "fixes": [fix_summary(f) for f in store.fix_records.fixes(key=key, limit=20)],
        "pending_plans": [plan_summary(p) for p in store.pending_records.pending_plans(key=key)],
        "reconciliations": store.reconciliation_records.reconciliations(key=key, limit=20),
        "reconciliation_counts": store.reconciliation_records.reconciliation_counts(key),
        "guard_decisions": store.audit_records.guard_decisions(key=key, limit=20),
        "actions": store.audit_records.actions(limit=20, key=key),
    }


@read_router.get("/resources/{rid}/metrics", summary="Signal history of one resource")
def get_metrics(
    rid: str,
    store: StoreDep,
    since: Annotated[float | None, Query(description="Unix time; default: 15 minutes ago")] = None,
    names: Annotated[
        str | None, Query(description="comma-separated signal names; default: every signal")
    ] = None,
    max_points: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Samples oldest first, ``{"at", "signals"}``, at most ``max_points`` (evenly thinned,
    keeping every change of availability and the newest sample)."""
    key = resource_key(rid)
    floor = time.time() - 900 if since is None else since
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    samples = store.signal_records.signal_history(key, wanted, floor)
    kind = key.partition("/")[0]
    return {
        "key": key,
        "id": rid,
        "since": floor,
        "charted": chart_signals(kind),
        "samples": downsample(samples, kind, max_points),
    }


@action_router.post("/resources/{rid}/pause", summary="Pause healing of a resource")
async def pause(rid: str, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """Observation goes on; no fix runs until it is resumed."""
    key = resource_key(rid)
    declared(controller, key)
    controller.set_paused(key, True, sanitize_actor(body.actor))
    return {"key": key, "id": resource_id(key), "paused": True}


@action_router.post("/resources/{rid}/resume", summary="Resume healing of a resource")
async def resume(rid: str, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """The resource is reconciled again at once."""
    key = resource_key(rid)
    declared(controller, key)
    controller.set_paused(key, False, sanitize_actor(body.actor))
    return {"key": key, "id": resource_id(key), "paused": False}
