"""The JSON API behind the pages, documented by FastAPI's OpenAPI (``/openapi.json``).

Stage: *outputs* in DESIGN.md. Reads come from the store (and the controller's log window);
actions go to the controller's operator methods, which record who did what in the store.
Resource ids in URLs are keys with ``/`` turned into ``.`` (``Container/shop`` ->
``Container.shop``, see ``driftmend.dashboard.views.resource_id``); request bodies accept either form.

Routes that touch the controller or its log window are ``async``: both live on the event
loop and are not thread-safe. Routes that only read the store are plain functions, run in
the thread pool, because the store is thread-safe and its calls are short but blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from driftmend.dashboard.dependencies import (
    JobsDep,
    Operations,
    OperationsDep,
    OptionalOperationsDep,
    StoreDep,
    require_action,
    require_read,
)
from driftmend.dashboard.jobs import Job, JobBoard
from driftmend.dashboard.stream import event_stream, llm_rows, plan_summary
from driftmend.dashboard.views import (
    chart_signals,
    downsample,
    evaluations,
    fix_summary,
    key_of,
    log_dict,
    resource_id,
    resource_summary,
    sanitize_actor,
)
from driftmend.errors import PermanentError
from driftmend.logs import normalize_level
from driftmend.model import ReconcileResult

__all__ = ["action_router", "merged_resources", "read_router"]

read_router = APIRouter(prefix="/api", dependencies=[Depends(require_read)])
action_router = APIRouter(prefix="/api", dependencies=[Depends(require_action)], tags=["actions"])

_WAIT_CAP = 120.0  # seconds a ``wait: true`` request may hold its connection


# --- request bodies --------------------------------------------------------------------------


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


# --- helpers ---------------------------------------------------------------------------------


def _key(rid: str) -> str:
    key = key_of(rid)
    if key is None:
        raise HTTPException(
            404, f"{rid!r} is not a resource id: use Kind.name, for example Container.shop"
        )
    return key


def _declared(controller: Operations, key: str) -> None:
    if key not in controller.resources:
        raise HTTPException(404, f"no resource {key} is declared")


def _result(result: ReconcileResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "resource_id": resource_id(result.key),
        "outcome": str(result.outcome),
        "message": result.message,
        "fix_id": result.fix_id,
    }


async def _respond(jobs: JobBoard, job: Job, wait: bool) -> JSONResponse:
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


# --- resources -------------------------------------------------------------------------------


@read_router.get("/resources", summary="Every resource with its health, signals and last fix")
def list_resources(store: StoreDep, controller: OptionalOperationsDep) -> list[dict[str, Any]]:
    """Each resource: ``id`` for URLs, key, kind, health, message, signals, paused, last fix."""
    return merged_resources(store.resources(), controller)


@read_router.get("/resources/{rid}", summary="One resource with its recent history")
def get_resource(rid: str, store: StoreDep, controller: OptionalOperationsDep) -> dict[str, Any]:
    """One resource by id (``Container.shop``): its state, spec, recent fixes, pending plans,
    recorded reconciliations, guard decisions and audited actions."""
    key = _key(rid)
    row = store.resource(key)
    declared = controller is not None and key in controller.resources
    if row is None and not declared:
        raise HTTPException(404, f"no resource {key}")
    rows = merged_resources([row] if row is not None else [], controller)
    base = next(r for r in rows if r["key"] == key)
    return base | {
        "declared": declared,
        "fixes": [fix_summary(f) for f in store.fixes(key=key, limit=20)],
        "pending_plans": [plan_summary(p) for p in store.pending_plans(key=key)],
        "reconciliations": store.reconciliations(key=key, limit=20),
        "reconciliation_counts": store.reconciliation_counts(key),
        "guard_decisions": store.guard_decisions(key=key, limit=20),
        "actions": store.actions(limit=20, key=key),
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
    key = _key(rid)
    floor = time.time() - 900 if since is None else since
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    samples = store.signal_history(key, wanted, floor)
    kind = key.partition("/")[0]
    return {
        "key": key,
        "id": rid,
        "since": floor,
        "charted": chart_signals(kind),
        "samples": downsample(samples, kind, max_points),
    }


# --- logs ------------------------------------------------------------------------------------


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
    key = _key(resource) if resource else None
    try:
        min_level = normalize_level(level) if level else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
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


# --- LLM -------------------------------------------------------------------------------------


@read_router.get("/llm/interactions", summary="LLM interactions, newest first")
def list_llm(
    store: StoreDep,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Time, resource, root cause, tokens, and what became of the plan as the controller
    recorded it: ``decision`` (admitted, pending, shadow, rejected, dry-run, no-plan), its
    ``outcome_reason``, the ``mode`` and the ``fix_id`` it ran as. ``outcome`` is one word
    for a badge: the fix's outcome for a plan that ran, ``over-budget`` for a refusal for
    want of budget."""
    key = _key(resource) if resource else None
    return llm_rows(store, store.llm_summaries(key=key, limit=limit))


