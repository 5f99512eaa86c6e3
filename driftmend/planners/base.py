"""What an LLM planner is given and what it answers: the seam between the loop and a model.

Stage: *plan* (escalation). ``driftmend.escalation`` builds a ``PlanRequest`` when the rules
cannot fix a drift; a planner (Gemini, an OpenAI-compatible server, or recorded replays) answers with a
``PlannerAnswer``: a ``Plan`` (or none) and the whole interaction, stored as it was. The
guard then admits or rejects the plan like any other. Planners never run write tools: they
may call read tools through ``read_tool`` while they investigate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from driftmend.model import Drift, LogLine, Plan, ToolResult
from driftmend.signals import SignalValue
from driftmend.spec import Escalate, Resource
from driftmend.tools.base import Tool

ReadTool = Callable[[str, Mapping[str, Any]], Awaitable[ToolResult]]
"""Runs a read tool (by name, with params) on the resource that drifted."""


@dataclass(frozen=True)
class PlanRequest:
    """Everything a planner may know about one drift."""

    resource: Resource
    drifts: tuple[Drift, ...]
    signals: Mapping[str, SignalValue]
    tools: tuple[Tool[Any], ...]
    escalate: Escalate
    policy: str
    history: tuple[Mapping[str, Any], ...] = ()
    logs: tuple[LogLine, ...] = ()
    reason: str = ""  # why the rules handed over (no rule, ladder exhausted, always)
    read_tool: ReadTool | None = None
    # What the driver saw besides the signals (a workload's stuck pods, its recent Events):
    # text from the running system, so untrusted like the logs.
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannerAnswer:
    """A plan (or None, with ``error`` saying why) and the interaction, stored whole."""

    plan: Plan | None
    planner: str
    model: str
    prompt: str
    response: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    error: str | None = None
    turns: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def cost_usd(self) -> float:
        """A rough cost estimate; the planner's price table lives with the planner."""
        return 0.0


class Planner(Protocol):
    """An LLM (or replay) planner."""

    name: str

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        """Propose a plan for ``request``; never raises for a model's or a network's fault."""

    async def close(self) -> None:
        """Release clients."""


def all_steps_on(plan: Plan, key: str) -> bool:
    """True when every step of ``plan`` targets ``key`` (a guard rule, restated for tests)."""
    return all(s.target == key for s in plan.steps)


def tools_for(request_tools: Sequence[Tool[Any]], names: Sequence[str]) -> tuple[Tool[Any], ...]:
    """The tools named in ``names``, in catalogue order."""
    wanted = set(names)
    return tuple(t for t in request_tools if t.name in wanted)
