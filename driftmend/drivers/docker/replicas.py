"""What the engine says about a Container's replicas, and which container is which replica.

Stage: *observe*. Pure: ``docker inspect`` bodies in, ``DockerReplica`` values out; Docker's
time format; the labels that make a container replica ``i`` of a resource; which Compose
project a service's containers belong to; words for how a container ended.
"""

from __future__ import annotations

import calendar
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from driftmend.errors import PermanentError
from driftmend.quantities import human_bytes
from driftmend.spec import Container, DockerSpec

LABEL_KEY = "driftmend.key"
LABEL_REPLICA = "driftmend.replica"
LABEL_CONFIG = "driftmend.config-hash"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
# `docker compose run` makes one-off containers of a service: not replicas of it.
COMPOSE_ONEOFF = "com.docker.compose.oneoff"

NEVER = "0001-01-01T00:00:00Z"  # Docker's zero time: the container never started or ended
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def parse_time_ns(raw: str | None) -> int | None:
    """Docker's RFC 3339 UTC time (``2026-11-25T04:54:06.598413247Z``) as Unix nanoseconds.

    None for Docker's zero time (never started, never ended) and for anything unparsable.
    """
    if not raw or raw.startswith("0001-"):
        return None
    m = _TIME.match(raw)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def seconds(raw: str | None) -> float | None:
    """Docker's time as Unix seconds, or None (see ``parse_time_ns``)."""
    ns = parse_time_ns(raw)
    return ns / 1e9 if ns is not None else None


@dataclass(frozen=True)
class DockerReplica:
    """One container of a Container resource, as ``docker inspect`` shows it."""

    index: int
    id: str
    name: str
    status: str  # created, running, paused, restarting, removing, exited, dead
    exit_code: int
    oom_killed: bool
    error: str
    started_at: str
    finished_at: str
    restart_count: int
    pid: int
    health: str | None  # starting, healthy, unhealthy; None without a Docker healthcheck
    failing_streak: int
    cpu_limit: float | None  # cores
    memory_limit: int | None  # bytes
    config_hash: str | None
    image: str
    env: tuple[str, ...]
    project: str | None  # the Compose project, for a Compose service's container
    attrs: dict[str, Any] = field(repr=False, compare=False)

    @property
    def running(self) -> bool:
        """Serving: a paused or restarting container is not."""
        return self.status == "running"

    @property
    def ended(self) -> bool:
        """It ran and ended, or could not start at all: it has an exit to report.

        A container whose command is not in its image never finished, but its exit code
        (127) and error say why it is down.
        """
        return parse_time_ns(self.finished_at) is not None or bool(self.error)

    @classmethod
    def from_inspect(cls, index: int, attrs: dict[str, Any]) -> DockerReplica:
        """The replica ``index`` described by one ``docker inspect`` body."""
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        host = attrs.get("HostConfig") or {}
        health = state.get("Health") or {}
        cpu: float | None = None
        if host.get("NanoCpus"):
            cpu = host["NanoCpus"] / 1e9
        elif host.get("CpuQuota", 0) > 0:
            cpu = host["CpuQuota"] / (host.get("CpuPeriod") or 100_000)
        labels = config.get("Labels") or {}
        return cls(
            index=index,
            id=str(attrs.get("Id", "")),
            name=str(attrs.get("Name", "")).lstrip("/"),
            status=str(state.get("Status", "unknown")),
            exit_code=int(state.get("ExitCode") or 0),
            oom_killed=bool(state.get("OOMKilled")),
            error=str(state.get("Error") or ""),
            started_at=str(state.get("StartedAt") or NEVER),
            finished_at=str(state.get("FinishedAt") or NEVER),
            restart_count=int(attrs.get("RestartCount") or 0),
            pid=int(state.get("Pid") or 0),
            health=health.get("Status") or None,
            failing_streak=int(health.get("FailingStreak") or 0),
            cpu_limit=cpu,
            memory_limit=int(host["Memory"]) if host.get("Memory") else None,
            config_hash=labels.get(LABEL_CONFIG),
            image=str(config.get("Image", "")),
            env=tuple(config.get("Env") or ()),
            project=labels.get(COMPOSE_PROJECT),
            attrs=attrs,
        )


@dataclass(frozen=True)
class Snapshot:
    """Every replica of one Container, as the engine shows them now."""

    replicas: dict[int, DockerReplica]  # the chosen container per replica index
    extras: tuple[DockerReplica, ...]  # duplicates of an index (older, not running)
    project: str | None = None  # the Compose project they belong to (compose only)


def docker_spec(container: Container) -> DockerSpec:
    """``spec.docker``, which validation guarantees for ``runtime: docker``."""
    if container.spec.docker is None:
        # Only reachable when a process Container is handed to this runtime by mistake.
        raise PermanentError(
            f"{container.key}: the docker runtime needs spec.docker "
            f"(runtime is {container.spec.runtime})"
        )
    return container.spec.docker


