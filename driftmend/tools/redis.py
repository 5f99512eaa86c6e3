"""The Redis tools: purge memory, set maxmemory or policy, restart, flush, inspect.

Stage: *act* in docs/ARCHITECTURE.md. Each tool reaches the cache only through ``ctx.redis`` (the
``RedisDriver`` seam) and restarts it only through the runtime that hosts it
(``ctx.host_of(cache)`` and ``ctx.runtime``). Caps declared in the spec are checked here,
before anything changes, and a refusal says which cap and why.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from driftmend.model import Observation, ToolResult
from driftmend.quantities import BYTES_PATTERN, parse_bytes
from driftmend.spec import RedisCache
from driftmend.tools.base import Effect, NoParams, Params, Tool, ToolContext
from driftmend.tools.container import restart_failure

KIND = ("RedisCache",)
RESTART_DEADLINE_S = 30.0
_POLL_S = 0.25
_MIB = 1024 * 1024

Policy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]

MaxMemory = Annotated[
    int,
    BeforeValidator(parse_bytes),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": BYTES_PATTERN, "examples": ["128mb", "1gb"]},
                {"type": "integer", "minimum": _MIB},
            ],
            "description": "new maxmemory: bytes, or a size like 128mb (powers of 1024)",
        }
    ),
]


async def _observe_up(ctx: ToolContext, cache: RedisCache) -> Observation | ToolResult:
    """The observation, or a failed result when the cache cannot be read."""
    obs = await ctx.redis.observe(cache)
    if obs.get("redis.up") is not True:
        return ToolResult.failure(f"{cache.key} is not reachable: {obs.error}")
    return obs


# --- redis_memory_purge ------------------------------------------------------------------


async def _purge(ctx: ToolContext, cache: RedisCache, p: NoParams) -> ToolResult:
    return ToolResult.success(**await ctx.redis.memory_purge(cache))


# --- redis_set_maxmemory -----------------------------------------------------------------


class MaxMemoryParams(Params):
    """The new memory limit."""

    maxmemory: MaxMemory = Field(
        ge=_MIB,
        le=1024**4,
        description="new maxmemory: bytes, or a size like 128mb; at most spec.maxmemoryCap "
        "and at least the memory used now",
    )


async def _set_maxmemory(ctx: ToolContext, cache: RedisCache, p: MaxMemoryParams) -> ToolResult:
    cap = cache.spec.maxmemory_cap
    if cap is not None and p.maxmemory > cap:
        return ToolResult.refused(
            f"maxmemory {p.maxmemory} bytes is above {cache.key}'s spec.maxmemoryCap ({cap} bytes)"
        )
    obs = await _observe_up(ctx, cache)
    if isinstance(obs, ToolResult):
        return obs
    used = int(obs.get("redis.memory_used_bytes") or 0)
    if p.maxmemory < used:
        return ToolResult.refused(
            f"maxmemory {p.maxmemory} bytes is below the {used} bytes used now: writes would "
            "fail or keys be evicted at once; purge, flush or evict first"
        )
    return ToolResult.success(**await ctx.redis.set_maxmemory(cache, p.maxmemory))


# --- redis_set_policy --------------------------------------------------------------------


class PolicyParams(Params):
    """The new eviction policy."""

    policy: Policy = Field(
        description="maxmemory-policy: allkeys-* evict any key, volatile-* only keys with a "
        "TTL, noeviction refuses writes when full"
    )


async def _set_policy(ctx: ToolContext, cache: RedisCache, p: PolicyParams) -> ToolResult:
    return ToolResult.success(**await ctx.redis.set_policy(cache, p.policy))


# --- redis_restart -----------------------------------------------------------------------


async def _restart(ctx: ToolContext, cache: RedisCache, p: NoParams) -> ToolResult:
    host = ctx.host_of(cache)
    if host is None:
        ref = cache.spec.runtime_ref
        return ToolResult.refused(
            f"{cache.key} declares no spec.runtimeRef, so driftmend cannot restart it; "
            "declare the Container that runs it"
            if ref is None
            else f"{cache.key} names runtimeRef {ref.kind}/{ref.name}, which is not declared"
        )
    restart = await ctx.runtime.restart(host)
    failed = restart_failure(host.key, restart)
    if failed is not None:  # it died at start: no use waiting for it to answer
        return ToolResult.failure(failed, restart=restart)
    started = time.monotonic()
    while True:
        obs = await ctx.redis.observe(cache)
        waited = round(time.monotonic() - started, 3)
        if obs.get("redis.up") is True:
            return ToolResult.success(restart=restart, seconds_to_ready=waited)
        if waited >= RESTART_DEADLINE_S:
            return ToolResult.failure(
                f"{cache.key} does not answer {RESTART_DEADLINE_S:g}s after the restart: "
                f"{obs.error}",
                restart=restart,
            )
        await asyncio.sleep(_POLL_S)


# --- redis_flush -------------------------------------------------------------------------


async def _flush(ctx: ToolContext, cache: RedisCache, p: NoParams) -> ToolResult:
    return ToolResult.success(**await ctx.redis.flush(cache))


# --- redis_info --------------------------------------------------------------------------


async def _info(ctx: ToolContext, cache: RedisCache, p: NoParams) -> ToolResult:
    obs = await _observe_up(ctx, cache)
    if isinstance(obs, ToolResult):
        return obs
    signals = {name.removeprefix("redis."): value for name, value in obs.signals.items()}
    return ToolResult.success(**signals, **dict(obs.facts))


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="redis_memory_purge",
        description=(
            "MEMORY PURGE: ask Redis's allocator to return fragmented, unused memory to the "
            "system. Use it when resident memory is far above used memory (fragmentation). It "
            "deletes no keys, so it does not help a cache that is full of live data. Risk: "
            "low; a short pause. Returns used and resident memory before and after."
        ),
        params=NoParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_purge,
    ),
    Tool(
        name="redis_set_maxmemory",
        description=(
            "CONFIG SET maxmemory: change how much memory Redis may use for data. Use it when "
            "the cache is full (memory_used_ratio near 1, rejected writes) and the host has "
            "room. Risk: more memory taken from the host; not persisted across a restart. "
            "Refused above spec.maxmemoryCap or below the memory used now."
        ),
        params=MaxMemoryParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_set_maxmemory,
    ),
    Tool(
        name="redis_set_policy",
        description=(
            "CONFIG SET maxmemory-policy: choose what Redis does when full. Use an allkeys-* "
            "policy (allkeys-lru is the usual cache choice) when a full cache under "
            "noeviction rejects writes. Risk: an evicting policy deletes keys to make room, "
            "so use it only when the data is a cache that can be rebuilt. Not persisted "
            "across a restart."
        ),
        params=PolicyParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_set_policy,
    ),
    Tool(
        name="redis_restart",
        description=(
            "Restart the Redis server through the Container that hosts it, then wait until it "
            "answers PING. Use it when Redis is down or unresponsive. Risk: clients see errors "
            "for a moment, and without persistence every key is lost; runtime CONFIG SET "
            "changes are reset. Refused without a runtimeRef. Destructive (it may lose every "
            "key), so it needs an operator's approval unless the policy approves it."
        ),
        params=NoParams,
        kinds=KIND,
        # A cache without persistence comes back empty: to its clients, a flush.
        effect=Effect.DESTRUCTIVE,
        fn=_restart,
    ),
    Tool(
        name="redis_flush",
        description=(
            "FLUSHDB: delete every key of the cache's database. A last resort when the cache "
            "is full, its data can be rebuilt, and raising maxmemory or evicting is not "
            "possible. Risk: destructive and irreversible; every cached value is gone and the "
            "backing store takes the full load while the cache refills. Returns keys removed."
        ),
        params=NoParams,
        kinds=KIND,
        effect=Effect.DESTRUCTIVE,
        fn=_flush,
    ),
    Tool(
        name="redis_info",
        description=(
            "Read-only: the cache's memory used and limit, usage ratio, eviction policy, "
            "evicted keys, rejected writes, key count and version. Use it to understand a "
            "memory problem before choosing a fix. Changes nothing."
        ),
        params=NoParams,
        kinds=KIND,
        effect=Effect.READ,
        fn=_info,
    ),
)
