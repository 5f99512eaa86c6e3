"""The HTTP API: routes, health, metrics, error translation, and the app's lifespan.

Startup never waits for PostgreSQL or Redis: the pool connects in the background, the schema
is created by a task that retries until it succeeds, and /healthz says what is missing. A
request that fails because of either server gets a 503 and one ERROR log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field

from shop import __version__, cache, db
from shop.chaos import Chaos
from shop.metrics import RequestMetricsMiddleware, ShopMetrics
from shop.settings import Settings

log = logging.getLogger("shop")

# Each dependency check in /healthz gets this long; both run at once, so the whole check
# answers within about a second even when both servers hang.
HEALTH_TIMEOUT_SECONDS = 1.0

SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="id from POST /sessions")]


@dataclass
class ShopState:
    """What the routes work with; built by the lifespan, reached through ``Depends``."""

    settings: Settings
    pool: db.ShopPool
    redis: aioredis.Redis
    metrics: ShopMetrics
    schema_ready: asyncio.Event
    chaos: Chaos = field(default_factory=Chaos)


def get_state(request: Request) -> ShopState:
    """The running app's state (a FastAPI dependency)."""
    state: ShopState = request.app.state.shop
    return state


State = Annotated[ShopState, Depends(get_state)]


class CartItemIn(BaseModel):
    """A product to put in a cart."""

    product_id: int = Field(gt=0)
    quantity: int = Field(default=1, gt=0, le=100)


class OrderIn(BaseModel):
    """Place an order from the contents of a session's cart."""

    session: str = Field(pattern=r"^[0-9a-f]{32}$")


class CpuBurnIn(BaseModel):
    """How long, and on how many threads, to keep the CPU busy."""

    seconds: float = Field(gt=0, le=3600)
    threads: int = Field(default=1, ge=1, le=64)


class MemoryLeakIn(BaseModel):
    """How fast and for how long to grow resident memory."""

    mb_per_second: float = Field(gt=0, le=1024)
    seconds: float = Field(gt=0, le=3600)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or "no answer in time"
    return f"{type(exc).__name__}: {text}"


def create_app(settings: Settings, metrics: ShopMetrics | None = None) -> FastAPI:
    """Build the FastAPI app for ``settings``; nothing connects until its lifespan starts."""
    shop_metrics = metrics if metrics is not None else ShopMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = db.make_pool(
            settings.database_url, settings.db_pool_size, settings.db_acquire_timeout
        )
        # wait=False: connecting happens in the pool's workers, so a database that is down
        # delays nothing here; the pool keeps retrying and /healthz reports it.
        await pool.open(wait=False)
        state = ShopState(
            settings=settings,
            pool=pool,
            redis=cache.make_client(settings.redis_url),
            metrics=shop_metrics,
            schema_ready=asyncio.Event(),
        )
        shop_metrics.pool_size.set(settings.db_pool_size)
        app.state.shop = state
        schema_task = asyncio.create_task(
            db.keep_trying_schema(pool, state.schema_ready), name="shop-schema"
        )
        log.info(
            "shop %s starting: pool size %d, chaos %s",
            __version__,
            settings.db_pool_size,
            "on" if settings.chaos else "off",
        )
        try:
            yield
        finally:
            log.info("shop shutting down")
            state.chaos.stop()
            schema_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schema_task
            await state.redis.aclose()
            await pool.close(timeout=5.0)
            log.info("shop stopped")

    app = FastAPI(title="shop", version=__version__, lifespan=lifespan)
    app.add_middleware(RequestMetricsMiddleware, metrics=shop_metrics)

    @app.exception_handler(psycopg.Error)
    async def postgres_failed(request: Request, exc: Exception) -> JSONResponse:
        state = get_state(request)
        state.metrics.postgres_errors.labels(_operation(request)).inc()
        detail = _error_text(exc)
        if isinstance(exc, PoolTimeout):
            detail = f"{detail} ({state.pool.describe()})"
        log.error("%s %s failed: postgres: %s", request.method, request.url.path, detail)
        return JSONResponse({"detail": f"postgres: {detail}"}, status_code=503)

    @app.exception_handler(redis.exceptions.RedisError)
    async def redis_failed(request: Request, exc: Exception) -> JSONResponse:
        get_state(request).metrics.redis_errors.labels(_operation(request)).inc()
        detail = _error_text(exc)
        log.error("%s %s failed: redis: %s", request.method, request.url.path, detail)
        return JSONResponse({"detail": f"redis: {detail}"}, status_code=503)

    @app.get("/healthz")
    async def healthz(state: State) -> JSONResponse:
        """200 when PostgreSQL and Redis both answer (and Redis takes a write), else 503."""
        postgres, redis_ = await asyncio.gather(_check_postgres(state), _check_redis(state))
        body = {"status": "ok", "postgres": postgres, "redis": redis_}
        failed = [name for name in ("postgres", "redis") if body[name] != "ok"]
        if not failed:
            return JSONResponse(body)
        body["status"] = "error"
        log.error("healthz failed: %s", "; ".join(f"{name}: {body[name]}" for name in failed))
        return JSONResponse({**body, "failed": failed}, status_code=503)

    @app.get("/metrics")
    async def metrics_page(state: State) -> Response:
        """The app's own metrics in the Prometheus text format."""
        stats = state.pool.get_stats()
        state.metrics.pool_open.set(stats.get("pool_size", 0))
        state.metrics.pool_in_use.set(state.pool.lent)
        state.metrics.pool_waiting.set(state.pool.waiting)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/products")
    async def list_products(state: State) -> list[dict[str, Any]]:
        """The catalogue."""
        return await db.list_products(state.pool)

    @app.get("/products/{product_id}")
    async def get_product(state: State, product_id: int) -> dict[str, Any]:
        """One product; 404 when there is no such id."""
        product = await db.get_product(state.pool, product_id)
        if product is None:
            raise HTTPException(404, f"no product {product_id}")
        return product

    @app.post("/sessions", status_code=201)
    async def new_session(state: State) -> dict[str, Any]:
        """Start a shopping session; its id keys the cart."""
        session = await cache.new_session(state.redis)
        return {"session": session, "ttl_seconds": cache.SESSION_TTL_SECONDS}

    @app.post("/cart/{session}/items", status_code=201)
    async def add_to_cart(state: State, session: SessionId, item: CartItemIn) -> dict[str, Any]:
        """Add a product to the cart; 404 for an unknown session or product."""
        if not await cache.session_exists(state.redis, session):
            raise HTTPException(404, "no such session (expired?)")
        if await db.get_product(state.pool, item.product_id) is None:
            raise HTTPException(404, f"no product {item.product_id}")
        cart = await cache.add_to_cart(state.redis, session, item.product_id, item.quantity)
        return _cart_json(session, cart)

    @app.get("/cart/{session}")
    async def get_cart(state: State, session: SessionId) -> dict[str, Any]:
        """The cart's contents; 404 for an unknown session."""
        if not await cache.session_exists(state.redis, session):
            raise HTTPException(404, "no such session (expired?)")
        return _cart_json(session, await cache.get_cart(state.redis, session))

    @app.post("/orders", status_code=201)
    async def place_order(state: State, order: OrderIn) -> dict[str, Any]:
        """Turn the session's cart into an order, then empty the cart."""
        if not await cache.session_exists(state.redis, order.session):
            raise HTTPException(404, "no such session (expired?)")
        cart = await cache.get_cart(state.redis, order.session)
        if not cart:
            raise HTTPException(409, "the cart is empty")
        try:
            placed = await db.create_order(state.pool, order.session, cart)
        except db.UnknownProductsError as exc:
            raise HTTPException(409, str(exc)) from exc
        # Cleared only after the order committed: a failure in between leaves the cart
        # intact, and retrying may at worst place the order twice, never lose it.
        await cache.clear_cart(state.redis, order.session)
        return placed

    @app.get("/orders/{order_id}")
    async def get_order(state: State, order_id: int) -> dict[str, Any]:
        """One order with its lines; 404 when there is no such id."""
        placed = await db.get_order(state.pool, order_id)
        if placed is None:
            raise HTTPException(404, f"no order {order_id}")
        return placed

    if settings.chaos:
        _add_chaos_routes(app)
    return app


