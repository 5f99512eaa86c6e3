"""LLM interactions, and asking the LLM planner about a resource now.

Stage: *outputs* in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi.responses import JSONResponse

from driftmend.dashboard.api.common import (
    ResourceAction,
    action_router,
    declared,
    read_router,
    resource_key,
    respond,
)
from driftmend.dashboard.dependencies import JobsDep, OperationsDep, StoreDep
from driftmend.dashboard.record_ids import InteractionId
from driftmend.dashboard.stream import llm_rows
from driftmend.dashboard.views import resource_id, sanitize_actor

__all__ = ["analyze", "get_llm", "list_llm"]


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
    key = resource_key(resource) if resource else None
    return llm_rows(store, store.llm_records.llm_summaries(key=key, limit=limit))


@read_router.get("/llm/interactions/{iid}", summary="One LLM interaction, whole")
def get_llm(iid: InteractionId, store: StoreDep) -> dict[str, Any]:
    """The full prompt and response, the parsed plan, the recorded outcome (``summary``) and
    the fix that ran it (``fix``, with each tool's result)."""
    found = store.llm_records.llm_interaction(iid)
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
    key = resource_key(body.resource)
    declared(controller, key)
    actor = sanitize_actor(body.actor)

    async def run() -> dict[str, Any]:
        answer = dict(await controller.analyze(key, actor))
        return answer | {"key": key, "resource_id": resource_id(key)}

    return await respond(jobs, jobs.start("analyze", key, actor, run), body.wait)
