"""The audit log, the jobs of actions answered with 202, and the live stream.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from driftmend.dashboard.api.common import read_router, resource_key
from driftmend.dashboard.dependencies import JobsDep, OptionalOperationsDep, StoreDep
from driftmend.dashboard.record_ids import JobId
from driftmend.dashboard.stream import event_stream

__all__ = ["get_job", "list_actions", "stream"]


@read_router.get("/actions", summary="Audited actions, newest first")
def list_actions(
    store: StoreDep,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Who did what: operators through the dashboard, the controller itself."""
    key = resource_key(resource) if resource else None
    return [a.to_json() for a in store.audit_records.actions(limit=limit, key=key)]


@read_router.get("/jobs/{jid}", summary="A dashboard action started with 202")
def get_job(jid: JobId, jobs: JobsDep) -> dict[str, Any]:
    """Running, done (with the result) or error (with the message)."""
    job = jobs.get(jid)
    if job is None:
        raise HTTPException(404, f"no job {jid} (jobs are kept in memory, the newest 200)")
    return job.to_dict()


@read_router.get(
    "/stream",
    summary="Live updates (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    store: StoreDep,
    controller: OptionalOperationsDep,
    jobs: JobsDep,
    since: Annotated[
        float | None, Query(description="Unix time: send log lines from then on first")
    ] = None,
) -> StreamingResponse:
    """Events: hello, resource, resource-removed, fix, stats, plans, llm, logs, job; each
    ``data`` is one JSON value. See ``driftmend.dashboard.stream``."""
    last_id = request.headers.get("last-event-id")
    if last_id:
        # The browser's reconnection says where its logs stopped.
        with contextlib.suppress(ValueError):
            since = float(last_id)
    closing: asyncio.Event = request.app.state.closing
    events = event_stream(
        store=store,
        logs=None if controller is None else controller.logs,
        jobs=jobs,
        is_disconnected=request.is_disconnected,
        closing=closing,
        since=since,
        interval=request.app.state.stream_interval,
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