def _add_chaos_routes(app: FastAPI) -> None:
    # Registered only with SHOP_CHAOS=1, so with chaos off these paths do not exist (404)
    # rather than existing and refusing: nothing can switch them on at run time.

    @app.post("/chaos/cpu-burn", status_code=202)
    async def cpu_burn(state: State, burn: CpuBurnIn) -> dict[str, Any]:
        """Burn CPU on ``threads`` threads for ``seconds``."""
        state.chaos.cpu_burn(burn.seconds, burn.threads)
        return {"started": "cpu-burn", "seconds": burn.seconds, "threads": burn.threads}

    @app.post("/chaos/memory-leak", status_code=202)
    async def memory_leak(state: State, leak: MemoryLeakIn) -> dict[str, Any]:
        """Grow resident memory by ``mb_per_second`` for ``seconds``."""
        state.chaos.memory_leak(leak.mb_per_second, leak.seconds)
        return {"started": "memory-leak", **leak.model_dump()}

    @app.post("/chaos/stop")
    async def stop(state: State) -> dict[str, Any]:
        """Stop every fault and release leaked memory."""
        was_active = state.chaos.active
        leaked = state.chaos.leaked_mb
        # Joining the fault threads blocks; keep the event loop free while it happens.
        await asyncio.to_thread(state.chaos.stop)
        return {"stopped": was_active, "released_mb": round(leaked, 1)}


def _operation(request: Request) -> str:
    route = getattr(request.scope.get("route"), "path", "unmatched")
    return f"{request.method} {route}"


def _cart_json(session: str, cart: dict[int, int]) -> dict[str, Any]:
    return {
        "session": session,
        "items": [{"product_id": pid, "quantity": qty} for pid, qty in cart.items()],
    }


async def _check_postgres(state: ShopState) -> str:
    try:
        await db.ping(state.pool, HEALTH_TIMEOUT_SECONDS)
    except (psycopg.Error, TimeoutError) as exc:
        state.metrics.postgres_errors.labels("healthz").inc()
        detail = _error_text(exc)
        if isinstance(exc, PoolTimeout | TimeoutError):
            detail = f"{detail} ({state.pool.describe()})"
        return f"error: {detail}"
    if not state.schema_ready.is_set():
        # Reachable, but the tables are not there yet: the shop cannot sell anything.
        return "error: schema not created yet"
    return "ok"


async def _check_redis(state: ShopState) -> str:
    try:
        await cache.ping(state.redis, HEALTH_TIMEOUT_SECONDS)
    except (redis.exceptions.RedisError, TimeoutError) as exc:
        state.metrics.redis_errors.labels("healthz").inc()
        return f"error: {_error_text(exc)}"
    return "ok"
