"""The Redis driver and tools against real Redis servers started by the tests.

Stage: *observe* and *act*. Each test owns its server (16mb, noeviction) and fills, flushes
or restarts it; the only double is a ``ContainerRuntime`` whose ``restart`` stops and starts
that server (it sits at our Protocol, where the process runtime would be).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.exceptions import OutOfMemoryError

from driftmend.drivers.redis import RedisPyDriver
from driftmend.errors import ConfigurationError, DriverError
from driftmend.model import Observation, ToolStatus
from driftmend.spec import Container, RedisCache
from driftmend.tools.base import Catalogue
from driftmend.tools.redis import TOOLS
from tests.integration.doubles import ServerRuntime, tool_context, tool_from
from tests.services import RedisServer, free_port

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
VALUE = b"v" * (256 * 1024)
NO_SECRETS: dict[str, str] = {}


def num(obs: Observation, signal: str) -> float:
    """A numeric signal of ``obs``; fails the test when it is missing."""
    value = obs.get(signal)
    assert isinstance(value, int | float), f"{signal} is {value!r}"
    return float(value)


def cache_of(port: int, **spec: Any) -> RedisCache:
    return RedisCache.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "RedisCache",
            "metadata": {"name": "cache"},
            "spec": {"host": "127.0.0.1", "port": port, **spec},
        }
    )


def container(name: str = "redis") -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": name},
            "spec": {"process": {"command": ["redis-server"]}},
        }
    )


@pytest.fixture
async def driver() -> AsyncIterator[RedisPyDriver]:
    drv = RedisPyDriver()
    yield drv
    await drv.close()


@pytest.fixture
async def client(own_redis: RedisServer) -> AsyncIterator[aredis.Redis]:
    """The test's own client, as the application would write."""
    conn = aredis.Redis(host="127.0.0.1", port=own_redis.port, protocol=2)
    yield conn
    await conn.aclose()


async def fill_until_refused(client: aredis.Redis, prefix: str = "k") -> int:
    """Write 256 KiB values until the server refuses one with OOM; how many were stored."""
    for i in range(1000):
        try:
            await client.set(f"{prefix}{i}", VALUE)
        except OutOfMemoryError:
            return i
    raise AssertionError("the server never refused a write")


CATALOGUE = Catalogue(TOOLS)


def tool(name: str) -> Any:
    return tool_from(CATALOGUE, name)


# --- observe -----------------------------------------------------------------------------


