"""Redis through redis-py's asyncio client: observe a ``RedisCache`` and act on it over RESP.

Stage: *observe* (signals from ``INFO``) and *act* (``MEMORY PURGE``, ``CONFIG SET``,
``FLUSHDB``) in docs/ARCHITECTURE.md.

Observation reads ``INFO`` and ``DBSIZE`` only: both still answer while a full cache under
``noeviction`` refuses every write, which is exactly when the controller must see it. One
client per cache is kept between calls; a restarted server is reached again on the next
call, because a failed command is retried once on a fresh connection.

Errors: ``observe`` never raises for an unreachable server (``redis.up`` is false and
``Observation.error`` says why); actions raise ``DriverError`` from redis-py's error. A
missing password variable raises ``ConfigurationError``. The password never appears in an
observation, a result or an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from driftmend.drivers.base import Clock
from driftmend.drivers.secret_refs import read_secret
from driftmend.errors import DriverError
from driftmend.model import Observation
from driftmend.quantities import format_bytes, human_bytes
from driftmend.signals import SignalValue
from driftmend.spec import RedisCache

CLIENT_NAME = "driftmend"
POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
"""Every ``maxmemory-policy`` Redis accepts."""


@dataclass(frozen=True)
class _Target:
    """Where to connect; ``password`` is kept out of ``repr``."""

    host: str
    port: int
    db: int
    password: str | None

    def __repr__(self) -> str:
        return f"_Target({self.host}:{self.port}/{self.db})"


class RedisPyDriver:
    """``RedisDriver`` on ``redis.asyncio``, one small client per cache.

    ``secrets`` maps an environment variable name (``spec.passwordFrom.env``) to its
    value (a ``passwordFrom.file`` is read from disk); ``clock`` stamps observations;
    ``timeout`` bounds connecting and each reply, so a hung server costs a reconcile pass
    about a second, never a stuck worker.
    """

    def __init__(
        self,
        secrets: Callable[[str], str | None] = os.environ.get,
        clock: Clock = time.time,
        timeout: float = 1.0,
    ) -> None:
        self._secrets = secrets
        self._clock = clock
        self._timeout = timeout
        self._clients: dict[str, tuple[_Target, aredis.Redis]] = {}

    # --- connections ---------------------------------------------------------------------

    def _target(self, cache: RedisCache) -> _Target:
        password: str | None = None
        ref = cache.spec.password_from
        if ref is not None:
            password = read_secret(ref, f"{cache.key}: spec.passwordFrom", self._secrets)
        return _Target(cache.spec.host, cache.spec.port, cache.spec.db, password)

    async def _client(self, cache: RedisCache) -> tuple[_Target, aredis.Redis]:
        target = self._target(cache)
        known = self._clients.get(cache.key)
        if known is not None:
            if known[0] == target:
                return known
            # The spec (or the password) changed: drop the client made for the old one.
            await known[1].aclose()
        client = aredis.Redis(
            host=target.host,
            port=target.port,
            db=target.db,
            password=target.password,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # One immediate retry on a fresh connection: enough to step over a connection
            # the server closed when it restarted, without slowing down a server that is down.
            retry=Retry(NoBackoff(), 1),
            client_name=CLIENT_NAME,
            # RESP2 works with every server version and keeps INFO's reply shape simple.
            protocol=2,
            max_connections=4,
        )
        self._clients[cache.key] = (target, client)
        return target, client

    @staticmethod
    def _scrub(target: _Target, exc: BaseException) -> str:
        """The error's text on one line, with the password cut out should a library echo it."""
        text = str(exc)
        if target.password:
            text = text.replace(target.password, "***")
        text = " ".join(text.split()) or type(exc).__name__
        return f"{type(exc).__name__}: {text}"

    def _fail(self, target: _Target, what: str, exc: RedisError) -> DriverError:
        return DriverError(f"{what} on {target.host}:{target.port}: {self._scrub(target, exc)}")

    # --- observe -------------------------------------------------------------------------

    async def observe(self, cache: RedisCache) -> Observation:
        """up, memory used and ratio, maxmemory, policy, evicted keys, rejected writes.

        Never raises for a server that is down or refusing us: the observation then has
        ``redis.up = False`` and the reason in ``error``.
        """
        target, client = await self._client(cache)
        at = self._clock()
        try:
            info = await client.info("server", "memory", "stats", "errorstats")
            keys = int(await client.dbsize())
        except RedisError as exc:
            return Observation(
                key=cache.key, at=at, signals={"redis.up": False}, error=self._scrub(target, exc)
            )
        used = int(info["used_memory"])
        maxmemory = int(info["maxmemory"])
        policy = str(info["maxmemory_policy"])
        oom = info.get("errorstat_OOM")
        rejected = int(oom.get("count", 0)) if isinstance(oom, dict) else 0
        signals: dict[str, SignalValue] = {
            "redis.up": True,
            "redis.memory_used_bytes": used,
            "redis.maxmemory_bytes": maxmemory,
            "redis.memory_used_ratio": used / maxmemory if maxmemory else 0.0,
            "redis.evicted_keys": int(info.get("evicted_keys", 0)),
            "redis.rejected_writes": rejected,
            "redis.evicting_policy": policy != "noeviction",
        }
        facts = {
            "maxmemory_policy": policy,
            "version": str(info.get("redis_version", "")),
            # Ours, not Redis' own used_memory_human: Redis writes 1.50M for 1.5 MiB, which
            # our sizes (and Kubernetes) read as 1.5 million bytes if an LLM copies it back.
            "used_memory_human": human_bytes(used),
            "maxmemory_human": format_bytes(maxmemory),
            "keys": str(keys),
        }
        return Observation(key=cache.key, at=at, signals=signals, facts=facts)

    # --- act -----------------------------------------------------------------------------

    async def memory_purge(self, cache: RedisCache) -> dict[str, Any]:
        """MEMORY PURGE: give fragmented memory back to the allocator (jemalloc builds).

        Returns used and resident memory before and after.
        """
        target, client = await self._client(cache)
        try:
            before = await client.info("memory")
            await client.memory_purge()
            after = await client.info("memory")
        except RedisError as exc:
            raise self._fail(target, "MEMORY PURGE failed", exc) from exc
        return {
            "used_memory_before": int(before["used_memory"]),
            "used_memory_after": int(after["used_memory"]),
            "rss_before": int(before["used_memory_rss"]),
            "rss_after": int(after["used_memory_rss"]),
        }

    async def set_maxmemory(self, cache: RedisCache, value: int) -> dict[str, Any]:
        """CONFIG SET maxmemory (bytes; 0 means unlimited). Returns the old and new value."""
        if value < 0:
            raise ValueError(f"maxmemory cannot be negative, got {value}")
        target, client = await self._client(cache)
        try:
            before = await client.config_get("maxmemory")
            await client.config_set("maxmemory", value)
        except RedisError as exc:
            raise self._fail(target, "CONFIG SET maxmemory failed", exc) from exc
        return {"maxmemory_before": int(str(before["maxmemory"])), "maxmemory": value}

    async def set_policy(self, cache: RedisCache, policy: str) -> dict[str, Any]:
        """CONFIG SET maxmemory-policy to one of ``POLICIES``. Returns the old and new policy."""
        if policy not in POLICIES:
            raise ValueError(
                f"unknown maxmemory-policy {policy!r}; use one of {', '.join(POLICIES)}"
            )
        target, client = await self._client(cache)
        try:
            before = await client.config_get("maxmemory-policy")
            await client.config_set("maxmemory-policy", policy)
        except RedisError as exc:
            raise self._fail(target, "CONFIG SET maxmemory-policy failed", exc) from exc
        return {"policy_before": str(before["maxmemory-policy"]), "policy": policy}

    async def flush(self, cache: RedisCache) -> dict[str, Any]:
        """FLUSHDB: every key of the cache's database is deleted. Returns how many there were."""
        target, client = await self._client(cache)
        try:
            keys = int(await client.dbsize())
            await client.flushdb()
        except RedisError as exc:
            raise self._fail(target, "FLUSHDB failed", exc) from exc
        return {"keys_removed": keys, "db": target.db}

    async def close(self) -> None:
        """Close every client and its connections."""
        clients, self._clients = self._clients, {}
        for _, client in clients.values():
            await client.aclose()


