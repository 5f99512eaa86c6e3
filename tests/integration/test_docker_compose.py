"""compose.yaml, its specs and policies, and Compose services on the Docker runtime.

``compose.yaml`` passes ``docker compose config`` (or ``docker-compose config``) where either
is installed (scripts/docker-engine.sh installs Debian's docker-compose), and a structural
check everywhere; its policies are the local demo's ladders. A real Compose project
(``docker-compose up`` of local/hostbase, host networking) is then watched by its Compose
labels, scaled by cloning the service's own container config (down to 0 and up again), and
healed after a kill. Two projects running one service (containers made with Compose's labels
by the harness) are never mixed: without a project the match is refused, with one the other
project's containers are never touched.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import PermanentError
from driftmend.spec import Container, HealingPolicy, load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check
from tests.integration.docker_harness import (
    HOST_MOUNTS,
    IMAGE,
    TEST_LABEL,
    WEB,
    Engine,
    compose_container,
    router,
)
from tests.integration.harness import REPO, eventually
from tests.integration.test_process_runtime import free_ports

pytestmark = pytest.mark.integration

COMPOSE = REPO / "compose.yaml"
EXAMPLES = REPO / "manifests" / "examples"
SLEEPER = ["python3", "-c", "import time; time.sleep(3600)"]


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
    # pg_scale_connections writes ALTER SYSTEM: a `-c max_connections` on the command line
    # would outrank it, so the default goes to postgresql.conf through initdb.
    assert not any("max_connections" in str(a) for a in services["postgres"]["command"])
    assert "max_connections=30" in services["postgres"]["environment"]["POSTGRES_INITDB_ARGS"]


def test_compose_install_copies_only_what_the_package_build_reads(tmp_path: Path) -> None:
    """The installer's copy step, run here against a fake checkout with a .venv and a .git."""
    script = yaml.safe_load(COMPOSE.read_text())["services"]["install"]["command"][-1]
    copy = script.split(" && python -m venv")[0]
    src = tmp_path / "src"
    for path in ("pyproject.toml", "README.md", "driftmend/a.py", "driftmend/dashboard/b.html"):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text("x")
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".driftmend/store.db",
        "driftmend/__pycache__/a.pyc",
    ):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text("x")
    dest = tmp_path / "copy"
    command = copy.replace("/tmp/src", str(dest)).replace("/src", str(src))
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["README.md", "driftmend/a.py", "driftmend/dashboard/b.html", "pyproject.toml"]


def test_compose_specs_name_the_compose_services() -> None:
    result = load_paths([EXAMPLES / "compose"], tool_check(default_catalogue()))
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.warnings == []
    services = set(yaml.safe_load(COMPOSE.read_text())["services"])
    containers = [r for r in result.resources if isinstance(r, Container)]
    assert containers and all(c.spec.runtime == "docker" for c in containers)
    for c in containers:
        assert c.spec.docker is not None and c.spec.docker.compose is not None
        assert c.spec.docker.compose.service in services, c.key
        # Pinned: another project running a service of the same name is never matched.
        assert c.spec.docker.compose.project == "driftmend", c.key


# Rungs that exist on Docker only, by policy: what Docker tells apart and processes cannot.
DOCKER_ONLY_RUNGS = {"app-crash": ["raise-memory-after-oom-kill"]}


def test_compose_policies_are_the_local_ladders() -> None:
    def ladders(directory: Path) -> dict[str, HealingPolicy]:
        result = load_paths([directory], tool_check(default_catalogue()))
        assert result.errors == [], [str(e) for e in result.errors]
        return {p.name: p for p in result.policies}

    local, compose = ladders(EXAMPLES / "local"), ladders(EXAMPLES / "compose")
    assert sorted(compose) == sorted(local)
    for name, policy in local.items():
        mine = compose[name]
        assert mine.metadata.namespace == "compose", name
        extra = DOCKER_ONLY_RUNGS.get(name, [])
        same = mine.spec.model_copy(
            update={"rules": [r for r in mine.spec.rules if r.name not in extra]}
        )
        assert same == policy.spec, name
        assert [r.name for r in mine.spec.rules if r.name in extra] == extra, name
    # The OOM rung raises memory within the shop's cap, before the plain restart.
    shop = next(
        r
        for r in load_paths([EXAMPLES / "compose"], tool_check(default_catalogue())).resources
        if r.name == "shop"
    )
    assert isinstance(shop, Container) and shop.spec.limits.memory_cap is not None
    oom = compose["app-crash"].spec.rules[0]
    assert [s.tool for s in oom.do] == ["container_set_limits"]
    assert oom.do[0].params["memory"] == "1Gi" and shop.spec.limits.memory_cap == 1 << 30


# --- a real Compose project --------------------------------------------------------------


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


def service(project: str | None, port: int | None, **spec: Any) -> Container:
    """A Container naming the Compose service ``web`` (of ``project``, or of any: None)."""
    compose = {"service": "web"} | ({"project": project} if project else {})
    ports = {"port": port, "portEnv": "PORT"} if port is not None else {}
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web"},
            "spec": {
                "runtime": "docker",
                "docker": {"compose": compose},
                "maxReplicas": 3,
                **ports,
                **spec,
            },
        }
    )


