"""Escalation through the real loop: the rules hand over, a planner proposes, the guard
decides, and the policy's mode (auto, approve, shadow) says what runs.

The planner here is a scripted one at our own ``Planner`` Protocol (the Gemini and
OpenAI-compatible planners are tested against servers speaking their protocols); the
processes, the runtime, the guard, act, verify and the store are the real ones.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from driftmend.controller import Controller
from driftmend.errors import PermanentError
from driftmend.model import Plan, PlanStep
from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.spec import LoadResult
from tests.integration.harness import down_all, eventually, load, running, write_specs
from tests.integration.test_heal_crash import crash_policy, web_container
from tests.services import free_port

pytestmark = pytest.mark.integration
KEY = "Container/web"


class ScriptedPlanner:
    """Answers every request with the same steps; remembers what it was asked."""

    name = "replay"

    def __init__(self, *steps: tuple[str, dict[str, Any]], target: str = KEY) -> None:
        self.steps = steps
        self.target = target
        self.requests: list[PlanRequest] = []

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        self.requests.append(request)
        plan = Plan(
            request.resource.key,
            tuple(PlanStep(tool, self.target, params) for tool, params in self.steps),
            "replay",
            "scripted",
        )
        return PlannerAnswer(plan, "replay", "scripted-1", "prompt", "response", 100, 20, 0.01)

    async def close(self) -> None:
        return None


def escalating_policy(
    mode: str, rules: bool = False, when: str = "no-rule", **esc: Any
) -> dict[str, Any]:
    policy = crash_policy()
    if not rules:
        policy["spec"]["rules"] = []
    tools = ["container_restart", "container_logs", "container_stats"]
    policy["spec"]["escalate"] = {
        "planner": "replay",
        "mode": mode,
        "when": when,
        "allowedTools": tools,
        **esc,
    }
    return policy


@pytest.fixture
async def specs(tmp_path: Path) -> AsyncIterator[tuple[Path, int]]:
    yield tmp_path, free_port()


def web_and(specs: tuple[Path, int], policy: dict[str, Any]) -> tuple[Path, LoadResult]:
    """The test's directory, and the web app on its port with ``policy``, loaded."""
    tmp, port = specs
    return tmp, load(write_specs(tmp / "s.yaml", [web_container("web", port), policy]))


@asynccontextmanager
async def started(tmp: Path, result: LoadResult, **settings: Any) -> AsyncIterator[Controller]:
    """A running controller on ``result``; its processes stopped for good afterwards."""
    try:
        async with running(tmp / "state", result, **settings) as controller:
            yield controller
    finally:
        await down_all(tmp / "state", result)


async def until_healthy(controller: Controller) -> None:
    """Wait until the store says the web app is healthy."""
    await eventually(
        lambda: (controller.store.resource_records.resource(KEY) or {}).get("health") == "healthy",
        what="healthy",
    )


async def finished_fix(controller: Controller) -> dict[str, Any]:
    """The web app's newest fix, once it has finished."""
    fix: dict[str, Any] = await eventually(
        lambda: (f := controller.store.fix_records.last_fix(KEY)) and f["status"] == "done" and f,
        what="a finished fix",
    )
    return fix


async def crash_and_wait(controller: Any, result: LoadResult, *, health: str) -> dict[str, Any]:
    await until_healthy(controller)
    pid = (await controller.runtime.stats(result.resources[0]))["replicas"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    return await eventually(
        lambda: (
            (r := controller.store.resource_records.resource(KEY)) and r["health"] == health and r
        ),
        deadline=30,
        what=health,
    )


async def test_auto_mode_runs_an_admitted_plan_and_records_it(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="healthy")
        fix = await finished_fix(controller)
        assert fix["source"] == "replay" and fix["outcome"] == "fixed" and fix["verified"]
        [asked] = planner.requests
        assert "no HealingPolicy has a rule for container.running" in asked.reason
        assert {t.name for t in asked.tools} >= {"container_logs", "container_stats"}
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "admitted" and interaction["fix_id"] == fix["id"]
        assert interaction["tokens_in"] == 100


async def test_a_plan_outside_the_allowlist_is_rejected_and_nothing_runs(
    specs: tuple[Path, int],
) -> None:
    policy = escalating_policy("auto", allowedTools=["container_logs", "container_restart"])
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_scale", {"replicas": 3}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert (
            "rejected by the guard" in row["message"]
            and "does not allow this tool" in row["message"]
        )
        assert controller.store.fix_records.fixes(key=KEY) == []
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "rejected"