@read_router.get("/llm/interactions/{iid}", summary="One LLM interaction, whole")
def get_llm(iid: int, store: StoreDep) -> dict[str, Any]:
    """The full prompt and response, the parsed plan, the recorded outcome (``summary``) and
    the fix that ran it (``fix``, with each tool's result)."""
    found = store.llm_interaction(iid)
    if found is None:
        raise HTTPException(404, f"no LLM interaction {iid}")
    return found | {"summary": llm_rows(store, [found])[0]}


_NO_LLM = (
    "no LLM planner is configured: this controller plans with its rules only. Set "
    "GEMINI_API_KEY, DRIFTMEND_OPENAI_BASE_URL or DRIFTMEND_REPLAY_FILE, restart the "
    "controller, and give the resource's policy an escalate block to ask an LLM about it."
)


@action_router.post(
    "/llm/analyze",
    summary="Ask the LLM planner about a resource now",
    responses={503: {"description": "no LLM planner is configured"}},
)
async def analyze(body: ResourceAction, controller: OperationsDep, jobs: JobsDep) -> JSONResponse:
    """Asks the resource's policy's LLM planner now; the exchange is stored and appears
    under LLM interactions. Answers 202 with a job whose result is ``{"interaction",
    "decision", "reason", "plan"}`` (or wait with ``"wait": true``); 503 while no LLM
    planner is configured. A resource whose policy has no LLM planner ends the job with an
    error saying so."""
    if not controller.llm_ready:
        raise HTTPException(503, _NO_LLM)
    key = _key(body.resource)
    _declared(controller, key)
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        answer = dict(await controller.analyze(key, actor))
        return answer | {"key": key, "resource_id": resource_id(key)}

    return await _respond(jobs, jobs.start("analyze", key, actor, run), body.wait)


# --- fixes -----------------------------------------------------------------------------------


