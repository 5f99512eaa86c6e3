"""Act: run an admitted plan, one journaled step at a time, through a tool invoker.

Stage: *act* in docs/ARCHITECTURE.md. Each step is written to the store before it runs, so a controller
killed mid-fix leaves a record of what it was doing. The first step that does not succeed
stops the plan: later steps were planned on the assumption that earlier ones worked.
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

    def journal_step(self, fix_id: int, index: int, step: PlanStep) -> int:
        """Record a step as started; returns its id."""

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
) -> tuple[StepOutcome, ...]:
    """Run the steps of ``plan`` in order until one fails; every step journaled first."""
    done: list[StepOutcome] = []
    for index, step in enumerate(plan.steps):
        step_id = journal.journal_step(fix_id, index, step)
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
