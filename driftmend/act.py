"""Act: run an admitted plan, one journaled step at a time, through a tool invoker.

Stage: *act* in docs/ARCHITECTURE.md. Each step is written to the store before it runs, so a controller
killed mid-fix leaves a record of what it was doing. That row is also the step's claim: a
step whose row already exists (a resumed fix, another controller on a shared store) is not
run. The first step that does not succeed stops the plan: later steps were planned on the
assumption that earlier ones worked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.model import Plan, PlanStep, ToolResult
from driftmend.spec import Resource
from driftmend.tools.base import Catalogue, ToolContext


class Journal(Protocol):
    """The part of the store that ``act`` writes to."""

    def claim_step(self, fix_id: int, index: int, step: PlanStep) -> int | None:
        """Record a step as started, atomically; returns its id, or None when the step was
        already claimed (its tool must not be called)."""

    def finish_step(
        self,
        step_id: int,
        result: ToolResult,
        duration_s: float,
        mcp_call: dict[str, Any] | None = None,
    ) -> None:
        """Record how a step ended."""


class ToolInvoker(Protocol):
    """Calls one tool on one resource; the MCP client session is one such invoker."""

    async def invoke(
        self, tool: str, resource: Resource, params: Mapping[str, Any]
    ) -> tuple[ToolResult, dict[str, Any] | None]:
        """Run ``tool``; returns its result and, when it travelled over MCP, the call made."""


class DirectInvoker:
    """Calls catalogue tools in-process, with no transport in between."""

    def __init__(self, catalogue: Catalogue, ctx: ToolContext) -> None:
        self._catalogue = catalogue
        self._ctx = ctx

    async def invoke(
        self, tool: str, resource: Resource, params: Mapping[str, Any]
    ) -> tuple[ToolResult, dict[str, Any] | None]:
        """Run a catalogue tool directly."""
        found = self._catalogue.get(tool)
        if found is None:
            return ToolResult.refused(f"no such tool: {tool}"), None
        return await found.call(self._ctx, resource, params), None


@dataclass(frozen=True)
class StepOutcome:
    """One executed step and how it ended."""

    step: PlanStep
    result: ToolResult
    duration_s: float


async def act(
    plan: Plan,
    resources: Mapping[str, Resource],
    invoker: ToolInvoker,
    journal: Journal,
    fix_id: int,
    *,
    first: int = 0,
) -> tuple[StepOutcome, ...]:
    """Run the steps of ``plan`` from index ``first`` in order until one fails; every step
    claimed in the journal first. A step already claimed ends the run ``refused``, its tool
    not called: whoever claimed it runs it, and the steps after it depend on it."""
    done: list[StepOutcome] = []
    for index, step in enumerate(plan.steps):
        if index < first:
            continue
        step_id = journal.claim_step(fix_id, index, step)
        if step_id is None:
            why = f"step {index} of fix {fix_id} was already claimed; not run again"
            done.append(StepOutcome(step, ToolResult.refused(why), 0.0))
            break
        started = time.monotonic()
        target = resources.get(step.target)
        if target is None:
            result, call = ToolResult.refused(f"{step.target} is not a declared resource"), None
        else:
            result, call = await invoker.invoke(step.tool, target, step.params)
        duration = time.monotonic() - started
        journal.finish_step(step_id, result, duration, call)
        done.append(StepOutcome(step, result, duration))
        if not result.ok:
            break
    return tuple(done)
