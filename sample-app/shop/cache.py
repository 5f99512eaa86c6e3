"""Redis: the client, shopping sessions and carts, and the health probe.

Keys, all under ``shop:`` and all expiring so an abandoned cart does not live forever:

- ``shop:session:<id>``: a string, the session's creation time; its TTL is the session's.
- ``shop:cart:<id>``: a hash, product id -> quantity; its TTL follows the session's.
- ``shop:health``: written by each health check, so that a Redis that refuses writes
  (full under ``noeviction``) fails the check, not only the first customer.

Functions let redis-py's errors propagate: the HTTP layer turns them into 503s.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

SESSION_TTL_SECONDS = 1800
HEALTH_KEY = "shop:health"


def make_client(url: str) -> aioredis.Redis:
    """A lazily connecting client: building it never touches the network.

    Timeouts are short and there is one immediate retry: enough to replace a connection
    that went stale when Redis restarted, without turning a dead Redis into slow requests.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), retries=1),
        client_name="shop",
    )


def _session_key(session: str) -> str:
    return f"shop:session:{session}"


def _cart_key(session: str) -> str:
    return f"shop:cart:{session}"


async def ping(client: aioredis.Redis, within: float) -> None:
    """PING, then SET a small key, each within ``within`` seconds.

    The SET is the point: under ``maxmemory-policy noeviction`` a full Redis still answers
    PING but refuses every write with an OOM error, and the app cannot take a cart then.
    """
    async with asyncio.timeout(within):
        await client.ping()
    async with asyncio.timeout(within):
        await client.set(HEALTH_KEY, str(time.time()), ex=60)


async def new_session(client: aioredis.Redis) -> str:
    """Create a session and return its id (32 hex characters)."""
    session = secrets.token_hex(16)
    await client.set(_session_key(session), str(time.time()), ex=SESSION_TTL_SECONDS)
    return session


async def session_exists(client: aioredis.Redis, session: str) -> bool:
    """Whether the session exists and has not expired."""
    return bool(await client.exists(_session_key(session)))


async def add_to_cart(
    client: aioredis.Redis, session: str, product_id: int, quantity: int
) -> dict[int, int]:
    """Add ``quantity`` of a product to the session's cart; return the whole cart.

    One MULTI/EXEC, so the cart and the session get their TTL renewed together.
    """
    async with client.pipeline(transaction=True) as pipe:
        pipe.hincrby(_cart_key(session), str(product_id), quantity)
        pipe.expire(_cart_key(session), SESSION_TTL_SECONDS)
        pipe.expire(_session_key(session), SESSION_TTL_SECONDS)
        pipe.hgetall(_cart_key(session))
        results = await pipe.execute()
    return _quantities(results[-1])


async def get_cart(client: aioredis.Redis, session: str) -> dict[int, int]:
    """The session's cart: product id -> quantity (empty when nothing was added)."""
    return _quantities(await client.hgetall(_cart_key(session)))


async def clear_cart(client: aioredis.Redis, session: str) -> None:
    """Empty the session's cart."""
    await client.delete(_cart_key(session))


def _quantities(raw: Mapping[str | bytes, str | bytes]) -> dict[int, int]:
    return {int(pid): int(qty) for pid, qty in sorted(raw.items(), key=lambda kv: int(kv[0]))}