async def test_a_step_on_another_resource_is_rejected(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = ScriptedPlanner(("container_restart", {}), target="Container/other")
    async with started(tmp, result, planners={"replay": planner}) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "targets Container/other, but only Container/web drifted" in row["message"]
        assert controller.store.fix_records.fixes(key=KEY) == []


async def test_approve_mode_waits_for_an_operator(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("approve"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "waits for an operator's approval" in row["message"]
        assert controller.store.fix_records.fixes(key=KEY) == []
        [pending] = controller.store.pending_records.pending_plans(key=KEY)
        done = await controller.operations.approve_plan(pending["id"], "test-operator")
        assert done.outcome.value == "fixed"
        assert controller.store.pending_records.pending_plan(pending["id"])["status"] == "executed"
        await until_healthy(controller)


async def test_shadow_mode_records_beside_the_rules(specs: tuple[Path, int]) -> None:
    policy = escalating_policy("shadow", rules=True, when="always")
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="healthy")
        fix = await finished_fix(controller)
        assert fix["source"] == "rules" and fix["outcome"] == "fixed"
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "shadow" and interaction["fix_id"] is None
        assert [s["tool"] for s in interaction["plan"]["steps"]] == ["container_restart"]
        # Judged against the rules' fix that ran: the same restart, so they agree.
        assert interaction["agreement"] == "agrees"
        assert interaction["compared_fix_id"] == fix["id"]
        assert controller.store.llm_records.shadow_agreement() == {
            "app-crash": {"agrees": 1, "differs": 0, "pending": 0}
        }


async def test_a_shadow_plan_that_would_have_done_otherwise_differs(
    specs: tuple[Path, int],
) -> None:
    policy = escalating_policy(
        "shadow", rules=True, when="always",
        allowedTools=["container_restart", "container_scale", "container_logs"],
    )  # fmt: skip
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_logs", {}), ("container_scale", {"replicas": 2}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="healthy")
        interaction = await eventually(
            lambda: (i := controller.store.llm_records.llm_interactions(key=KEY)) and i[0]["agreement"]
            and i[0],
            what="the shadow plan judged",
        )  # fmt: skip
        assert interaction["agreement"] == "differs"
        assert controller.store.fix_records.fixes(key=KEY)[0]["source"] == "rules"


async def test_shadow_mode_without_a_rule_runs_nothing(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("shadow"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "recorded in shadow mode" in row["message"]
        assert controller.store.fix_records.fixes(key=KEY) == []
        assert controller.store.pending_records.pending_plans(key=KEY) == []
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "shadow" and interaction["agreement"] is None


async def test_llm_plans_have_their_own_attempts(specs: tuple[Path, int]) -> None:
    policy = escalating_policy("auto", attempts={"max": 1, "window": "1h"})
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="healthy")
        assert (await finished_fix(controller))["outcome"] == "fixed"  # the first LLM fix
        # A crash loop: the second crash within the hour is not the LLM's to restart.
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "ran 1/1 LLM plans in 1h" in row["message"]
        assert len(controller.store.fix_records.fixes(key=KEY)) == 1


class StuckPlanner(ScriptedPlanner):
    """A planner that never answers (a model or network that hangs past every timeout)."""

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        self.requests.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_escalation_ends_at_its_deadline(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = StuckPlanner()
    async with started(tmp, result, planners={"replay": planner}, llm_deadline=0.5) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "gave no plan within the 0.5s deadline" in row["message"]
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert "deadline" in interaction["error"]
        assert controller.store.fix_records.fixes(key=KEY) == []


async def test_the_shared_daily_token_budget(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(
        tmp, result, planners={"replay": planner}, llm_tokens_per_day=1000
    ) as controller:
        # Spent on another resource: the shared cap counts every resource.
        controller.store.llm_records.record_llm_interaction(
            "RedisCache/other", "replay", "m", "p", "r", None, 900, 200, 0.1,
            controller.clock(),
        )  # fmt: skip
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "shared LLM token budget is spent: 1100 of 1000" in row["message"]
        assert planner.requests == []


async def test_analyze_parks_a_plan_and_runs_nothing(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        assert controller.operations.llm_ready
        await until_healthy(controller)
        answer = await controller.operations.analyze(KEY, "alice")
        assert answer["decision"] == "pending" and answer["pending_plan"] is not None
        assert [s["tool"] for s in answer["plan"]["steps"]] == ["container_restart"]
        assert "an operator (alice) asked" in planner.requests[0].reason
        [parked] = controller.store.pending_records.pending_plans(key=KEY)
        assert parked["id"] == answer["pending_plan"]
        assert controller.store.fix_records.fixes(key=KEY) == []
        interaction = controller.store.llm_records.llm_interaction(answer["interaction"])
        assert interaction is not None and interaction["decision"] == "pending"
        assert [a["action"] for a in controller.store.audit_records.actions(key=KEY)][:1] == [
            "analyze"
        ]


async def test_analyze_without_a_planner_says_how_to_configure_one(
    specs: tuple[Path, int],
) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    async with started(tmp, result) as controller:
        assert not controller.operations.llm_ready
        with pytest.raises(PermanentError, match="set GEMINI_API_KEY"):
            await controller.operations.analyze(KEY, "alice")


async def test_approving_an_llm_plan_keeps_it_to_the_escalation_allowlist(
    specs: tuple[Path, int],
) -> None:
    policy = escalating_policy("approve", allowedTools=["container_logs", "container_restart"])
    tmp, result = web_and(specs, policy)
    async with started(tmp, result) as controller:
        sneaky = Plan(KEY, (PlanStep("container_scale", KEY, {"replicas": 3}),), "gemini",
                      "t", "app-crash")  # fmt: skip
        parked = controller.store.pending_records.add_pending_plan(
            KEY, sneaky, "test", controller.clock()
        )
        refused = await controller.operations.approve_plan(parked, "alice")
        assert refused.outcome.value == "rejected"
        assert "does not allow this tool" in refused.message
        assert controller.store.fix_records.fixes(key=KEY) == []


async def test_dry_run_records_the_plan_and_runs_nothing(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, crash_policy())
    async with started(tmp, result, dry_run=True) as controller:
        await crash_and_wait(controller, result, health="drifting")
        fix = await eventually(
            lambda: controller.store.fix_records.last_fix(KEY), what="a dry-run fix"
        )
        assert fix["dry_run"] and fix["outcome"] == "dry-run"
        assert fix["planned_steps"][0]["tool"] == "container_restart"
        assert fix["steps"] == []  # nothing was called
        observed = await controller.observer.observe(result.resources[0])
        assert observed.get("container.running") is False  # still down


async def test_without_a_planner_the_controller_runs_on_rules_and_says_so(
    specs: tuple[Path, int],
) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    unconfigured = {"replay": "no GEMINI_API_KEY"}
    async with started(tmp, result, unconfigured_planners=unconfigured) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "rules only: no GEMINI_API_KEY" in row["message"]
        assert controller.store.llm_records.llm_interactions(key=KEY) == []


async def test_over_the_token_budget_goes_to_an_operator(specs: tuple[Path, int]) -> None:
    policy = escalating_policy("auto", tokenBudgetPerDay=1000)
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        controller.store.llm_records.record_llm_interaction(
            KEY, "replay", "m", "p", "r", None, 900, 200, 0.1, controller.clock()
        )
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "token budget spent: 1100 of 1000" in row["message"]
        assert planner.requests == []


async def test_a_cooling_escalation_waits_without_asking(specs: tuple[Path, int]) -> None:
    policy = escalating_policy("auto", cooldown="1h", attempts={"max": 5, "window": "1h"})
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="healthy")
        assert (await finished_fix(controller))["outcome"] == "fixed"  # the first LLM fix
        # Cooling down: the pass waits (no operator is paged) and no tokens are spent on a
        # plan that could not run.
        row = await crash_and_wait(controller, result, health="drifting")
        assert "cooling down" in row["message"]
        assert len(planner.requests) == 1
        assert not controller.store.resource_records.needs_operator(KEY)


async def test_dry_run_asks_the_llm_once(specs: tuple[Path, int]) -> None:
    tmp, result = web_and(specs, escalating_policy("auto"))
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}, dry_run=True) as controller:
        row = await crash_and_wait(controller, result, health="needs-operator")
        assert "dry-run: the replay plan is recorded" in row["message"]
        for _ in range(3):  # later passes leave it to the operator, asking nobody
            await controller.reconcile(KEY)
        assert len(planner.requests) == 1
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "dry-run"


async def test_an_approval_that_comes_after_the_drift_is_over_runs_nothing(
    specs: tuple[Path, int],
) -> None:
    tmp, result = web_and(specs, escalating_policy("approve"))
    planner = ScriptedPlanner(("container_restart", {}))
    web = result.resources[0]
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await crash_and_wait(controller, result, health="needs-operator")
        [parked] = controller.store.pending_records.pending_plans(key=KEY)
        # A worker holds the resource (say, fixing it) while the operator clicks Approve;
        # by the time the approval's turn comes, the app is back.
        async with controller.lock(KEY):
            approval = asyncio.create_task(
                controller.operations.approve_plan(parked["id"], "alice")
            )
            await controller.runtime.restart(web)  # type: ignore[arg-type]
            await eventually(lambda: _healthy(controller, web), what="the app back by other means")
        done = await approval
        assert done.outcome.value == "in-sync" and "drift was over" in done.message
        assert controller.store.pending_records.pending_plan(parked["id"])["status"] == "superseded"
        assert controller.store.fix_records.fixes(key=KEY) == []
        [interaction] = controller.store.llm_records.llm_interactions(key=KEY)
        assert interaction["decision"] == "superseded"


async def _healthy(controller: Controller, web: Any) -> bool:
    return (await controller.observer.observe(web)).get("container.healthy") is True


async def test_an_operators_question_is_not_a_shadow_plan(specs: tuple[Path, int]) -> None:
    policy = escalating_policy("shadow", rules=True, when="always")
    tmp, result = web_and(specs, policy)
    planner = ScriptedPlanner(("container_restart", {}))
    async with started(tmp, result, planners={"replay": planner}) as controller:
        await until_healthy(controller)
        answer = await controller.operations.analyze(KEY, "alice")
        assert (
            controller.store.llm_records.llm_interaction(answer["interaction"])["mode"] == "analyze"
        )
        await crash_and_wait(controller, result, health="healthy")
        await finished_fix(controller)  # the rules' fix
        # Only the shadow plan proposed beside the rules' fix is judged; the operator's
        # question, asked while nothing was wrong, is not.
        assert controller.store.llm_records.shadow_agreement() == {
            "app-crash": {"agrees": 1, "differs": 0, "pending": 0}
        }
        # ... and its parked plan waits for the operator: a healthy pass does not drop it.
        assert (
            controller.store.pending_records.pending_plan(answer["pending_plan"])["status"]
            == "pending"
        )
