"""The runtime router on a machine without Docker: process specs run, Docker specs fail alone.

No engine is needed (the Docker runtime is pointed at a socket that does not exist), so these
run everywhere: the Docker client is created lazily, and an engine that cannot be reached is
a ``DriverError`` of the Docker resource, never of the controller or of the process ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftmend.controller import Controller
from driftmend.drivers.docker import DockerRuntime
from driftmend.drivers.postgres import PsycopgDriver
from driftmend.drivers.process import ProcessRuntime
from driftmend.drivers.redis import RedisPyDriver
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import DriverError
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.settings import Settings
from driftmend.spec import Container
from driftmend.store import Store
from driftmend.tools.catalogue import default_catalogue
from tests.integration.harness import REPO, load, write_specs

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"


def nowhere(state_dir: Path) -> RuntimeRouter:
    """A router whose Docker runtime talks to a socket nobody listens on."""
    return RuntimeRouter(
        ProcessRuntime(state_dir, base_dir=REPO),
        lambda: DockerRuntime(state_dir, base_url=f"unix://{state_dir}/no-docker.sock"),
    )


async def test_process_specs_run_and_docker_specs_fail_alone(tmp_path: Path) -> None:
    docs = [
        {
            "apiVersion": API,
            "kind": "Container",
            "metadata": {"name": "proc"},
            "spec": {"process": {"command": [sys.executable, "-c", "import time; time.sleep(60)"]}},
        },
        {
            "apiVersion": API,
            "kind": "Container",
            "metadata": {"name": "boxed"},
            "spec": {"runtime": "docker", "docker": {"image": "local/hostbase"}},
        },
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    state = tmp_path / "state"
    state.mkdir()
    settings = Settings(state_dir=state)
    runtime = nowhere(state)
    controller = Controller(
        settings=settings,
        runtime=runtime,
        postgres=PsycopgDriver(),
        redis=RedisPyDriver(),
        logs=LogAccumulator(),
        store=Store(settings.store_path),
        metrics=Metrics(CollectorRegistry()),
        catalogue=default_catalogue(),
    )
    controller.apply(result)
    try:
        await controller.start()
        proc = await controller.reconcile("Container/proc")
        assert proc.outcome.value == "in-sync", proc

        boxed = await controller.reconcile("Container/boxed")
        assert boxed.outcome.value == "error"
        assert "no Docker engine answers at unix://" in boxed.message
        assert "start dockerd" in boxed.message
        assert boxed.requeue_after is not None  # a DriverError: try again later

        # Log files are paths, known without an engine.
        docker_c = next(r for r in result.resources if r.name == "boxed")
        assert isinstance(docker_c, Container)
        assert runtime.log_files(docker_c) == [
            str(state.resolve() / "docker" / "default.boxed" / "replica-0.log")
        ]
        with pytest.raises(DriverError, match="no Docker engine answers"):
            await runtime.observe(docker_c)
    finally:
        await controller.stop()
        controller.store.close()
        cleanup = ProcessRuntime(state, base_dir=REPO)
        for res in result.resources:
            if isinstance(res, Container) and res.spec.runtime == "process":
                await cleanup.down(res)
        await cleanup.close()
