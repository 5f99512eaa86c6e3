"""The controller's HTTP server: ``/metrics``, the JSON API, the live stream and the dashboard.

Stage: *outputs* in docs/ARCHITECTURE.md. ``create_app`` wires the pieces: the store, the
registry and the controller go on ``app.state`` and reach the routes through ``Depends``
(``dashboard.dependencies``), so tests replace them with dependency overrides. The gate
(``driftmend.dashboard.security``) decides who reads and who acts; ``driftmend.dashboard.api``
holds the JSON routes, ``driftmend.dashboard.pages`` the HTML (``driftmend.dashboard.fragments``
the pieces the script fetches), ``driftmend.dashboard.stream`` the server-sent events.

Before any of that, ``driftmend.dashboard.intake`` checks an action's token on its headers
and bounds every request's body, so no body is read for a request that will be refused.

Every response but ``/metrics`` carries a strict Content-Security-Policy: scripts and styles
come from ``/static`` only, so even a value that escaped escaping could not run. Everything
but ``/healthz`` and ``/static`` passes the read gate, ``/metrics`` and the OpenAPI schema
included (see ``driftmend.dashboard.security``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftmend import __version__
from driftmend.dashboard.api import action_router, read_router
from driftmend.dashboard.dependencies import (
    Operations,
    get_access,
    get_controller,
    get_jobs,
    get_registry,
    get_store,
    require_read,
)
from driftmend.dashboard.fragments import fragment_router
from driftmend.dashboard.intake import Intake
from driftmend.dashboard.jobs import JobBoard
from driftmend.dashboard.pages import error_page, login_router, page_router, refusal_page
from driftmend.dashboard.security import Access, Refusal
from driftmend.metrics import render
from driftmend.settings import Settings
from driftmend.store import Store

__all__ = [
    "close_streams",
    "create_app",
    "get_access",
    "get_controller",
    "get_jobs",
    "get_registry",
    "get_store",
]

STATIC = Path(__file__).parent / "static"

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Adds ``_SECURITY_HEADERS`` to every response but ``/metrics``.

    A plain ASGI middleware rather than ``@app.middleware("http")``: that one pipes each
    response through a memory stream, which a long server-sent event stream does not need.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    store: Store,
    registry: CollectorRegistry,
    controller: Operations | None = None,
    settings: Settings | None = None,
    *,
    stream_interval: float = 0.5,
) -> FastAPI:
    """The FastAPI app of the controller's HTTP server.

    ``controller`` enables actions, logs and the LLM; without it the app serves the store
    read-only. ``settings`` gives the token and the listening host (reading is open only on
    loopback); without it, the defaults: 127.0.0.1 and no token, so actions are refused.
    """
    settings = settings or Settings()
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    app = FastAPI(
        title="driftmend",
        version=__version__,
        description=(
            "What driftmend observed and fixed, and the operator's actions. Resource ids in "
            "URLs are keys with '/' replaced by '.', e.g. Container.shop. Actions need "
            "'Authorization: Bearer <DRIFTMEND_DASHBOARD_TOKEN>'."
        ),
        # Swagger UI and ReDoc load from a CDN; the dashboard must work offline. /docs is
        # our own page over /openapi.json instead. FastAPI's own /openapi.json would bypass
        # the read gate, so the schema is served by a gated route below.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.store = store
    app.state.registry = registry
    app.state.controller = controller
    app.state.settings = settings
    app.state.access = Access.of(settings.http_host, token)
    app.state.jobs = JobBoard()
    app.state.closing = asyncio.Event()
    app.state.stream_interval = stream_interval

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_read)])
    def metrics(registry: Annotated[CollectorRegistry, Depends(get_registry)]) -> Response:
        # Open on loopback (to requests addressed to localhost); beyond it, the token, which
        # Prometheus sends with ``authorization: {credentials_file: ...}`` in its scrape config.
        body, content_type = render(registry)
        return Response(body, media_type=content_type)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_read)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        # Still 200 when degraded: the controller is alive and healing; restarting it would
        # not give the store its disk back. The word is for people and alerts.
        if not store.writable:
            return {"status": "degraded", "store": "cannot be written; records wait in memory"}
        return {"status": "ok"}

    app.include_router(read_router)
    app.include_router(action_router)
    app.include_router(login_router)
    app.include_router(page_router)
    app.include_router(fragment_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # Added first, so it runs inside ``SecurityHeaders``: its refusals carry the headers too.
    app.add_middleware(Intake, max_body=settings.dashboard_max_body)
    app.add_middleware(SecurityHeaders)

    def wants_html(request: Request) -> bool:
        path = request.url.path
        return not (path.startswith("/api/") or path in ("/metrics", "/healthz", "/openapi.json"))

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.challenge else None
        if wants_html(request):
            response: Response = refusal_page(request, exc)
            if headers:
                response.headers.update(headers)
            return response
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request) and request.method == "GET":
            return error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail: Any = jsonable_encoder(exc.errors())
        if wants_html(request) and request.method == "GET":
            return error_page(
                request,
                422,
                "invalid request: "
                + "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in detail
                ),
            )
        return JSONResponse({"detail": detail}, status_code=422)

    return app


def close_streams(app: FastAPI) -> None:
    """End every live stream within one poll, so the server can shut down at once.

    uvicorn waits for open responses before it exits and never tells the app it is
    stopping (the controller runs it with ``lifespan="off"``), so whoever stops the server
    calls this first. Streams also end by themselves after ten minutes (the browser
    reconnects), so a forgotten call delays an exit, never blocks it for good.
    """
    closing: asyncio.Event = app.state.closing
    closing.set()
