"""A Container's observation from what the engine showed and what the runtime measured.

Stage: *observe*. Pure: the snapshot of its containers, their CPU and memory readings, the
probes and the kept state in; the signals (names and meanings in ``driftmend.signals``) and
the facts out, and the rows ``stats`` answers. The same signals as the ``process``
runtime's, so the same policies apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftmend.drivers.docker.configs import outdated
from driftmend.drivers.docker.probes import Probe, health
from driftmend.drivers.docker.replicas import (
    DockerReplica,
    Snapshot,
    docker_spec,
    exit_reason,
    expected_name,
    parse_time_ns,
    seconds,
)
from driftmend.signals import SignalValue
from driftmend.spec import Container


@dataclass(frozen=True)
class Readings:
    """What the runtime knows of one Container besides the engine's snapshot."""

    desired: int  # replicas wanted now (spec.replicas, or a scale override)
    stopped: bool  # stopped on purpose (``stop``)
    restarts: int  # restarts made by driftmend
    cpu: Mapping[int, float]  # percent of one core, per running replica
    memory: Mapping[int, int]  # bytes, per running replica (when read)
    probes: Mapping[int, Probe]  # our HTTP probes, per running replica
    limits: tuple[float | None, int | None]  # what replicas should have (cores, bytes)


def _last_exit(reps: Mapping[int, DockerReplica], down: list[int]) -> DockerReplica | None:
    ended = [reps[i] for i in down if i in reps and reps[i].ended]
    return max(ended, key=lambda r: parse_time_ns(r.finished_at) or 0, default=None)


def signals_of(container: Container, snap: Snapshot, r: Readings) -> dict[str, SignalValue]:
    """The signals: ``exit_code``/``oom_killed`` of the latest exit of a desired replica that
    is down (absent while all run; Docker's codes: 137 is SIGKILL); a missing container is a
    replica that is down; the ``*_used_ratio`` signals use the container's own limit, else
    the wanted one, and exist only when there is a limit."""
    reps = snap.replicas
    alive = {i: rep for i, rep in sorted(reps.items()) if rep.running}
    down = [i for i in range(r.desired) if i not in alive]
    running = not down and not r.stopped
    last = _last_exit(reps, down)
    healthy, failures = health(
        container.spec.health,
        r.probes,
        alive,
        running,
        docker_spec(container).healthcheck is not None,
    )
    signals: dict[str, SignalValue] = {
        "container.running": running,
        "container.replicas_running": len(alive),
        "container.replicas_desired": r.desired,
        "container.restarts": r.restarts + sum(rep.restart_count for rep in reps.values()),
        "container.cpu_percent": round(sum(r.cpu.values()), 2),
        "container.memory_bytes": sum(r.memory.values()),
        "container.exit_code": last.exit_code if last is not None else None,
        "container.oom_killed": last.oom_killed if last is not None else False,
        "container.healthy": healthy,
        "container.health_failures": failures,
    }
    want_cpu, want_memory = r.limits
    cpu_limits = {i: rep.cpu_limit or want_cpu for i, rep in alive.items()}
    if any(v is not None for v in cpu_limits.values()) or want_cpu:
        ratios = [r.cpu.get(i, 0.0) / 100.0 / lim for i, lim in cpu_limits.items() if lim]
        signals["container.cpu_used_ratio"] = round(max(ratios, default=0.0), 4)
    mem_limits = {i: rep.memory_limit or want_memory for i, rep in alive.items()}
    if any(v is not None for v in mem_limits.values()) or want_memory:
        ratios = [r.memory.get(i, 0) / lim for i, lim in mem_limits.items() if lim]
        signals["container.memory_used_ratio"] = round(max(ratios, default=0.0), 4)
    return signals


def stopped_by_us(r: Readings, rep: DockerReplica) -> bool:
    """Driftmend stopped it on purpose: ``stop``, or a scale below its index."""
    return r.stopped or rep.index >= r.desired


def facts_of(container: Container, snap: Snapshot, r: Readings) -> dict[str, str]:
    """The facts: containers, pids and ports running, the Compose project, missing replicas,
    the latest exit and its reason, replicas created from an older spec, a stop."""
    reps = snap.replicas
    port = container.spec.port
    alive = {i: rep for i, rep in sorted(reps.items()) if rep.running}
    facts: dict[str, str] = {
        "containers": ",".join(rep.name for rep in alive.values()),
        "pids": ",".join(str(rep.pid) for rep in alive.values() if rep.pid),
        "ports": ",".join(str(port + i) for i in alive if port is not None),
    }
    if snap.project is not None:
        facts["compose_project"] = snap.project
    missing = [i for i in range(r.desired) if i not in reps]
    if missing:
        facts["missing"] = ", ".join(
            f"replica {i} ({expected_name(container, i, snap.project)})" for i in missing
        )
    exited = [rep for rep in reps.values() if rep.ended and not rep.running]
    if exited:
        latest = max(exited, key=lambda rep: parse_time_ns(rep.finished_at) or 0)
        at = seconds(latest.finished_at)
        if at is not None:
            facts["last_exit_at"] = datetime.fromtimestamp(at, UTC).isoformat()
        facts["last_exit_reason"] = exit_reason(latest, stopped_by_us(r, latest))
    stale = [rep.name for rep in reps.values() if outdated(container, rep)]
    if stale:
        facts["config_outdated"] = ",".join(stale) + " (the next restart recreates them)"
    if r.stopped:
        facts["stopped"] = "true"
    return facts


def stats_rows(
    container: Container,
    snap: Snapshot,
    r: Readings,
    restarts: Mapping[int, int],
    now: float,
) -> list[dict[str, Any]]:
    """``stats``: per replica (desired or present), its container, status, image, limits
    (its own, else the wanted ones), restarts (driftmend's, per replica, and Docker's); while
    it runs its pid, port, CPU, memory, uptime and probe failures; else its last exit."""
    want_cpu, want_memory = r.limits
    rows: list[dict[str, Any]] = []
    for i in sorted(set(range(r.desired)) | set(snap.replicas)):
        rep = snap.replicas.get(i)
        row: dict[str, Any] = {
            "replica": i,
            "running": bool(rep and rep.running),
            "restarts": restarts.get(i, 0),
        }
        if rep is None:
            rows.append(row | {"container": None, "missing": True})
            continue
        row |= {
            "container": rep.name,
            "id": rep.id[:12],
            "status": rep.status,
            "image": rep.image,
            "docker_restarts": rep.restart_count,
            "health": rep.health,
            "cpu_limit": rep.cpu_limit or want_cpu,
            "memory_limit": rep.memory_limit or want_memory,
        }
        if rep.running:
            port = container.spec.port
            row |= {
                "pid": rep.pid,
                "port": port + i if port is not None else None,
                "cpu_percent": round(r.cpu.get(i, 0.0), 2),
                "memory_bytes": r.memory.get(i),
                "uptime_seconds": round(max(0.0, now - (seconds(rep.started_at) or now)), 1),
            }
            probe = r.probes.get(i)
            if probe is not None:
                row["health_failures"] = probe.failures
        elif rep.ended:
            row["last_exit"] = {
                "code": rep.exit_code,
                "oom_killed": rep.oom_killed,
                "at": seconds(rep.finished_at),
                "reason": exit_reason(rep, stopped_by_us(r, rep)),
            }
        rows.append(row)
    return rows
