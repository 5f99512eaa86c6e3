"""Chaos: break the demo stack in one of the known ways, so the controller can heal it.

Stage: outside the loop: a fault injector for demos, tests and benchmarks. Each scenario
names its target by the demo stack's names and can be undone with ``--stop`` where that
means something.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from controller.drivers.process import ProcessRuntime
from controller.settings import Settings
from controller.sources.files import FileSource
from controller.spec import Container, Resource
from controller.tools.catalogue import default_catalogue


def _find(resources: Sequence[Resource], kind: str, name: str) -> Resource | None:
    return next((r for r in resources if r.kind == kind and r.name == name), None)


async def app_crash(app: Container, runtime: ProcessRuntime) -> int:
    """Kill every replica of the app with SIGKILL, as a crash would end it."""
    stats = await runtime.stats(app)
    pids = [
        int(r["pid"]) for r in stats.get("replicas", []) if r.get("pid") and r.get("alive", True)
    ]
    if not pids:
        print(f"{app.key} has no running replica to kill")
        return 1
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        print(f"killed {app.key} pid {pid} (SIGKILL)")
    return 0


async def run_chaos(
    scenario: str, settings: Settings, paths: Sequence[str], *, stop: bool = False
) -> int:
    """Run ``scenario`` against the demo stack declared under ``paths``."""
    result = FileSource(paths, default_catalogue()).load()
    runtime = ProcessRuntime(settings.state_dir, base_dir=Path.cwd())
    try:
        if scenario == "app-crash":
            if stop:
                print("app-crash is a one-shot fault: nothing to undo")
                return 0
            app = _find(result.resources, "Container", "shop")
            if not isinstance(app, Container):
                print("no Container named shop in the specs")
                return 1
            return await app_crash(app, runtime)
        print(f"unknown scenario {scenario}")
        return 1
    finally:
        await runtime.close()
