"""The app's Prometheus metrics, on a registry of its own, and the middleware that counts requests.

Routes are labelled by their template (``/products/{product_id}``), never by the raw path,
so a scan of ids cannot blow up the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"


class ShopMetrics:
    """Every metric the app exports, all registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "shop_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shop_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "shop_db_pool_size",
            "Declared size of the PostgreSQL connection pool (SHOP_DB_POOL_SIZE).",
            registry=self.registry,
        )
        self.pool_open = Gauge(
            "shop_db_pool_connections_open",
            "PostgreSQL connections the pool holds or is opening right now, busy or idle.",
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "shop_db_pool_connections_in_use",
            "PostgreSQL connections lent to requests right now.",
            registry=self.registry,
        )
        self.pool_waiting = Gauge(
            "shop_db_pool_requests_waiting",
            "Requests queued for a PostgreSQL connection right now.",
            registry=self.registry,
        )
        self.postgres_errors = Counter(
            "shop_postgres_errors_total",
            "Requests or health checks that failed because of PostgreSQL, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "shop_redis_errors_total",
            "Requests or health checks that failed because of Redis, by operation.",
            ["operation"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class RequestMetricsMiddleware:
    """Pure ASGI middleware: times each HTTP request and counts it by route and status.

    A plain ASGI class rather than ``@app.middleware("http")``: it sees the final status
    code of every response, including those written by exception handlers, and it adds no
    task per request.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ShopMetrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, then record it once the response is done or failed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # An exception that escapes the app becomes a 500 further out; count it as one.
        status = 500
        started = self.clock()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            # The router writes the matched route into the same scope dict on its way in.
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe_request(scope["method"], route, status, self.clock() - started)
