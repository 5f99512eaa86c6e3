"""Wiring: build the drivers, store, metrics and loop from settings, and run them.

Stage: the composition root. This is the one module that picks the real implementations of
every seam; tests build a ``Controller`` with their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from driftmend.controller import Controller
from driftmend.drivers.postgres import PsycopgDriver
from driftmend.drivers.redis import RedisPyDriver
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import DriftmendError
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.ownership import claim, stop_owner
from driftmend.planners.factory import configured_planners
from driftmend.settings import Settings
from driftmend.sources.files import FileSource
from driftmend.spec import Container, LoadResult
from driftmend.state_dir import prepare_state_dir
from driftmend.store import open_store
from driftmend.tools.catalogue import default_catalogue

log = logging.getLogger("driftmend")


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the controller owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_controller(settings: Settings, registry: CollectorRegistry | None = None) -> Controller:
    """A controller with the real drivers, store and metrics of ``settings``.

    Its tools travel through MCP (``McpInvoker``): an in-memory session to its own server,
    and sessions to the external MCP servers of ``settings.mcp_servers``.
    """
    from driftmend.mcp.client import McpInvoker, external_servers

    prepare_state_dir(settings.state_dir)
    planners, unconfigured = configured_planners(settings)
    controller = Controller(
        settings=settings,
        runtime=RuntimeRouter.for_state_dir(settings.state_dir, Path.cwd(), settings),
        postgres=PsycopgDriver(),
        redis=RedisPyDriver(),
        logs=LogAccumulator(),
        store=open_store(settings),
        metrics=Metrics(registry or CollectorRegistry()),
        catalogue=default_catalogue(),
        planners=planners,
        unconfigured_planners=unconfigured,
    )
    # The invoker needs the controller's own ToolContext (its live resources), so it is
    # set after construction; DirectInvoker stays the default for tests that build their own.
    controller.invoker = McpInvoker(
        controller.catalogue,
        controller.tool_context,
        externals=external_servers(settings.mcp_servers),
    )
    return controller


def freeze_heap() -> None:
    """Move what start-up made (specs, policies, drivers, metrics) into the permanent
    generation: a full garbage collection then walks only what came after. At 1,000
    resources a full collection paused the loop and the HTTP server for 100-150 ms several
    times a minute (issue 15). Only the long-running commands call it."""
    gc.collect()
    gc.freeze()


async def run_controller(
    settings: Settings, paths: Sequence[str], *, once: bool = False, watch: bool = True
) -> int:
    """``driftmend run``: load specs, reconcile until SIGINT/SIGTERM (or once), serve HTTP.

    The state directory's lock is taken first (``ownership.claim``): a second controller
    refuses before it has opened the store or started anything. It is held until return.
    """
    owned = claim(settings.state_dir)
    try:
        return await _run_owned(settings, paths, once=once, watch=watch)
    finally:
        owned.release()


async def _run_owned(settings: Settings, paths: Sequence[str], *, once: bool, watch: bool) -> int:
    from driftmend.dashboard.app import close_streams, create_app

    catalogue = default_catalogue()
    source = FileSource(paths, catalogue)
    result = source.load()
    for issue in result.issues:
        log.warning("%s", issue)
    if not result.documents:
        log.error("no valid documents under %s: nothing to reconcile", ", ".join(paths))
        return 1
    registry = CollectorRegistry()
    controller = build_controller(settings, registry)
    controller.apply(result)
    if once:
        try:
            for res in await controller.reconcile_all():
                print(f"{res.key}: {res.outcome.value}{': ' + res.message if res.message else ''}")
        finally:
            await controller.stop()
            controller.store.close()
        return 0

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(controller.store, registry, controller.operations, settings)
    server = QuietServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
        )
    )
    await controller.start()
    freeze_heap()
    tasks = [asyncio.create_task(server.serve(), name="http")]
    if watch:
        tasks.append(asyncio.create_task(source.watch(controller.apply, stop), name="watch"))
    log.info(
        "driftmend %s: %d resources, %d policies; dashboard and /metrics on http://%s:%d%s",
        "running",
        len(controller.resources),
        len(controller.policies),
        settings.http_host,
        settings.http_port,
        " (dry-run)" if settings.dry_run else "",
    )
    await stop.wait()
    log.info("stopping: the supervised processes keep running; `driftmend down` stops them")
    # Live streams first: uvicorn waits for open responses before it exits.
    close_streams(app)
    server.should_exit = True
    http_task, *other_tasks = tasks
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(http_task, timeout=5)
    await controller.stop()
    for task in other_tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    controller.store.close()
    return 0


async def down(
    settings: Settings, paths: Sequence[str], *, controller_timeout: float = 30.0
) -> int:
    """``driftmend down``: stop every Container of the specs and forget its runtime state.

    A controller running on the state directory is stopped first (SIGTERM, then up to
    ``controller_timeout`` seconds for it to let go of its lock), or nothing is done: it
    would start again what ``down`` stops. The lock is held until every Container is down.
    Processes are stopped; Docker containers that driftmend created are removed; containers
    made elsewhere (``containerName``, ``compose``) are left to their owner.
    """
    source = FileSource(paths, default_catalogue())
    result = source.load()
    if not settings.state_dir.exists():
        return await _down_owned(settings, result)  # nothing ever ran here: nobody to stop
    owned = await asyncio.to_thread(stop_owner, settings.state_dir, timeout=controller_timeout)
    try:
        return await _down_owned(settings, result)
    finally:
        owned.release()


async def _down_owned(settings: Settings, result: LoadResult) -> int:
    runtime = RuntimeRouter.for_state_dir(settings.state_dir, Path.cwd(), settings)
    failed = 0
    try:
        for res in result.resources:
            if not isinstance(res, Container):
                continue
            try:
                done = await runtime.down(res)
            except DriftmendError as exc:
                # One unreachable runtime (no Docker engine) must not keep the rest running.
                print(f"could not stop {res.key}: {exc}")
                failed += 1
                continue
            if res.spec.docker is not None and res.spec.docker.image is None:
                print(f"left {res.key} to its owner (not created by driftmend)")
            else:
                print(f"stopped {res.key}{_strays_said(done)}")
    finally:
        await runtime.close()
    return 1 if failed else 0


def _strays_said(done: dict[str, Any]) -> str:
    """`` (and 2 processes no pid file named: 812, 813)`` when ``down`` found strays."""
    strays = done.get("strays") or []
    if not strays:
        return ""
    pids = ", ".join(str(s["pid"]) for s in strays)
    return f" (and {len(strays)} process(es) no pid file named: {pids})"