# --- fault injection (`driftmend chaos`) -------------------------------------------------
# Chaos fills the demo cache through these functions, so that only the drivers import
# redis-py. Each opens one short-lived client and raises DriverError from redis-py's error.


def _chaos_client(cache: RedisCache) -> tuple[_Target, aredis.Redis]:
    target = RedisPyDriver()._target(cache)  # the password from the environment, as the driver
    client = aredis.Redis(
        host=target.host,
        port=target.port,
        db=target.db,
        password=target.password,
        socket_timeout=3,
        socket_connect_timeout=3,
        client_name="driftmend-chaos",
        protocol=2,
    )
    return target, client


async def read_config(cache: RedisCache, pattern: str) -> dict[str, str]:
    """``CONFIG GET pattern`` as a dict of strings."""
    target, client = _chaos_client(cache)
    try:
        found = await client.config_get(pattern)
    except RedisError as exc:
        raise DriverError(f"CONFIG GET {pattern} on {target.host}:{target.port}: {exc}") from exc
    finally:
        await client.aclose()
    return {str(k): str(v) for k, v in found.items()}


async def write_config(cache: RedisCache, values: dict[str, str]) -> None:
    """``CONFIG SET name value`` for each of ``values``."""
    target, client = _chaos_client(cache)
    try:
        for name, value in values.items():
            await client.config_set(name, value)
    except RedisError as exc:
        raise DriverError(f"CONFIG SET on {target.host}:{target.port}: {exc}") from exc
    finally:
        await client.aclose()


async def fill_until_refused(cache: RedisCache, prefix: str) -> int:
    """Write keys ``<prefix><i>`` until the server refuses writes (OOM); returns how many.

    Big values first, then ever smaller ones: Redis counts a command's own size when it
    decides to refuse it, so only filling down to tiny values makes small writes fail.
    """
    target, client = _chaos_client(cache)
    size, written = 256 * 1024, 0
    try:
        while size >= 16:
            try:
                await client.set(f"{prefix}{written}", b"x" * size)
                written += 1
            except aredis.ResponseError:
                size //= 4
    except RedisError as exc:
        raise DriverError(f"filling {target.host}:{target.port}: {exc}") from exc
    finally:
        await client.aclose()
    return written


async def delete_keys(cache: RedisCache, pattern: str) -> int:
    """Delete (``UNLINK``) every key matching ``pattern``; returns how many."""
    target, client = _chaos_client(cache)
    removed = 0
    try:
        async for key in client.scan_iter(match=pattern, count=1000):
            removed += int(await client.unlink(key))
    except RedisError as exc:
        raise DriverError(f"deleting {pattern} on {target.host}:{target.port}: {exc}") from exc
    finally:
        await client.aclose()
    return removed
