"""compose.yaml, its specs, and Compose services on the Docker runtime.

``compose.yaml`` passes ``docker compose config`` (or ``docker-compose config``) where either
is installed (scripts/docker-engine.sh installs Debian's docker-compose), and a structural
check everywhere. A real Compose project (``docker-compose up`` of local/hostbase, host
networking) is then watched by its Compose labels, scaled by cloning the service's own
container config, and healed after a kill.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.drivers.runtimes import RuntimeRouter
from controller.spec import Container
from controller.tools.catalogue import default_catalogue
from controller.validate import load_and_check
from tests.integration.docker_harness import (
    HOST_MOUNTS,
    IMAGE,
    TEST_LABEL,
    WEB,
    Engine,
    engine_session,
    router,
)
from tests.integration.harness import REPO, eventually
from tests.integration.test_process_runtime import free_ports

pytestmark = pytest.mark.integration

COMPOSE = REPO / "compose.yaml"


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever is installed."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


# --- compose.yaml ------------------------------------------------------------------------


def test_compose_file_passes_compose_config() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr


def test_compose_file_holds_the_healed_stack() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"postgres", "redis", "shop", "controller"} <= set(services)
    for name in ("postgres", "redis", "shop"):
        svc = services[name]
        assert svc["network_mode"] == "host", name
        assert svc["healthcheck"]["test"][0] == "CMD", name
        assert svc["labels"]["app"] == "shop", name
        # driftmend heals these: a Docker restart policy would hide their crashes from it
        assert "restart" not in svc, name
    controller = services["controller"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in controller["volumes"]
    assert controller["command"][-1] == "manifests/examples/compose"
    assert controller["restart"] == "unless-stopped"


def test_compose_specs_name_the_compose_services() -> None:
    result = load_and_check([REPO / "manifests" / "examples" / "compose"], default_catalogue())
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.warnings == []
    services = set(yaml.safe_load(COMPOSE.read_text())["services"])
    containers = [r for r in result.resources if isinstance(r, Container)]
    assert containers and all(c.spec.runtime == "docker" for c in containers)
    for c in containers:
        assert c.spec.docker is not None and c.spec.docker.compose is not None
        assert c.spec.docker.compose.service in services, c.key


# --- a real Compose project --------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with engine_session() as e:
        yield e


@pytest.fixture
def project(engine: Engine, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Compose project with one service ``web`` (one replica), up; down afterwards."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    port = free_ports(3)
    name = f"dmtest{uuid.uuid4().hex[:8]}"
    spec = {
        "services": {
            "web": {
                "image": IMAGE,
                "network_mode": "host",
                "init": True,
                "command": ["python3", "-u", "-c", WEB],
                "environment": {"PORT": str(port)},
                "volumes": HOST_MOUNTS,
                "labels": {TEST_LABEL: "1"},
            }
        }
    }
    file = tmp_path / "compose.yaml"
    file.write_text(yaml.safe_dump(spec))
    base = [*command, "-p", name, "-f", str(file)]
    up = subprocess.run([*base, "up", "-d"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield name, port
    finally:
        subprocess.run([*base, "down", "-t", "2"], capture_output=True, timeout=120, check=False)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[RuntimeRouter]:
    runtime = router(tmp_path / "state")
    await runtime.start()
    yield runtime
    await runtime.close()


def service(project: str, port: int, **spec: Any) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web"},
            "spec": {
                "runtime": "docker",
                "docker": {"compose": {"project": project, "service": "web"}},
                "port": port,
                "portEnv": "PORT",
                "maxReplicas": 3,
                **spec,
            },
        }
    )


async def answers(port: int) -> bool:
    async with httpx.AsyncClient(trust_env=False, timeout=1) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
        except httpx.HTTPError:
            return False


async def test_compose_service_is_watched_scaled_and_restarted(
    engine: Engine, project: tuple[str, int], rt: RuntimeRouter
) -> None:
    name, port = project
    web = service(name, port)
    assert await rt.ensure(web) == []  # Compose made it: driftmend only watches
    obs = await rt.observe(web)
    assert obs.signals["container.running"] is True
    assert obs.signals["container.replicas_running"] == 1

    # Scale out: the new replica is a clone of the service's container, on port+1.
    out = await rt.scale(web, 2)
    assert out["started"] == [1]
    await eventually(lambda: answers(port + 1), what="the cloned replica answers on port+1")
    clones = engine.api.containers(
        filters={"label": [f"com.docker.compose.project={name}", "com.docker.compose.service=web"]}
    )
    numbers = sorted(c["Labels"]["com.docker.compose.container-number"] for c in clones)
    assert numbers == ["1", "2"]
    obs = await rt.observe(web)
    assert (obs.signals["container.replicas_running"], obs.signals["container.running"]) == (
        2,
        True,
    )

    # Scale in: replica 1 is removed, replica 0 keeps serving.
    out = await rt.scale(web, 1)
    assert [r["replica"] for r in out["removed"]] == [1]
    assert not await answers(port + 1) and await answers(port)

    # A kill is an exit with Docker's code; restart brings the same container back.
    first = (await rt.stats(web))["replicas"][0]["container"]
    await asyncio.to_thread(engine.api.kill, first)
    obs = await rt.observe(web)
    assert obs.signals["container.running"] is False
    assert obs.signals["container.exit_code"] == 137
    out = await rt.restart(web)
    assert out["how"] == ["restarted"] and out["containers"] == [first]
    await eventually(lambda: answers(port), what="the service answers again")
