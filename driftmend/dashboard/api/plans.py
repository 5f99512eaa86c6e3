"""Plans parked for an operator's approval: listed, approved, rejected.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi.responses import JSONResponse

from driftmend.dashboard.api.common import (
    ActionBody,
    action_router,
    declared,
    read_router,
    reconcile_result,
    resource_key,
    respond,
)
from driftmend.dashboard.dependencies import JobsDep, OperationsDep, StoreDep
from driftmend.dashboard.record_ids import PlanId
from driftmend.dashboard.stream import plan_summary
from driftmend.dashboard.views import sanitize_actor
from driftmend.errors import PermanentError

__all__ = ["approve", "get_plan", "list_plans", "reject"]


@read_router.get("/plans", summary="Plans parked for an operator's approval")
def list_plans(
    store: StoreDep,
    status: Annotated[
        str, Query(description="pending, approved, rejected, executed, failed, ... or any")
    ] = "pending",
    resource: Annotated[str | None, Query(description="resource id")] = None,
) -> list[dict[str, Any]]:
    """Oldest first, like a queue."""
    key = resource_key(resource) if resource else None
    rows = store.pending_records.pending_plans(status=None if status == "any" else status, key=key)
    return [plan_summary(p) | {"actor": p["actor"], "decided_at": p["decided_at"]} for p in rows]


@read_router.get("/plans/{pid}", summary="One parked plan")
def get_plan(pid: PlanId, store: StoreDep) -> dict[str, Any]:
    """The plan, why it waits, and who decided what."""
    found = store.pending_records.pending_plan(pid)
    if found is None:
        raise HTTPException(404, f"no pending plan {pid}")
    return plan_summary(found) | {"actor": found["actor"], "decided_at": found["decided_at"]}


@action_router.post("/plans/{pid}/approve", summary="Approve a parked plan and run it")
async def approve(
    pid: PlanId, body: ActionBody, store: StoreDep, controller: OperationsDep, jobs: JobsDep
) -> JSONResponse:
    """The plan goes through the guard (as approved), runs and is verified, in the
    background; answers 202 with a job."""
    found = store.pending_records.pending_plan(pid)
    if found is None:
        raise HTTPException(404, f"no pending plan {pid}")
    if found["status"] != "pending":
        raise HTTPException(409, f"plan {pid} is {found['status']}, not pending")
    declared(controller, str(found["key"]))
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        return reconcile_result(await controller.approve_plan(pid, actor)) | {"plan_id": pid}

    return await respond(jobs, jobs.start("approve", str(found["key"]), actor, run), body.wait)


@action_router.post("/plans/{pid}/reject", summary="Reject a parked plan")
async def reject(pid: PlanId, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """The plan never runs; the resource stays with the operator."""
    try:
        controller.reject_plan(pid, sanitize_actor(body.actor))
    except PermanentError as exc:
        code = 404 if str(exc).startswith("no pending plan") else 409
        raise HTTPException(code, str(exc)) from exc
    return {"id": pid, "status": "rejected"}