def service_containers(engine: Engine, project: str) -> dict[str, str]:
    """Name -> status of every container of ``project``'s service ``web`` (one-offs too)."""
    found = engine.api.containers(
        all=True,
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=web"]
        },
    )
    return {c["Names"][0].lstrip("/"): c["State"] for c in found}


async def answers(port: int) -> bool:
    async with httpx2.AsyncClient(trust_env=False, timeout=1) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
        except httpx2.HTTPError:
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

    async def killed() -> Any:
        obs = await rt.observe(web)
        return obs if obs.signals["container.running"] is False else None

    obs = await eventually(killed, what="the kill seen")
    assert obs.signals["container.exit_code"] == 137
    out = await rt.restart(web)
    assert out["how"] == ["started"] and out["containers"] == [first]
    await eventually(lambda: answers(port), what="the service answers again")

    # Scaled to 0, the service keeps its first container (stopped): the only template a
    # later scale-up can clone from.
    out = await rt.scale(web, 0)
    assert out["removed"] == [] and [s["container"] for s in out["stopped"]] == [first]
    assert service_containers(engine, name) == {first: "exited"}
    obs = await rt.observe(web)
    assert obs.signals["container.replicas_desired"] == 0
    assert obs.signals["container.running"] is True  # none wanted, none running: in sync
    out = await rt.scale(web, 2)
    assert out["started"] == [0, 1]
    await eventually(lambda: answers(port + 1), what="a replica cloned after scaling to 0")
    assert await answers(port)


async def test_two_projects_of_one_service_are_never_mixed(
    engine: Engine, rt: RuntimeRouter
) -> None:
    mine, theirs = f"dmtesta{uuid.uuid4().hex[:6]}", f"dmtestb{uuid.uuid4().hex[:6]}"
    for number in (1, 2):
        compose_container(engine.api, mine, "web", number, command=SLEEPER)
    compose_container(engine.api, theirs, "web", 1, command=SLEEPER)
    compose_container(engine.api, mine, "web", 1, command=SLEEPER, oneoff=True)  # compose run
    before = {
        n: engine.api.inspect_container(n)["State"]["StartedAt"] for n in (f"{theirs}-web-1",)
    }

    # Without a project, the match is ambiguous: refused, naming both, for every call.
    anyone = service(None, None)
    for call in (rt.observe(anyone), rt.restart(anyone), rt.scale(anyone, 1), rt.stop(anyone)):
        with pytest.raises(PermanentError, match=rf"runs in 2 projects \({mine}, {theirs}\)"):
            await call

    web = service(mine, None)
    obs = await rt.observe(web)
    assert obs.facts["compose_project"] == mine
    assert obs.facts["containers"] == f"{mine}-web-1,{mine}-web-2"  # not the one-off
    assert obs.signals["container.replicas_running"] == 2

    out = await rt.scale(web, 1)
    assert [r["container"] for r in out["removed"]] == [f"{mine}-web-2"]
    out = await rt.scale(web, 0)
    assert out["removed"] == [] and [s["container"] for s in out["stopped"]] == [f"{mine}-web-1"]
    out = await rt.scale(web, 2)
    assert out["started"] == [0, 1]
    await rt.restart(web)
    assert service_containers(engine, mine) == {
        f"{mine}-web-1": "running",
        f"{mine}-web-2": "running",
        f"{mine}-web-run-1": "running",
    }
    # The other project's container was never stopped, restarted or removed.
    assert service_containers(engine, theirs) == {f"{theirs}-web-1": "running"}
    after = engine.api.inspect_container(f"{theirs}-web-1")["State"]["StartedAt"]
    assert after == before[f"{theirs}-web-1"]


async def test_limits_of_a_compose_service_with_nano_cpus(
    engine: Engine, rt: RuntimeRouter
) -> None:
    """`cpus:` in Compose is NanoCpus, which docker-py's update_container cannot send."""
    project = f"dmtest{uuid.uuid4().hex[:8]}"
    compose_container(engine.api, project, "web", 1, command=SLEEPER, nano_cpus=500_000_000)
    web = service(
        project, None, limits={"cpu": 0.5, "cpuCap": 1, "memory": "64Mi", "memoryCap": "128Mi"}
    )
    out = await rt.set_limits(web, cpu=1.0, memory=96 << 20)
    assert out["previous"] == {"cpu": 0.5, "memory": 64 << 20} and out["started"] == []
    host = engine.api.inspect_container(f"{project}-web-1")["HostConfig"]
    assert (host["NanoCpus"], host["CpuQuota"]) == (1_000_000_000, 0)
    assert host["Memory"] == 96 << 20
    stats = (await rt.stats(web))["replicas"][0]
    assert (stats["cpu_limit"], stats["memory_limit"]) == (1.0, 96 << 20)
