"""What a replica is created from: the engine's create body, from the spec or from a sibling.

Stage: *act*. Pure: a spec (``image``) or a Compose service's own container (``compose``) in,
a ``POST /containers/create`` body out. Nothing here talks to the engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from docker.types import HostConfig  # type: ignore[import-untyped]  # docker-py has no types

from driftmend.drivers.docker.replicas import (
    COMPOSE_NUMBER,
    COMPOSE_SERVICE,
    LABEL_CONFIG,
    LABEL_KEY,
    LABEL_REPLICA,
    DockerReplica,
    docker_spec,
    expected_name,
    stop_timeout,
)
from driftmend.drivers.secret_refs import resolve_env
from driftmend.spec import Container


def config_hash(container: Container) -> str:
    """What an ``image`` replica was created from, minus the limits (``set_limits`` moves them)."""
    docker = docker_spec(container)
    spec = container.spec
    basis = {
        "docker": docker.model_dump(mode="json", by_alias=True),
        "port": spec.port,
        "portEnv": spec.port_env,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def outdated(container: Container, rep: DockerReplica) -> bool:
    """An ``image`` replica created from an older spec (the next restart recreates it)."""
    if docker_spec(container).image is None or rep.config_hash is None:
        return False
    return rep.config_hash != config_hash(container)


def create_config(
    container: Container,
    index: int,
    cpu: float | None,
    memory: int | None,
    api_version: str,
) -> tuple[str, dict[str, Any]]:
    """The name and create body of replica ``index`` of an ``image`` Container.

    ``api_version`` is the engine's (docker-py shapes the host config to it).
    """
    docker = docker_spec(container)
    spec = container.spec
    env = resolve_env(docker.env, f"{container.key}: spec.docker.env")
    if spec.port_env and spec.port is not None:
        env[spec.port_env] = str(spec.port + index)
    host_config = HostConfig(
        api_version,
        network_mode=docker.network_mode,
        binds=list(docker.volumes) or None,
        tmpfs=dict(docker.tmpfs) or None,
        mem_limit=memory,
        memswap_limit=memory,  # no swap: a memory limit is a limit (see Engine.update_limits)
        cpu_period=100_000 if cpu is not None else None,
        cpu_quota=int(cpu * 100_000) if cpu is not None else None,
        restart_policy={"Name": "no"},  # driftmend decides restarts, and records them
        init=docker.init or None,
    )
    labels = {
        **docker.labels,
        LABEL_KEY: container.key,
        LABEL_REPLICA: str(index),
        LABEL_CONFIG: config_hash(container),
    }
    config: dict[str, Any] = {
        "Image": docker.image,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "Labels": labels,
        "HostConfig": host_config,
        "StopSignal": docker.stop_signal,
        "StopTimeout": stop_timeout(container),
    }
    if docker.command is not None:
        config["Cmd"] = list(docker.command)
    if docker.entrypoint is not None:
        config["Entrypoint"] = list(docker.entrypoint)
    if docker.user is not None:
        config["User"] = docker.user
    if docker.working_dir is not None:
        config["WorkingDir"] = docker.working_dir
    if docker.healthcheck is not None:
        hc = docker.healthcheck
        test = list(hc.test)
        if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            test = ["CMD", *test]
        config["Healthcheck"] = {
            "Test": test,
            "Interval": int(hc.interval * 1e9),
            "Timeout": int(hc.timeout * 1e9),
            "Retries": hc.retries,
            "StartPeriod": int(hc.start_period * 1e9),
        }
    return expected_name(container, index), config


def clone_config(
    container: Container, template: DockerReplica, index: int
) -> tuple[str, dict[str, Any]]:
    """A Compose service's container config for another replica (``docker compose --scale``).

    The template's config and host config, with the container number ``index + 1``, the
    replica's own port in ``portEnv`` when declared, the service's name as a network alias
    (as Compose gives its replicas), and the template's name renumbered.
    """
    attrs = template.attrs
    config = dict(attrs.get("Config") or {})
    labels = dict(config.get("Labels") or {})
    labels[COMPOSE_NUMBER] = str(index + 1)
    config["Labels"] = labels
    if config.get("Hostname") == template.id[:12]:
        config.pop("Hostname")  # the engine's default (the short id): let the new one get its own
    spec = container.spec
    if spec.port_env and spec.port is not None:
        env = [e for e in config.get("Env") or [] if not e.startswith(f"{spec.port_env}=")]
        config["Env"] = [*env, f"{spec.port_env}={spec.port + index}"]
    config["HostConfig"] = attrs.get("HostConfig") or {}
    mode = str(config["HostConfig"].get("NetworkMode") or "")
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    if mode not in ("host", "none") and networks:
        service = labels.get(COMPOSE_SERVICE, "")
        config["NetworkingConfig"] = {
            "EndpointsConfig": {net: {"Aliases": [service]} for net in networks}
        }
    name = re.sub(r"([_-])\d+$", rf"\g<1>{index + 1}", template.name)
    if name == template.name:
        name = f"{template.name}-{index + 1}"
    return name, config
