"""act (journaled steps, stop at the first failure) and verify (poll until cleared or timeout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftmend.act import act
from driftmend.model import Observation, Plan, PlanStep, ToolResult
from driftmend.spec import Resource
from driftmend.verify import verify
from tests.unit.controller_fakes import FakeClock
from tests.unit.factories import container, obs, policy, running

SHOP = container()
KEY = "Container/shop"


class Journal:
    """An ``act.Journal`` that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def journal_step(self, fix_id: int, index: int, step: PlanStep) -> int:
        self.events.append(("start", step.tool))
        return index + 100

    def finish_step(
        self,
        step_id: int,
        result: ToolResult,
        duration_s: float,
        mcp_call: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(("finish", result.status.value))


class Invoker:
    """A ``ToolInvoker`` answering from a table; it records every call."""

    def __init__(self, results: Mapping[str, ToolResult]) -> None:
        self.results = results
        self.calls: list[str] = []

    async def invoke(
        self, tool: str, resource: Resource, params: Mapping[str, Any]
    ) -> tuple[ToolResult, dict[str, Any] | None]:
        self.calls.append(tool)
        return self.results[tool], None


def plan(*tools: str, timeout: float = 10.0) -> Plan:
    steps = tuple(PlanStep(t, KEY) for t in tools)
    return Plan(KEY, steps, "rules", "", "p", "restart", (), timeout, 1.0)


async def test_act_journals_each_step_before_it_runs_and_stops_at_the_first_failure() -> None:
    journal = Journal()
    invoker = Invoker(
        {
            "container_stats": ToolResult.success(),
            "container_restart": ToolResult.failure("engine gone"),
            "container_start": ToolResult.success(),
        }
    )
    done = await act(
        plan("container_stats", "container_restart", "container_start"),
        {KEY: SHOP},
        invoker,
        journal,
        fix_id=1,
    )
    assert invoker.calls == ["container_stats", "container_restart"]
    assert [d.step.tool for d in done] == ["container_stats", "container_restart"]
    assert journal.events == [
        ("start", "container_stats"),
        ("finish", "ok"),
        ("start", "container_restart"),
        ("finish", "error"),
    ]


async def test_verify_passes_once_the_drift_has_cleared() -> None:
    clock = FakeClock(1000.0)
    seen = iter([obs(container__running=False), running(), running()])

    async def observe(resource: Resource) -> Observation:
        return next(seen)

    check = await verify(SHOP, [policy()], plan("container_restart"), observe, clock, clock.sleep)
    assert check.verified and check.at is not None
    assert check.observation is not None and check.observation.get("container.running") is True


async def test_verify_gives_up_at_its_timeout_and_says_what_still_drifts() -> None:
    clock = FakeClock(1000.0)

    async def observe(resource: Resource) -> Observation:
        return obs(at=clock(), container__running=False)

    check = await verify(
        SHOP, [policy()], plan("container_restart", timeout=5.0), observe, clock, clock.sleep
    )
    assert not check.verified and check.at is None
    assert clock() - 1000.0 >= 5.0
    assert check.message
