"""Fixes and their evaluation; the Fix button and the retry of a failed fix.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi.responses import JSONResponse

from driftmend.dashboard.api.common import (
    ActionBody,
    ResourceAction,
    action_router,
    declared,
    read_router,
    reconcile_result,
    resource_key,
    respond,
)
from driftmend.dashboard.dependencies import JobsDep, OperationsDep, StoreDep
from driftmend.dashboard.record_ids import FixId
from driftmend.dashboard.views import evaluations, resource_id, sanitize_actor

__all__ = ["get_evaluations", "get_fix", "list_fixes", "retry_fix", "trigger_fix"]


@read_router.get("/fixes", summary="Fixes, newest first")
def list_fixes(
    store: StoreDep,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    outcome: Annotated[str | None, Query(description="fixed, failed, ...")] = None,
    status: Annotated[str | None, Query(description="running, done, interrupted")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Each fix without its steps: root cause, plan, outcome, signals before and after."""
    key = resource_key(resource) if resource else None
    return [
        f | {"resource_id": resource_id(str(f["key"]))}
        for f in store.fix_records.fixes(key=key, limit=limit, outcome=outcome, status=status)
    ]


@read_router.get("/fixes/evaluations", summary="How well fixing works")
def get_evaluations(
    store: StoreDep,
    since: Annotated[float | None, Query(description="Unix time; default: all")] = None,
) -> dict[str, Any]:
    """Success rate and times to detect and recover, overall, by scenario (policy/rule) and by
    tool, and time to recover over time (oldest first)."""
    fixes = [
        f for f in store.fix_records.fixes(limit=1000) if since is None or f["detected_at"] >= since
    ]
    return evaluations(store.fix_stats_records.fix_stats(since), fixes)


@read_router.get("/fixes/{fid}", summary="One fix with its steps and their results")
def get_fix(fid: FixId, store: StoreDep) -> dict[str, Any]:
    """The evaluation record: drifts, root cause, plan, each step's result, signals before and
    after, and the times to detect and to recover."""
    found = store.fix_records.fix(fid)
    if found is None:
        raise HTTPException(404, f"no fix {fid}")
    return found | {"resource_id": resource_id(str(found["key"]))}


@action_router.post("/fixes/trigger", summary="Fix a resource now (the Fix button)")
async def trigger_fix(
    body: ResourceAction, controller: OperationsDep, jobs: JobsDep
) -> JSONResponse:
    """Forget the resource's backoff and needs-operator flag and reconcile it now: its
    policy's ladder runs if it drifts. Answers 202 with a job; the outcome arrives on the
    live stream (or wait with ``"wait": true``)."""
    key = resource_key(body.resource)
    declared(controller, key)
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        return reconcile_result(await controller.trigger_fix(key, actor))

    return await respond(jobs, jobs.start("fix", key, actor, run), body.wait)


@action_router.post("/fixes/{fid}/retry", summary="Retry a failed fix")
async def retry_fix(
    fid: FixId, body: ActionBody, store: StoreDep, controller: OperationsDep, jobs: JobsDep
) -> JSONResponse:
    """Run the resource's ladder again now, as the Fix button does (level-triggered: the
    controller plans from what it observes now, not from the old plan)."""
    found = store.fix_records.fix(fid)
    if found is None:
        raise HTTPException(404, f"no fix {fid}")
    if found["status"] == "running":
        raise HTTPException(409, f"fix {fid} is still running")
    if found["outcome"] == "fixed":
        raise HTTPException(409, f"fix {fid} succeeded: there is nothing to retry")
    key = str(found["key"])
    declared(controller, key)
    actor = sanitize_actor(body.actor)
    # The controller's ``trigger_fix`` records the operator's action ("fix", with the fix
    # it retries); the job's result says so too.

    async def run() -> dict[str, Any]:
        done = await controller.trigger_fix(key, actor, {"retry_of": fid})
        return reconcile_result(done) | {"retry_of": fid}

    return await respond(jobs, jobs.start("retry", key, actor, run), body.wait)
