"""Wiring: build the drivers, store, metrics and loop from settings, and run them.

Stage: the composition root. This is the one module that picks the real implementations of
every seam; tests build a ``Controller`` with their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from controller.drivers.postgres import PsycopgDriver
from controller.drivers.process import ProcessRuntime
from controller.drivers.redis import RedisPyDriver
from controller.logs import LogAccumulator
from controller.loop import Controller
from controller.metrics import Metrics
from controller.settings import Settings
from controller.sources.files import FileSource
from controller.spec import Container
from controller.store import Store
from controller.tools.catalogue import default_catalogue

log = logging.getLogger("driftmend")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the controller owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_controller(settings: Settings, registry: CollectorRegistry | None = None) -> Controller:
    """A controller with the real drivers, store and metrics of ``settings``."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Controller(
        settings=settings,
        runtime=ProcessRuntime(settings.state_dir, base_dir=Path.cwd()),
        postgres=PsycopgDriver(),
        redis=RedisPyDriver(),
        logs=LogAccumulator(),
        store=Store(settings.store_path),
        metrics=Metrics(registry or CollectorRegistry()),
        catalogue=default_catalogue(),
    )


async def run_controller(
    settings: Settings, paths: Sequence[str], *, once: bool = False, watch: bool = True
) -> int:
    """``driftmend run``: load specs, reconcile until SIGINT/SIGTERM (or once), serve HTTP."""
    from dashboard.app import create_app

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
    app = create_app(controller.store, registry, controller, settings)
    server = _QuietServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
        )
    )
    await controller.start()
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
    server.should_exit = True
    await controller.stop()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    controller.store.close()
    return 0


async def down(settings: Settings, paths: Sequence[str]) -> int:
    """``driftmend down``: stop every Container of the specs and forget its process state."""
    source = FileSource(paths, default_catalogue())
    result = source.load()
    runtime = ProcessRuntime(settings.state_dir, base_dir=Path.cwd())
    for res in result.resources:
        if isinstance(res, Container):
            await runtime.down(res)
            print(f"stopped {res.key}")
    await runtime.close()
    return 0
