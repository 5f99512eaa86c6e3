"""The dashboard's seams: the store, the controller, the gate and the job board, via ``Depends``.

Stage: *outputs* in docs/ARCHITECTURE.md. ``create_app`` puts the real objects on
``app.state``; every route asks for them through the functions below, so a test replaces any
of them with ``app.dependency_overrides``. The controller is seen through ``Operations``, the narrow
Protocol of what the dashboard calls on it, so a test can pass a small fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request
from prometheus_client import CollectorRegistry

from driftmend.dashboard.jobs import JobBoard
from driftmend.dashboard.security import Access
from driftmend.model import LogLine, ReconcileResult
from driftmend.store import Store

__all__ = [
    "AccessDep",
    "JobsDep",
    "LogSearch",
    "Operations",
    "OperationsDep",
    "OptionalOperationsDep",
    "StoreDep",
    "get_access",
    "get_controller",
    "get_jobs",
    "get_registry",
    "get_store",
    "require_action",
    "require_read",
]


class LogSearch(Protocol):
    """The reading side of the controller's ``LogAccumulator``."""

    def search(
        self,
        text: str | None = None,
        key: str | None = None,
        min_level: str | None = None,
        since: float | None = None,
        limit: int = 200,
    ) -> list[tuple[str, LogLine]]: ...

    def recent(self, key: str, limit: int = 100, min_level: str | None = None) -> list[LogLine]: ...

    def keys(self) -> list[str]: ...


class Operations(Protocol):
    """What the dashboard needs of the ``Controller``: its resources, logs and operator actions."""

    @property
    def resources(self) -> Mapping[str, Any]: ...

    @property
    def logs(self) -> LogSearch: ...

    @property
    def llm_ready(self) -> bool:
        """Some LLM planner is configured (the Ask-the-LLM button is enabled)."""
        ...

    async def analyze(self, key: str, actor: str) -> dict[str, Any]:
        """Ask the resource's policy's LLM planner now and record the exchange.

        Returns ``{"interaction": id or None, "decision": str, "reason": str, "plan": {...}
        or None}``; raises ``PermanentError`` when no LLM planner serves that resource.
        """
        ...

    async def trigger_fix(
        self, key: str, actor: str, detail: Mapping[str, Any] | None = None
    ) -> ReconcileResult: ...

    def set_paused(self, key: str, paused: bool, actor: str) -> None: ...

    async def approve_plan(self, plan_id: int, actor: str) -> ReconcileResult: ...

    def reject_plan(self, plan_id: int, actor: str) -> None: ...


def get_store(request: Request) -> Store:
    """The store this app serves (set on ``app.state`` by ``create_app``)."""
    store: Store = request.app.state.store
    return store


def get_registry(request: Request) -> CollectorRegistry:
    """The Prometheus registry this app exports."""
    registry: CollectorRegistry = request.app.state.registry
    return registry


def get_controller(request: Request) -> Operations | None:
    """The running controller, or None when the app serves a store alone."""
    controller: Operations | None = request.app.state.controller
    return controller


def get_access(request: Request) -> Access:
    """Who may read and who may act (from the settings given to ``create_app``)."""
    access: Access = request.app.state.access
    return access


def get_jobs(request: Request) -> JobBoard:
    """The board of background actions."""
    jobs: JobBoard = request.app.state.jobs
    return jobs


StoreDep = Annotated[Store, Depends(get_store)]
AccessDep = Annotated[Access, Depends(get_access)]
JobsDep = Annotated[JobBoard, Depends(get_jobs)]
OptionalOperationsDep = Annotated[Operations | None, Depends(get_controller)]


def require_controller(controller: OptionalOperationsDep) -> Operations:
    """The controller, or 503: actions need a controller that acts, not just its store (nor
    an operator replica standing by while another one leads)."""
    if controller is None:
        raise HTTPException(503, "no controller is attached to this server: actions are off")
    standby = getattr(controller, "standby", None)
    if standby:
        raise HTTPException(503, standby)
    return controller


OperationsDep = Annotated[Operations, Depends(require_controller)]


def require_read(request: Request, access: AccessDep) -> None:
    """Gate of every read route (see ``driftmend.dashboard.security``)."""
    access.check_read(request)


def require_action(request: Request, access: AccessDep) -> None:
    """Gate of every action route (see ``driftmend.dashboard.security``)."""
    access.check_action(request)
