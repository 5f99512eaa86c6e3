"""The API's two routers and what their routes share: request bodies, resource keys from
ids, a job's answer, the resource list.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from driftmend.dashboard.dependencies import Operations, require_action, require_read
from driftmend.dashboard.jobs import Job, JobBoard
from driftmend.dashboard.views import key_of, resource_id, resource_summary
from driftmend.model import ReconcileResult

__all__ = [
    "ActionBody",
    "ResourceAction",
    "action_router",
    "declared",
    "merged_resource",
    "merged_resources",
    "read_router",
    "reconcile_result",
    "resource_key",
    "respond",
]

read_router = APIRouter(prefix="/api", dependencies=[Depends(require_read)])
action_router = APIRouter(prefix="/api", dependencies=[Depends(require_action)], tags=["actions"])

_WAIT_CAP = 120.0  # seconds a ``wait: true`` request may hold its connection


class ActionBody(BaseModel):
    """Common fields of an action: who acts, and whether to wait for the outcome."""

    actor: str | None = Field(
        default=None,
        max_length=200,
        description="who acts, recorded as dashboard:<actor> (the token is shared)",
    )
    wait: bool = Field(
        default=False,
        description="answer when the action ends (up to 120 s) instead of at once with a job",
    )


class ResourceAction(ActionBody):
    """An action on one resource."""

    resource: str = Field(description="resource id (Container.shop) or key (Container/shop)")


def resource_key(rid: str) -> str:
    """The key of a resource id in a URL or a body; 404 when it is not one."""
    key = key_of(rid)
    if key is None:
        raise HTTPException(
            404, f"{rid!r} is not a resource id: use Kind.name, for example Container.shop"
        )
    return key


def declared(controller: Operations, key: str) -> None:
    """404 unless the controller declares ``key``."""
    if key not in controller.resources:
        raise HTTPException(404, f"no resource {key} is declared")


def reconcile_result(result: ReconcileResult) -> dict[str, Any]:
    """A reconcile pass's result as a job's result."""
    return {
        "key": result.key,
        "resource_id": resource_id(result.key),
        "outcome": str(result.outcome),
        "message": result.message,
        "fix_id": result.fix_id,
    }


async def respond(jobs: JobBoard, job: Job, wait: bool) -> JSONResponse:
    """202 with the job at once, or 200 with the finished job when asked to wait."""
    if wait:
        await jobs.wait(job, _WAIT_CAP)
        if job.status != "running":
            return JSONResponse(job.to_dict(), status_code=200)
    return JSONResponse(job.to_dict(), status_code=202)


def merged_resources(
    store_rows: Sequence[Mapping[str, Any]], controller: Operations | None
) -> list[dict[str, Any]]:
    """Every resource the store knows, plus declared ones not observed yet (health unknown)."""
    out = [resource_summary(r) | {"spec": r.get("spec") or {}} for r in store_rows]
    if controller is not None:
        known = {r["key"] for r in store_rows}
        for key in sorted(set(controller.resources) - known):
            placeholder = {
                "key": key,
                "kind": key.partition("/")[0],
                "health": "unknown",
                "message": "not observed yet",
                "signals": {},
            }
            out.append(resource_summary(placeholder) | {"spec": {}})
        out.sort(key=lambda r: r["key"])
    return out


def merged_resource(
    store_rows: Sequence[Mapping[str, Any]], controller: Operations | None, rid: str
) -> tuple[str, dict[str, Any]]:
    """The key and merged row (see ``merged_resources``) of the resource id ``rid``; 404
    when it is malformed, or neither stored nor declared."""
    key = key_of(rid)
    rows = [r for r in merged_resources(store_rows, controller) if r["key"] == key]
    if key is None or not rows:
        raise HTTPException(404, f"no resource {rid}")
    return key, rows[0]