async def test_observe_a_healthy_cache(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    for i in range(10):
        await client.set(f"k{i}", VALUE)
    obs = await driver.observe(cache_of(own_redis.port))
    assert obs.error is None
    assert obs.key == "RedisCache/cache"
    assert obs.get("redis.up") is True
    assert obs.get("redis.maxmemory_bytes") == 16 * MiB
    used = obs.get("redis.memory_used_bytes")
    assert isinstance(used, int) and used > 10 * len(VALUE)
    assert obs.get("redis.memory_used_ratio") == pytest.approx(used / (16 * MiB))
    assert obs.get("redis.evicted_keys") == 0
    assert obs.get("redis.rejected_writes") == 0
    assert obs.get("redis.evicting_policy") is False
    assert obs.facts["maxmemory_policy"] == "noeviction"
    assert obs.facts["version"].split(".")[0].isdigit()
    assert obs.facts["used_memory_human"].endswith(("Ki", "Mi"))
    assert obs.facts["maxmemory_human"] == "16Mi"
    assert obs.facts["keys"] == "10"


async def test_full_cache_is_observed_and_an_evicting_policy_heals_it(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    cache = cache_of(own_redis.port)
    stored = await fill_until_refused(client)
    assert 40 < stored < 64

    full = await driver.observe(cache)
    assert full.error is None
    assert full.get("redis.up") is True
    assert full.get("redis.rejected_writes") == 1
    assert num(full, "redis.memory_used_ratio") >= 0.9
    with pytest.raises(OutOfMemoryError):
        await client.set("one-more", VALUE)
    assert (await driver.observe(cache)).get("redis.rejected_writes") == 2

    async with tool_context(ServerRuntime(), cache, redis=driver) as ctx:
        bad = await tool("redis_set_policy").call(ctx, cache, {"policy": "lru"})
        assert bad.status is ToolStatus.REFUSED
        done = await tool("redis_set_policy").call(ctx, cache, {"policy": "allkeys-lru"})
    assert done.ok, done.error
    assert done.data == {"policy_before": "noeviction", "policy": "allkeys-lru"}

    for i in range(20):
        await client.set(f"after{i}", VALUE)  # accepted: older keys make room
    healed = await driver.observe(cache)
    assert healed.get("redis.evicting_policy") is True
    assert num(healed, "redis.evicted_keys") >= 20
    assert healed.get("redis.rejected_writes") == 2
    with pytest.raises(ValueError, match="maxmemory-policy"):
        await driver.set_policy(cache, "lru")


async def test_observe_a_stopped_then_restarted_server(
    own_redis: RedisServer, driver: RedisPyDriver
) -> None:
    cache = cache_of(own_redis.port)
    assert (await driver.observe(cache)).get("redis.up") is True
    own_redis.stop()
    down = await driver.observe(cache)
    assert down.get("redis.up") is False
    assert down.error and str(own_redis.port) in down.error
    assert set(down.signals) == {"redis.up"}
    with pytest.raises(DriverError, match="FLUSHDB failed"):
        await driver.flush(cache)
    own_redis.start()
    again = await driver.observe(cache)
    assert again.get("redis.up") is True, again.error


async def test_unreachable_port_is_down_not_raised(driver: RedisPyDriver) -> None:
    obs = await driver.observe(cache_of(free_port()))
    assert obs.get("redis.up") is False
    assert obs.error


# --- passwords ---------------------------------------------------------------------------


async def test_password_comes_from_the_environment_and_never_shows(
    own_redis: RedisServer, client: aredis.Redis
) -> None:
    secret = "correct-horse-battery"
    await client.config_set("requirepass", secret)
    cache = cache_of(own_redis.port, passwordFrom={"env": "CACHE_PASSWORD"})

    good = RedisPyDriver(secrets={"CACHE_PASSWORD": secret}.get)
    wrong = RedisPyDriver(secrets={"CACHE_PASSWORD": "not-" + secret}.get)
    missing = RedisPyDriver(secrets=NO_SECRETS.get)
    anonymous = RedisPyDriver(secrets=NO_SECRETS.get)
    try:
        obs = await good.observe(cache)
        assert obs.get("redis.up") is True, obs.error
        async with tool_context(ServerRuntime(), cache, redis=good) as ctx:
            info = await tool("redis_info").call(ctx, cache, {})
            flushed = await tool("redis_flush").call(ctx, cache, {})
        assert info.ok and flushed.ok
        for shown in (obs, info, flushed):
            assert secret not in repr(shown)

        refused = await wrong.observe(cache)
        assert refused.get("redis.up") is False
        assert refused.error and "not-" + secret not in refused.error
        with pytest.raises(DriverError) as caught:
            await wrong.memory_purge(cache)
        assert secret not in str(caught.value)

        no_auth = await anonymous.observe(cache_of(own_redis.port))
        assert no_auth.get("redis.up") is False
        assert no_auth.error and "auth" in no_auth.error.lower()

        with pytest.raises(ConfigurationError, match="CACHE_PASSWORD"):
            await missing.observe(cache)
    finally:
        for drv in (good, wrong, missing, anonymous):
            await drv.close()


# --- tools -------------------------------------------------------------------------------


async def test_set_maxmemory_tool_respects_the_cap_and_the_used_memory(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    cache = cache_of(own_redis.port, maxmemoryCap="64mb")
    uncapped = cache_of(own_redis.port)
    set_max = tool("redis_set_maxmemory")
    for i in range(16):
        await client.set(f"k{i}", VALUE)  # about 4 MiB in use
    async with tool_context(ServerRuntime(), cache, redis=driver) as ctx:
        raised = await set_max.call(ctx, cache, {"maxmemory": "32mb"})
        assert raised.ok, raised.error
        assert raised.data == {"maxmemory_before": 16 * MiB, "maxmemory": 32 * MiB}
        assert (await driver.observe(cache)).get("redis.maxmemory_bytes") == 32 * MiB

        as_int = await set_max.call(ctx, cache, {"maxmemory": 48 * MiB})
        assert as_int.ok and as_int.data["maxmemory"] == 48 * MiB

        above = await set_max.call(ctx, cache, {"maxmemory": "65mb"})
        assert above.status is ToolStatus.REFUSED
        assert "maxmemoryCap" in (above.error or "")
        assert (await set_max.call(ctx, uncapped, {"maxmemory": "65mb"})).ok

        below = await set_max.call(ctx, cache, {"maxmemory": "2mb"})
        assert below.status is ToolStatus.REFUSED
        assert "below" in (below.error or "")

        for raw in ({"maxmemory": "lots"}, {"maxmemory": 0}, {}, {"maxmemory": "8mb", "x": 1}):
            refused = await set_max.call(ctx, cache, raw)
            assert refused.status is ToolStatus.REFUSED, raw
    assert (await driver.observe(cache)).get("redis.maxmemory_bytes") == 65 * MiB


async def test_purge_flush_and_info_tools(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    cache = cache_of(own_redis.port)
    for i in range(100):
        await client.set(f"k{i}", b"x" * 1000)
    async with tool_context(ServerRuntime(), cache, redis=driver) as ctx:
        info = await tool("redis_info").call(ctx, cache, {})
        assert info.ok, info.error
        assert info.data["keys"] == "100"
        assert info.data["maxmemory_bytes"] == 16 * MiB
        assert info.data["maxmemory_policy"] == "noeviction"

        purged = await tool("redis_memory_purge").call(ctx, cache, {})
        assert purged.ok, purged.error
        assert purged.data["used_memory_before"] > 100 * 1000
        assert set(purged.data) == {
            "used_memory_before",
            "used_memory_after",
            "rss_before",
            "rss_after",
        }
        assert (await tool("redis_memory_purge").call(ctx, cache, {"now": True})).status is (
            ToolStatus.REFUSED
        )

        flushed = await tool("redis_flush").call(ctx, cache, {})
        assert flushed.ok, flushed.error
        assert flushed.data == {"keys_removed": 100, "db": 0}
    assert await client.dbsize() == 0
    assert tool("redis_flush").effect == "destructive"


async def test_flush_heals_a_full_cache(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    cache = cache_of(own_redis.port)
    stored = await fill_until_refused(client)
    flushed = await driver.flush(cache)  # FLUSHDB is allowed while writes are refused
    assert flushed["keys_removed"] == stored
    await client.set("fresh", VALUE)
    assert num(await driver.observe(cache), "redis.memory_used_ratio") < 0.5


async def test_restart_tool_goes_through_the_runtime(
    own_redis: RedisServer, driver: RedisPyDriver, client: aredis.Redis
) -> None:
    cache = cache_of(own_redis.port, runtimeRef={"name": "redis"})
    unhosted = cache_of(own_redis.port)
    runtime = ServerRuntime(own_redis)
    await client.set("k", "v")
    assert (await driver.observe(cache)).get("redis.up") is True  # the driver's client is warm
    async with tool_context(runtime, cache, container("redis"), redis=driver) as ctx:
        refused = await tool("redis_restart").call(ctx, unhosted, {})
        assert refused.status is ToolStatus.REFUSED
        assert "runtimeRef" in (refused.error or "")

        done = await tool("redis_restart").call(ctx, cache, {})
        assert done.ok, done.error
        assert done.data["restart"]["restarted"] == "Container/redis"
    assert runtime.restarts == ["Container/redis"]
    after = await driver.observe(cache)
    assert after.get("redis.up") is True
    assert after.facts["keys"] == "0"  # no persistence: the restart emptied it
