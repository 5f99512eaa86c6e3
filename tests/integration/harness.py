"""A controller wired with the real drivers, on a temporary state directory, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
import yaml
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from driftmend.controller import Controller
from driftmend.dashboard.app import close_streams
from driftmend.drivers.base import ContainerRuntime
from driftmend.drivers.postgres import PsycopgDriver
from driftmend.drivers.process import ProcessRuntime
from driftmend.drivers.redis import RedisPyDriver
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.settings import Settings
from driftmend.spec import Container, LoadResult, load_paths
from driftmend.store import Store
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check
from tests.demo_stack import DemoStack, demo_stack
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    *,
    deadline: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {deadline}s (last: {last!r})")


def write_specs(path: Path, docs: list[dict[str, Any]]) -> Path:
    """Write documents as one multi-document YAML file."""
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def load(path: Path) -> LoadResult:
    """Load and check specs; fail the test on any error."""
    result = load_paths([path], tool_check(default_catalogue()))
    assert not result.errors, [str(e) for e in result.errors]
    return result


def build(state_dir: Path, runtime: ContainerRuntime | None = None, **settings: Any) -> Controller:
    """A controller with every real driver, its own store and a fresh registry; the process
    runtime unless ``runtime`` is given."""
    extra = {k: settings.pop(k) for k in ("planners", "unconfigured_planners") if k in settings}
    s = Settings(state_dir=state_dir, resync_period=settings.pop("resync_period", 2.0), **settings)
    return Controller(
        **extra,
        settings=s,
        runtime=runtime or ProcessRuntime(state_dir, base_dir=REPO),
        postgres=PsycopgDriver(),
        redis=RedisPyDriver(),
        logs=LogAccumulator(),
        store=Store(s.store_path),
        metrics=Metrics(CollectorRegistry()),
        catalogue=default_catalogue(),
    )


@asynccontextmanager
async def running(
    state_dir: Path, result: LoadResult, **settings: Any
) -> AsyncIterator[Controller]:
    """A started controller; stopped (its processes left running) on exit."""
    controller = build(state_dir, **settings)
    controller.apply(result)
    await controller.start()
    try:
        yield controller
    finally:
        await controller.stop()
        controller.store.close()


async def down_all(state_dir: Path, result: LoadResult) -> None:
    """Stop every Container of ``result`` for good."""
    runtime = ProcessRuntime(state_dir, base_dir=REPO)
    for res in result.resources:
        if isinstance(res, Container):
            await runtime.down(res)
    await runtime.close()


@asynccontextmanager
async def healthy_demo(**settings: Any) -> AsyncIterator[tuple[DemoStack, Controller]]:
    """The demo stack (example specs on free ports) under a started controller, once every
    resource is healthy; stopped and removed on exit."""
    stack = demo_stack()
    result = load(stack.specs)
    try:
        async with running(stack.state, result, **settings) as controller:
            await eventually(
                lambda: all(
                    (controller.store.resource_records.resource(k) or {}).get("health") == "healthy"
                    for k in controller.resources
                ),
                deadline=60,
                what="the whole demo stack healthy",
            )
            yield stack, controller
    finally:
        await down_all(stack.state, result)
        stack.cleanup()


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: pytest owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    """``app`` on a free port of 127.0.0.1 (yielded), on this event loop, until the block
    ends, configured as ``driftmend run`` serves it."""
    port = free_port()
    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(), name="dashboard-http")
    try:
        await eventually(lambda: server.started, deadline=10, what="uvicorn started")
        yield port
    finally:
        # Streams end within one poll; then uvicorn has nothing left to wait for.
        close_streams(app)
        server.should_exit = True
        await asyncio.wait_for(task, 10)