@read_router.get("/fixes", summary="Fixes, newest first")
def list_fixes(
    store: StoreDep,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    outcome: Annotated[str | None, Query(description="fixed, failed, ...")] = None,
    status: Annotated[str | None, Query(description="running, done, interrupted")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Each fix without its steps: root cause, plan, outcome, signals before and after."""
    key = _key(resource) if resource else None
    return [
        f | {"resource_id": resource_id(str(f["key"]))}
        for f in store.fixes(key=key, limit=limit, outcome=outcome, status=status)
    ]


@read_router.get("/fixes/evaluations", summary="How well fixing works")
def get_evaluations(
    store: StoreDep,
    since: Annotated[float | None, Query(description="Unix time; default: all")] = None,
) -> dict[str, Any]:
    """Success rate and times to detect and recover, overall, by scenario (policy/rule) and by
    tool, and time to recover over time (oldest first)."""
    fixes = [f for f in store.fixes(limit=1000) if since is None or f["detected_at"] >= since]
    return evaluations(store.fix_stats(since), fixes)


@read_router.get("/fixes/{fid}", summary="One fix with its steps and their results")
def get_fix(fid: int, store: StoreDep) -> dict[str, Any]:
    """The evaluation record: drifts, root cause, plan, each step's result, signals before and
    after, and the times to detect and to recover."""
    found = store.fix(fid)
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
    key = _key(body.resource)
    _declared(controller, key)
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        return _result(await controller.trigger_fix(key, actor))

    return await _respond(jobs, jobs.start("fix", key, actor, run), body.wait)


@action_router.post("/fixes/{fid}/retry", summary="Retry a failed fix")
async def retry_fix(
    fid: int, body: ActionBody, store: StoreDep, controller: OperationsDep, jobs: JobsDep
) -> JSONResponse:
    """Run the resource's ladder again now, as the Fix button does (level-triggered: the
    controller plans from what it observes now, not from the old plan)."""
    found = store.fix(fid)
    if found is None:
        raise HTTPException(404, f"no fix {fid}")
    if found["status"] == "running":
        raise HTTPException(409, f"fix {fid} is still running")
    if found["outcome"] == "fixed":
        raise HTTPException(409, f"fix {fid} succeeded: there is nothing to retry")
    key = str(found["key"])
    _declared(controller, key)
    actor = sanitize_actor(body.actor)
    # The controller's ``trigger_fix`` records the operator's action ("fix", with the fix
    # it retries); the job's result says so too.

    async def run() -> dict[str, Any]:
        done = await controller.trigger_fix(key, actor, {"retry_of": fid})
        return _result(done) | {"retry_of": fid}

    return await _respond(jobs, jobs.start("retry", key, actor, run), body.wait)


# --- pause and resume ------------------------------------------------------------------------


@action_router.post("/resources/{rid}/pause", summary="Pause healing of a resource")
async def pause(rid: str, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """Observation goes on; no fix runs until it is resumed."""
    key = _key(rid)
    _declared(controller, key)
    controller.set_paused(key, True, sanitize_actor(body.actor))
    return {"key": key, "id": resource_id(key), "paused": True}


@action_router.post("/resources/{rid}/resume", summary="Resume healing of a resource")
async def resume(rid: str, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """The resource is reconciled again at once."""
    key = _key(rid)
    _declared(controller, key)
    controller.set_paused(key, False, sanitize_actor(body.actor))
    return {"key": key, "id": resource_id(key), "paused": False}


# --- plans waiting for an operator -----------------------------------------------------------


@read_router.get("/plans", summary="Plans parked for an operator's approval")
def list_plans(
    store: StoreDep,
    status: Annotated[
        str, Query(description="pending, approved, rejected, executed, failed, ... or any")
    ] = "pending",
    resource: Annotated[str | None, Query(description="resource id")] = None,
) -> list[dict[str, Any]]:
    """Oldest first, like a queue."""
    key = _key(resource) if resource else None
    rows = store.pending_plans(status=None if status == "any" else status, key=key)
    return [plan_summary(p) | {"actor": p["actor"], "decided_at": p["decided_at"]} for p in rows]


@read_router.get("/plans/{pid}", summary="One parked plan")
def get_plan(pid: int, store: StoreDep) -> dict[str, Any]:
    """The plan, why it waits, and who decided what."""
    found = store.pending_plan(pid)
    if found is None:
        raise HTTPException(404, f"no pending plan {pid}")
    return plan_summary(found) | {"actor": found["actor"], "decided_at": found["decided_at"]}


@action_router.post("/plans/{pid}/approve", summary="Approve a parked plan and run it")
async def approve(
    pid: int, body: ActionBody, store: StoreDep, controller: OperationsDep, jobs: JobsDep
) -> JSONResponse:
    """The plan goes through the guard (as approved), runs and is verified, in the
    background; answers 202 with a job."""
    found = store.pending_plan(pid)
    if found is None:
        raise HTTPException(404, f"no pending plan {pid}")
    if found["status"] != "pending":
        raise HTTPException(409, f"plan {pid} is {found['status']}, not pending")
    _declared(controller, str(found["key"]))
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        return _result(await controller.approve_plan(pid, actor)) | {"plan_id": pid}

    return await _respond(jobs, jobs.start("approve", str(found["key"]), actor, run), body.wait)


@action_router.post("/plans/{pid}/reject", summary="Reject a parked plan")
async def reject(pid: int, body: ActionBody, controller: OperationsDep) -> dict[str, Any]:
    """The plan never runs; the resource stays with the operator."""
    try:
        controller.reject_plan(pid, sanitize_actor(body.actor))
    except PermanentError as exc:
        code = 404 if str(exc).startswith("no pending plan") else 409
        raise HTTPException(code, str(exc)) from exc
    return {"id": pid, "status": "rejected"}


# --- audit, jobs, stream ---------------------------------------------------------------------


@read_router.get("/actions", summary="Audited actions, newest first")
def list_actions(
    store: StoreDep,
    resource: Annotated[str | None, Query(description="resource id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Who did what: operators through the dashboard, the controller itself."""
    key = _key(resource) if resource else None
    return [a.to_json() for a in store.actions(limit=limit, key=key)]


@read_router.get("/jobs/{jid}", summary="A dashboard action started with 202")
def get_job(jid: int, jobs: JobsDep) -> dict[str, Any]:
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
