"""The five classic failures, each injected into the demo stack and healed by its policy.

One stack (the example specs on free ports: a supervised PostgreSQL, Redis and the shop
app) and one controller serve the whole module; each test injects a fault with the same
code as `driftmend chaos`, then asserts on the stored fix: the drift and its evidence, the
tools that ran, verification, signals before and after, and both times.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import psycopg
import pytest
import pytest_asyncio
from shop.loadgen import run_load

from driftmend.chaos import Stack, inject, revert
from driftmend.controller import Controller
from driftmend.settings import Settings
from tests.demo_stack import DemoStack
from tests.integration.harness import eventually, healthy_demo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo() -> AsyncIterator[tuple[DemoStack, Controller]]:
    async with healthy_demo() as running_demo:
        yield running_demo


def chaos_settings(stack: DemoStack) -> Settings:
    return Settings(state_dir=stack.state)


async def healed(
    controller: Controller, key: str, rule: str, after_id: int, deadline: float = 60
) -> dict[str, Any]:
    """The first finished fix of ``rule`` on ``key`` newer than ``after_id``."""

    def find() -> dict[str, Any] | None:
        for fix in controller.store.fix_records.fixes(key=key, limit=20):
            if fix["id"] > after_id and fix["rule"] == rule and fix["status"] == "done":
                return controller.store.fix_records.fix(fix["id"])
        return None

    return await eventually(find, deadline=deadline, interval=0.1, what=f"{rule} fixed {key}")


def last_id(controller: Controller) -> int:
    fixes = controller.store.fix_records.fixes(limit=1)
    return int(fixes[0]["id"]) if fixes else 0


def assert_recorded(fix: dict[str, Any], tools: list[str]) -> None:
    """A verified rules fix with its evidence: the drift of its rung names the signal that
    fired, with the observed value in its evidence."""
    assert fix["outcome"] == "fixed", fix["message"]
    drift = next(d for d in fix["drifts"] if d.get("rule") == fix["rule"])
    assert drift["policy"] == fix["policy"]
    assert drift["signal"] in drift["evidence"], drift
    assert drift["evidence"][drift["signal"]] == drift["observed"]
    assert fix["verified"]
    assert fix["source"] == "rules"
    assert [s["tool"] for s in fix["steps"]] == tools
    assert all(s["status"] == "ok" for s in fix["steps"]), fix["steps"]
    assert fix["root_cause"]
    assert fix["signals_before"] and fix["signals_after"]
    assert fix["time_to_detect"] is not None and fix["time_to_detect"] >= 0
    assert fix["time_to_recover"] is not None and fix["time_to_recover"] >= fix["time_to_detect"]


async def app_answers(stack: DemoStack) -> bool:
    async with httpx2.AsyncClient(timeout=2, trust_env=False) as client:
        try:
            return (
                await client.get(f"http://127.0.0.1:{stack.app_port}/healthz")
            ).status_code == 200
        except httpx2.HTTPError:
            return False


async def test_app_crash(demo: tuple[DemoStack, Controller]) -> None:
    """kill -9: healed, and the recovery recorded within 0.1 s of when an HTTP client sees
    the app answer again (its probe runs every second, verify looks every 0.5 s)."""
    stack, controller = demo
    since = last_id(controller)
    stop = threading.Event()
    poller = asyncio.create_task(asyncio.to_thread(_back_after_down, stack.app_port, stop))
    try:
        await inject(
            "app-crash", Stack.of(list(controller.resources.values())), chaos_settings(stack)
        )
        killed_at = time.time()
        fix = await healed(controller, "Container/shop", "restart-on-exit", since)
        back = await asyncio.wait_for(asyncio.shield(poller), 10)
    finally:
        stop.set()
        await poller
    assert_recorded(fix, ["container_restart"])
    assert fix["signals_before"]["container.running"] is False
    assert fix["signals_after"]["container.healthy"] is True
    assert fix["time_to_detect"] < 1.0
    assert back is not None
    print(
        f"app kill -9: HTTP back {back - killed_at:.2f}s, "
        f"recorded recovered {fix['recovered_at'] - killed_at:.2f}s"
    )
    assert abs(fix["recovered_at"] - back) <= 0.1, (fix["recovered_at"], back)
    assert await app_answers(stack)


def _back_after_down(port: int, stop: threading.Event) -> float | None:
    """In a thread of its own: poll /healthz every 10 ms; once it has failed, the time it
    first answers 200 again."""
    down = False
    while not stop.is_set():
        ok = False
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        try:
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
        except OSError:
            pass
        finally:
            conn.close()
        if ok and down:
            return time.time()
        down = down or not ok
        stop.wait(0.01)
    return None


async def test_app_cpu_burn(demo: tuple[DemoStack, Controller]) -> None:
    stack, controller = demo
    since = last_id(controller)
    await inject(
        "app-cpu-burn", Stack.of(list(controller.resources.values())), chaos_settings(stack)
    )
    fix = await healed(controller, "Container/shop", "restart-on-cpu-burn", since)
    assert_recorded(fix, ["container_restart"])
    assert fix["signals_before"]["container.cpu_used_ratio"] >= 0.8
    assert fix["signals_after"]["container.cpu_used_ratio"] < 0.8
    assert await app_answers(stack)


async def test_app_memory_leak(demo: tuple[DemoStack, Controller]) -> None:
    stack, controller = demo
    since = last_id(controller)
    await inject(
        "app-memory-leak", Stack.of(list(controller.resources.values())), chaos_settings(stack)
    )
    fix = await healed(controller, "Container/shop", "restart-on-memory-leak", since)
    assert_recorded(fix, ["container_restart"])
    assert fix["signals_before"]["container.memory_used_ratio"] >= 0.9
    assert fix["signals_after"]["container.memory_used_ratio"] < 0.9


async def test_pool_exhaustion_then_its_return(demo: tuple[DemoStack, Controller]) -> None:
    stack, controller = demo
    chaos = Stack.of(list(controller.resources.values()))
    since = last_id(controller)
    await inject("pool-exhaustion", chaos, chaos_settings(stack))
    fix = await healed(controller, "PostgresDatabase/shop-db", "terminate-idle-sessions", since)
    assert_recorded(fix, ["pg_terminate_queries"])
    assert fix["signals_before"]["postgres.connections_used_ratio"] >= 0.9
    assert fix["signals_after"]["postgres.connections_used_ratio"] < 0.9
    ended = fix["steps"][0]["result"]["data"]["terminated"]
    assert len(ended) >= 5 and all(s["state"].startswith("idle in transaction") for s in ended)

    # It comes back within the window: the next rung raises max_connections, restarting
    # PostgreSQL through its runtime. A restart of the database is the operator's call
    # (`approval: operator` on the rung): the plan waits until it is approved.
    since = last_id(controller)
    await revert("pool-exhaustion", chaos, chaos_settings(stack))
    await inject("pool-exhaustion", chaos, chaos_settings(stack))
    parked = await eventually(
        lambda: controller.store.pending_records.pending_plans(key="PostgresDatabase/shop-db"),
        deadline=30,
        what="the raise-max-connections plan waiting for approval",
    )
    assert parked[0]["plan"]["rule"] == "raise-max-connections"
    assert (controller.store.resource_records.resource("PostgresDatabase/shop-db") or {})[
        "health"
    ] == ("needs-operator")
    assert last_id(controller) == since  # nothing ran before the approval
    approved = await controller.operations.approve_plan(parked[0]["id"], "test-operator")
    assert approved.outcome.value == "fixed", approved.message
    fix = await healed(
        controller, "PostgresDatabase/shop-db", "raise-max-connections", since, deadline=90
    )
    assert_recorded(fix, ["pg_scale_connections"])
    assert fix["signals_after"]["postgres.max_connections"] == 60
    await revert("pool-exhaustion", chaos, chaos_settings(stack))
    await eventually(lambda: app_answers(stack), deadline=30, what="the app answers again")


async def test_long_queries(demo: tuple[DemoStack, Controller]) -> None:
    stack, controller = demo
    chaos = Stack.of(list(controller.resources.values()))
    since = last_id(controller)
    await inject("long-queries", chaos, chaos_settings(stack))
    fix = await healed(controller, "PostgresDatabase/shop-db", "terminate-long-queries", since)
    assert_recorded(fix, ["pg_terminate_queries"])
    assert fix["signals_before"]["postgres.longest_query_seconds"] >= 10
    assert fix["signals_after"]["postgres.longest_query_seconds"] < 10
    queries = " ".join(s["query"] for s in fix["steps"][0]["result"]["data"]["terminated"])
    assert "pg_sleep" in queries
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{stack.pg_port}/postgres") as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert left == (0,)
    await revert("long-queries", chaos, chaos_settings(stack))
    assert await app_answers(stack)


async def test_redis_memory_full(demo: tuple[DemoStack, Controller]) -> None:
    stack, controller = demo
    chaos = Stack.of(list(controller.resources.values()))
    since = last_id(controller)
    await inject("redis-memory-full", chaos, chaos_settings(stack))
    fix = await healed(controller, "RedisCache/shop-cache", "purge-and-evict", since)
    assert_recorded(fix, ["redis_memory_purge", "redis_set_policy"])
    assert fix["signals_before"]["redis.memory_used_ratio"] >= 0.95
    assert fix["signals_before"]["redis.evicting_policy"] is False
    assert fix["signals_after"]["redis.evicting_policy"] is True
    # Writes work again: the app's health check writes to Redis.
    await eventually(lambda: app_answers(stack), deadline=15, what="the app answers again")
    await revert("redis-memory-full", chaos, chaos_settings(stack))


async def test_redis_memory_full_climbs_the_ladder(demo: tuple[DemoStack, Controller]) -> None:
    """Each time the cache fills again within the window, the next rung takes over: the
    first rung twice, then raising maxmemory within its cap, then a flush, which is
    destructive and waits for an operator's approval."""
    stack, controller = demo
    chaos = Stack.of(list(controller.resources.values()))
    key = "RedisCache/shop-cache"

    async def refill() -> int:
        await revert("redis-memory-full", chaos, chaos_settings(stack))
        await eventually(
            lambda: (
                (controller.store.resource_records.resource(key) or {}).get("health") == "healthy"
            ),
            deadline=30,
            what="the cache healthy before the next fault",
        )
        since = last_id(controller)
        await inject("redis-memory-full", chaos, chaos_settings(stack))
        return since

    since = await refill()  # the first rung's second and last attempt in its window
    assert_recorded(await healed(controller, key, "purge-and-evict", since), [
        "redis_memory_purge", "redis_set_policy"])  # fmt: skip

    since = await refill()
    fix = await healed(controller, key, "raise-maxmemory", since)
    assert_recorded(fix, ["redis_set_maxmemory"])
    assert fix["signals_after"]["redis.maxmemory_bytes"] == 128 * 1024 * 1024
    assert fix["signals_after"]["redis.memory_used_ratio"] < 0.95

    since = await refill()
    parked = await eventually(
        lambda: controller.store.pending_records.pending_plans(key=key),
        deadline=30,
        what="the flush waiting for an operator",
    )
    assert [s["tool"] for s in parked[0]["plan"]["steps"]] == ["redis_flush"]
    assert "destructive" in parked[0]["reason"]
    assert last_id(controller) == since  # nothing ran before the approval
    approved = await controller.operations.approve_plan(parked[0]["id"], "test-operator")
    assert approved.outcome.value == "fixed", approved.message
    fix = await healed(controller, key, "flush", since)
    assert_recorded(fix, ["redis_flush"])
    assert fix["steps"][0]["result"]["data"]["keys_removed"] > 0
    await revert("redis-memory-full", chaos, chaos_settings(stack))
    await eventually(lambda: app_answers(stack), deadline=15, what="the app answers again")


