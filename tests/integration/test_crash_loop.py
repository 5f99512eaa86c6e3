"""A crash loop of the demo app, healed the kubelet's way: never abandoned, never locked.

The demo stack runs with its own example policies; a killer SIGKILLs the shop app every
time a replica appears. The ladder is spent (both of its rungs get their turn), the app is
flagged needs-operator, an operator's Fix now still runs in the middle of the loop, and once
the killing stops the app is back by itself within the backoff the policy declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
import pytest_asyncio

from driftmend.controller import Controller
from driftmend.incidents import current_incident, retry_delay
from driftmend.spec import Container
from tests.demo_stack import DemoStack
from tests.integration.harness import eventually, healthy_demo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SHOP = "Container/shop"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo() -> AsyncIterator[tuple[DemoStack, Controller]]:
    async with healthy_demo(resync_period=1.0) as running_demo:
        yield running_demo


async def kill_every_replica(controller: Controller, app: Container) -> int:
    """SIGKILL each replica of ``app`` the moment it runs; returns how many were killed."""
    killed = 0
    while True:
        stats = await controller.runtime.stats(app)
        for replica in stats.get("replicas", []):
            if replica.get("pid") and replica.get("running"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(replica["pid"]), signal.SIGKILL)
                    killed += 1
        try:
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            return killed


async def answers(port: int) -> bool:
    async with httpx2.AsyncClient(timeout=1, trust_env=False) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx2.HTTPError:
            return False


@pytest.mark.timeout(240)  # a minute of crash loop, then the backoff's wait
async def test_a_crash_loop_is_flagged_then_healed_by_itself_once_it_stops(
    demo: tuple[DemoStack, Controller],
) -> None:
    stack, controller = demo
    app = controller.resources[SHOP]
    assert isinstance(app, Container)
    killer = asyncio.create_task(kill_every_replica(controller, app))
    try:
        row = await eventually(
            lambda: (
                (r := controller.store.resource_records.resource(SHOP))
                and r["needs_operator"]
                and r
            ),
            deadline=180,
            interval=0.2,
            what="the crash loop flagged needs-operator",
        )
        reason = row["needs_operator_reason"] or ""
        assert "ladder exhausted" in reason, reason
        rungs = {f.rule for f in controller.store.fix_records.fixes(key=SHOP)}
        # Every rung whose conditions held got its turn before the ladder was spent.
        assert {"restart-on-exit", "restart-when-unhealthy"} <= rungs, rungs

        # Fix now is an operator's decision: it runs even with every attempt used.
        before = len(controller.store.fix_records.fixes(key=SHOP))
        await controller.operations.trigger_fix(SHOP, "alice")
        fixes = controller.store.fix_records.fixes(key=SHOP)
        assert len(fixes) == before + 1 and fixes[0].plan["trigger"] == "operator"
    finally:
        killer.cancel()
        killed = await killer
    assert killed >= 5
    stopped = time.monotonic()

    # The declared backoff the next retry waits, from what the store says has run.
    history = controller.reconciler.history(SHOP)
    incident = current_incident(history, time.time(), 600.0)
    retries = sum(1 for a in incident if a.trigger == "backoff")
    crash_policy = next(p for p in controller.policies if p.name == "app-crash")
    wait = retry_delay(crash_policy.spec.backoff, retries)
    await eventually(
        lambda: answers(stack.app_port),
        deadline=wait + 15,
        interval=0.1,
        what=f"the app back by itself within its backoff ({wait:g}s)",
    )
    back_after = time.monotonic() - stopped
    assert back_after <= wait + 15
    row = await eventually(
        lambda: (
            (r := controller.store.resource_records.resource(SHOP))
            and not r["needs_operator"]
            and r["health"] == "healthy"
            and r
        ),
        deadline=15,
        what="the flag cleared once healed",
    )
    healed_by = controller.store.fix_records.fixes(key=SHOP)[0]
    assert healed_by.outcome == "fixed" and healed_by.plan["trigger"] in ("backoff", "ladder")
