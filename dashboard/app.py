"""The controller's HTTP server: ``/metrics``, a JSON API over the store, and the overview page.

Stage: *outputs* in DESIGN.md. The store and the registry reach the routes through
``Depends``, so tests replace them with FastAPI's dependency overrides. The full dashboard
(actions, live updates, LLM review) grows here in its own issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller import __version__
from controller.store import Store

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def get_store(request: Request) -> Store:
    """The store this app serves (set on ``app.state`` by ``create_app``)."""
    store: Store = request.app.state.store
    return store


def get_registry(request: Request) -> CollectorRegistry:
    """The Prometheus registry this app exports."""
    registry: CollectorRegistry = request.app.state.registry
    return registry


StoreDep = Annotated[Store, Depends(get_store)]


def create_app(
    store: Store, registry: CollectorRegistry, controller: object = None, settings: object = None
) -> FastAPI:
    """The FastAPI app of the controller's HTTP server."""
    app = FastAPI(
        title="driftmend", version=__version__, description="What driftmend observed and fixed."
    )
    app.state.store = store
    app.state.registry = registry
    app.state.controller = controller

    @app.get("/metrics", include_in_schema=False)
    def metrics(registry: Annotated[CollectorRegistry, Depends(get_registry)]) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/resources")
    def resources(store: StoreDep) -> list[dict[str, Any]]:
        """Every resource with its health, signals and last fix."""
        return store.resources()

    @app.get("/api/resources/{key:path}")
    def resource(key: str, store: StoreDep) -> dict[str, Any]:
        """One resource by key (``Kind/name``)."""
        found = store.resource(key)
        if found is None:
            raise HTTPException(404, f"no resource {key}")
        return found

    @app.get("/api/fixes")
    def fixes(store: StoreDep, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recent fixes, newest first."""
        return store.fixes(key=key, limit=min(limit, 1000))

    @app.get("/api/fixes/{fix_id}")
    def fix(fix_id: int, store: StoreDep) -> dict[str, Any]:
        """One fix with its steps and their results."""
        found = store.fix(fix_id)
        if found is None:
            raise HTTPException(404, f"no fix {fix_id}")
        return found

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, store: StoreDep) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "overview.html",
            {"resources": store.resources(), "fixes": store.fixes(limit=20)},
        )

    return app