async def test_no_fault_means_no_fix_and_no_drift(demo: tuple[DemoStack, Controller]) -> None:
    """The control: normal load and no fault give no fix and no drift (a short version of
    the ten-minute control that bench/no_fault.py runs)."""
    stack, controller = demo
    await eventually(
        lambda: all(
            (controller.store.resource_records.resource(k) or {}).get("health") == "healthy"
            for k in controller.resources
        ),
        deadline=60,
        what="healthy before the control",
    )
    fixes_before = last_id(controller)
    started = time.time()
    summary = await run_load(
        f"http://127.0.0.1:{stack.app_port}", rps=10, duration=15, concurrency=4
    )
    assert summary["errors"] == 0, summary
    assert last_id(controller) == fixes_before
    drifted = [
        r
        for r in controller.store.reconciliation_records.reconciliations(limit=50)
        if r["started_at"] >= started
    ]
    assert drifted == [], drifted


# The two hangs last: a frozen process leaves its dependents shaken for a while.


async def test_app_hang_heals_within_its_declared_window(
    demo: tuple[DemoStack, Controller],
) -> None:
    """SIGSTOP on the app: 3 failed probes of 1 s, then `for: 10s` (a declared window of
    13 s); the restart wakes it with SIGCONT so its SIGTERM ends it at once."""
    stack, controller = demo
    shop = controller.resources["Container/shop"]
    pid = (await controller.runtime.stats(shop))["replicas"][0]["pid"]  # type: ignore[arg-type]
    since = last_id(controller)
    os.kill(pid, signal.SIGSTOP)
    hung_at = time.time()
    try:
        fix = await healed(controller, "Container/shop", "restart-when-unhealthy", since, 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert_recorded(fix, ["container_restart"])
    window = 3 * 1.0 + 10.0
    took = fix["recovered_at"] - hung_at
    print(f"app hang healed in {took:.2f}s for a declared window of {window:g}s")
    assert took <= window + 2.0, took
    assert await app_answers(stack)


async def test_postgres_stopped_heals_at_the_first_start(
    demo: tuple[DemoStack, Controller],
) -> None:
    """SIGSTOP on the postmaster: `postgres.up` false for 20 s, then pg_restart through its
    Container. The stop wakes it (SIGCONT) for a clean shutdown, no backend outlives it, and
    the new postmaster starts at the first try: one restart, no stale lock in the way."""
    stack, controller = demo
    host = controller.resources["Container/postgres"]
    stats = await controller.runtime.stats(host)  # type: ignore[arg-type]
    pid, restarts = stats["replicas"][0]["pid"], stats["replicas"][0]["restarts"]
    since = last_id(controller)
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        fix = await healed(
            controller, "PostgresDatabase/shop-db", "restart-when-not-answering", since, 60
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert_recorded(fix, ["pg_restart"])
    restart = fix["steps"][0]["result"]["data"]["restart"]
    assert restart["alive"] == [True] and restart["old_pids"] == [pid], restart
    after = (await controller.runtime.stats(host))["replicas"][0]  # type: ignore[arg-type]
    assert after["restarts"] == restarts + 1 and after["pid"] == restart["new_pids"][0]
    assert fix["finished_at"] - fix["started_at"] < 5.0, fix
    print(
        f"PostgreSQL SIGSTOP healed in {fix['recovered_at'] - stopped_at:.2f}s "
        f"(the fix itself {fix['finished_at'] - fix['started_at']:.2f}s)"
    )
    await eventually(lambda: app_answers(stack), deadline=30, what="the app answers again")
