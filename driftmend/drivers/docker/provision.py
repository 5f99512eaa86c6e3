"""Bringing one replica back: create it, recreate it from a newer spec, start or restart it.

Stage: *act*. Blocking: these call the engine (``engine.py``) and run in the runtime's
thread pool, under the Container's lock. ``limits`` are the (cores, bytes) replicas should
have now (``DockerUnit.limits``).
"""

from __future__ import annotations

from driftmend.drivers.docker.configs import clone_config, create_config, outdated
from driftmend.drivers.docker.engine import Engine
from driftmend.drivers.docker.replicas import DockerReplica, docker_spec
from driftmend.errors import PermanentError
from driftmend.spec import Container

Limits = tuple[float | None, int | None]


def create_replica(
    engine: Engine,
    container: Container,
    index: int,
    template: DockerReplica | None,
    limits: Limits,
) -> DockerReplica:
    """Create and start replica ``index``: from the spec, or cloned from ``template``."""
    docker = docker_spec(container)
    key = container.key
    if docker.image is not None:
        cpu, memory = limits
        api_version = engine.api().api_version
        name, config = create_config(container, index, cpu, memory, api_version)
    elif template is not None:
        name, config = clone_config(container, template, index)
    elif docker.compose is not None:
        project = f" (project {docker.compose.project})" if docker.compose.project else ""
        raise PermanentError(
            f"{key}: no container of Compose service {docker.compose.service}{project} "
            f"exists to clone replica {index} from; run `docker compose up` first"
        )
    else:
        raise PermanentError(
            f"{key}: container {docker.container_name} does not exist and driftmend "
            "cannot create it (it only watches it); create it, or declare docker.image"
        )
    return engine.create(container, index, name, config)


def restart_replica(
    engine: Engine,
    container: Container,
    index: int,
    current: DockerReplica | None,
    template: DockerReplica | None,
    limits: Limits,
) -> tuple[str, DockerReplica]:
    """Restart (start, if down), recreate or create one replica; returns how, and it.

    ``template`` is a sibling whose config a Compose replica is cloned from.
    """
    if current is None:
        return "created", create_replica(engine, container, index, template, limits)
    if outdated(container, current):
        engine.remove(container, current)
        return "recreated", create_replica(engine, container, index, None, limits)
    cpu, memory = limits
    if (cpu is not None and cpu != current.cpu_limit) or (
        memory is not None and memory != current.memory_limit
    ):
        engine.update_limits(container, current, cpu, memory)
    if current.status in ("created", "exited"):
        how, done = "started", engine.start(container.key, current.id, current.name)
    else:  # running, paused, restarting, dead
        how, done = "restarted", engine.restart(container, current)
    if not done:
        # Removed since the snapshot: create it again rather than fail the fix.
        return "created", create_replica(engine, container, index, template, limits)
    return how, current
