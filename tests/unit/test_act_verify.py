"""act (journaled steps, stop at the first failure) and verify (poll until cleared or timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftmend.act import act
from driftmend.model import Observation, Plan, PlanStep, ToolResult
from driftmend.spec import Resource
from driftmend.verify import verify
from tests.unit.controller_fakes import FakeClock, rig
from tests.unit.factories import container, obs, policy, running

SHOP = container()
KEY = "Container/shop"


class Journal:
    """An ``act.Journal`` that keeps what it was told, in order; the steps in ``claimed``
    are held already (by another controller), so their claim is refused."""

    def __init__(self, claimed: set[int] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.claimed = claimed or set()

    def claim_step(self, fix_id: int, index: int, step: PlanStep) -> int | None:
        if index in self.claimed:
            self.events.append(("refused", step.tool))
            return None
        self.claimed.add(index)
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


async def test_act_runs_nothing_of_a_step_already_claimed_nor_after_it() -> None:
    journal = Journal(claimed={1})
    ok = ToolResult.success()
    invoker = Invoker({"container_stats": ok, "container_restart": ok, "container_start": ok})
    done = await act(
        plan("container_stats", "container_restart", "container_start"),
        {KEY: SHOP},
        invoker,
        journal,
        fix_id=1,
    )
    assert invoker.calls == ["container_stats"]
    assert [(d.step.tool, d.result.status.value) for d in done] == [
        ("container_stats", "ok"),
        ("container_restart", "refused"),
    ]
    assert "already claimed" in (done[-1].result.error or "")
    assert journal.events == [
        ("start", "container_stats"),
        ("finish", "ok"),
        ("refused", "container_restart"),
    ]


async def test_act_from_a_later_step_leaves_the_earlier_ones_alone() -> None:
    journal = Journal()
    ok = ToolResult.success()
    invoker = Invoker({"container_stats": ok, "container_restart": ok})
    await act(
        plan("container_stats", "container_restart"), {KEY: SHOP}, invoker, journal, 1, first=1
    )
    assert invoker.calls == ["container_restart"]
    assert journal.claimed == {1}


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


def exited(at: float, exit_at: float) -> Observation:
    """A container seen down at ``at``, its replica having exited at ``exit_at``."""
    iso = datetime.fromtimestamp(exit_at, UTC).isoformat()
    facts = {"last_exit_at": iso, "last_exit_reason": "exited with code 3"}
    return Observation(KEY, at, {"container.running": False}, facts)


async def test_verify_fails_at_once_when_a_replica_exits_after_the_fix_began() -> None:
    clock = FakeClock(1000.0)

    async def observe(resource: Resource) -> Observation:
        return exited(clock(), exit_at=1000.4)

    check = await verify(
        SHOP, [policy()], plan("container_restart"), observe, clock, clock.sleep, since=1000.0
    )
    assert not check.verified and check.at is None
    assert clock() == 1000.0  # no pause: the first look gave the answer
    assert "exited 0.40s after the fix began (exited with code 3)" in check.message


async def test_verify_waits_on_when_the_exit_came_before_the_fix() -> None:
    """The crash the fix is for is no failure of the fix: its replica is not back yet."""
    clock = FakeClock(1000.0)
    seen = iter([exited(1000.0, exit_at=999.0), running(1000.5)])

    async def observe(resource: Resource) -> Observation:
        return next(seen)

    check = await verify(
        SHOP, [policy()], plan("container_restart"), observe, clock, clock.sleep, since=1000.0
    )
    assert check.verified, check.message


async def test_a_pause_of_verify_ends_on_an_event_of_its_resource(tmp_path: Path) -> None:
    """Between two looks, verify waits ``verify.interval``, or less: an event on the
    resource (a runtime saw it exit or answer) ends the wait, even one that came while it
    looked (before the wait began)."""
    r = rig(tmp_path)
    r.apply([SHOP], [policy()])
    observer = r.controller.observer
    pause = observer.pause(KEY, asyncio.sleep)
    loop = asyncio.get_running_loop()

    loop.call_later(0.05, r.controller.on_event, KEY, "exit")
    began = loop.time()
    await pause(30.0)
    assert loop.time() - began < 5.0

    r.controller.on_event(KEY, "health")  # while the caller observed
    began = loop.time()
    await pause(30.0)
    assert loop.time() - began < 0.5

    other = observer.pause("Container/other", asyncio.sleep)
    r.controller.on_event(KEY, "exit")  # another resource's event does not end this wait
    began = loop.time()
    await other(0.2)
    assert loop.time() - began >= 0.2