def stop_timeout(container: Container) -> int:
    """``spec.docker.stopTimeout`` in whole seconds, as the engine takes it."""
    return max(0, round(docker_spec(container).stop_timeout))


def list_labels(container: Container) -> list[str]:
    """The label filter that lists a Container's containers (image or compose)."""
    docker = docker_spec(container)
    if docker.compose is None:
        return [f"{LABEL_KEY}={container.key}"]
    labels = [f"{COMPOSE_SERVICE}={docker.compose.service}", f"{COMPOSE_ONEOFF}=False"]
    if docker.compose.project is not None:
        labels.append(f"{COMPOSE_PROJECT}={docker.compose.project}")
    return labels


def replica_index(docker: DockerSpec, attrs: dict[str, Any]) -> int | None:
    """Which replica a container is: Compose's container number - 1, or our own label."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    raw = labels.get(COMPOSE_NUMBER) if docker.compose is not None else labels.get(LABEL_REPLICA)
    try:
        index = int(str(raw)) - (1 if docker.compose is not None else 0)
    except (TypeError, ValueError):
        return None
    return index if index >= 0 else None


def one_project(container: Container, found: Iterable[DockerReplica]) -> str | None:
    """The one Compose project whose containers ``found`` are; refuses to choose among several.

    With ``compose.project`` declared the listing was filtered by it already. Without it, two
    projects running the same service (two checkouts, a test stack beside the demo) would mix
    their containers: replica 0 of one and 1 of another, a restart of the wrong one, a scale
    that removes another project's containers. So that is an error, with the fix in it.
    """
    docker = docker_spec(container)
    if docker.compose is None:
        return None
    if docker.compose.project is not None:
        return docker.compose.project
    projects = sorted({r.project or "" for r in found})
    if len(projects) > 1:
        raise PermanentError(
            f"{container.key}: Compose service {docker.compose.service} runs in "
            f"{len(projects)} projects ({', '.join(projects)}); driftmend will not choose: "
            "set spec.docker.compose.project to the one to heal"
        )
    return projects[0] if projects else None


def group(found: Iterable[DockerReplica], project: str | None = None) -> Snapshot:
    """Replicas by index; two containers claiming one index are a half-finished recreate.

    The running one wins, else the newest; the other is an extra that ``scale`` removes.
    """
    replicas: dict[int, DockerReplica] = {}
    extras: list[DockerReplica] = []
    for rep in sorted(found, key=lambda r: (r.running, r.started_at)):
        if rep.index in replicas:
            extras.append(replicas[rep.index])
        replicas[rep.index] = rep
    return Snapshot(replicas, tuple(extras), project)


def scaled_away(
    snap: Snapshot, replicas: int, compose: bool
) -> tuple[list[DockerReplica], DockerReplica | None]:
    """What a scale to ``replicas`` takes away, highest index first, and which of those it
    only stops: a Compose service scaled to 0 keeps its first container, stopped, as the
    template later replicas are cloned from. Another project's containers are never taken.
    """
    keeper = (
        snap.replicas[min(snap.replicas)] if compose and replicas == 0 and snap.replicas else None
    )
    doomed = [r for i, r in snap.replicas.items() if i >= replicas] + list(snap.extras)
    ours = [r for r in doomed if r.project == snap.project]
    return sorted(ours, key=lambda r: -r.index), keeper


def expected_name(container: Container, index: int, project: str | None = None) -> str:
    """The name replica ``index`` has (or would have) on the engine."""
    docker = docker_spec(container)
    if docker.container_name is not None:
        return docker.container_name
    if docker.compose is not None:
        name = project or docker.compose.project or "<project>"
        return f"{name}-{docker.compose.service}-{index + 1}"
    # The dot keeps namespaces and names apart (``driftmend-shop-prod-db-0`` was both
    # shop-prod/db's and shop/prod-db's). Containers named the older way are still theirs:
    # replicas are found by their labels, and keep their name until recreated.
    return f"driftmend-{container.resource_key.dirname}-{index}"


def exit_reason(rep: DockerReplica, stopped_by_us: bool) -> str:
    """Words for how a container ended, for facts, stats and the LLM prompt.

    ``stopped_by_us``: driftmend stopped it on purpose (``stop``, or scaled below it).
    """
    if rep.oom_killed:
        limit = f" (memory limit {human_bytes(rep.memory_limit)})" if rep.memory_limit else ""
        return f"killed by the out-of-memory killer{limit}"
    if rep.error:
        return f"could not start: {rep.error}"
    who = "stopped by driftmend" if stopped_by_us else "exited"
    code = rep.exit_code
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        if code == 128 + signal.SIGKILL and not stopped_by_us:
            return f"killed by {name} (code {code}), not by driftmend: `docker kill` or an operator"
        return f"{who} by {name} (code {code})"
    return f"{who} with code {code}"
