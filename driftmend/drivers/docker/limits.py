"""CPU and memory limits: which ones replicas should have, and which new ones are allowed.

Stage: *act* (``set_limits``). Pure: the spec, the kept state and what the engine showed in,
a verdict out. Raising a limit needs a declared cap and stays within it; lowering stops at a
floor, so a remedy cannot starve (or OOM-kill at once) what it means to heal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from driftmend.drivers.docker.replicas import DockerReplica
from driftmend.drivers.docker.state import DockerState
from driftmend.errors import RefusedError
from driftmend.quantities import human_bytes
from driftmend.spec import Container

MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses memory limits below 6 MiB
MIN_CPU = 0.1  # cores: lower than this a replica barely runs
MEMORY_HEADROOM = 1.25  # memory is lowered no further than what a replica uses now, times this


def wanted_limits(state: DockerState, container: Container) -> tuple[float | None, int | None]:
    """(cores, bytes) replicas should have: a ``set_limits`` override, else the spec's.

    The override holds while ``spec.limits`` keeps the values it had when it was made: an
    edited spec is a newer wish than an older remedy.
    """
    spec = container.spec.limits
    if state.limits_base == [spec.cpu, spec.memory]:
        return state.cpu, state.memory
    return spec.cpu, spec.memory


Limits = tuple[float | None, int | None]


def override_limits(
    state: DockerState, container: Container, cpu: float | None, memory: int | None
) -> tuple[Limits, Limits]:
    """Keep ``set_limits``' new limits in ``state`` (a limit not given keeps its value);
    returns the limits before and after. They hold while ``spec.limits`` keeps its values."""
    before = wanted_limits(state, container)
    new = (cpu if cpu is not None else before[0], memory if memory is not None else before[1])
    state.cpu, state.memory = new
    state.limits_base = [container.spec.limits.cpu, container.spec.limits.memory]
    return before, new


def check_limits(
    container: Container,
    reps: Sequence[DockerReplica],
    cpu: float | None,
    memory: int | None,
    memory_used: int,
    cores: int | None = None,
) -> None:
    """``RefusedError`` unless the new limits are within the caps and above the floors.

    "Raising" is relative to the declared limit, else to the containers' own (a Compose
    service's ``mem_limit``); with neither, a new limit only lowers (from unlimited).
    ``memory_used`` is the most a running replica uses now; ``cores`` the host's.
    """
    limits = container.spec.limits
    key = container.key
    if cpu is not None:
        now = limits.cpu or max((r.cpu_limit or 0.0 for r in reps), default=0.0) or None
        within_cap(key, "cpu", cpu, now, limits.cpu_cap, lambda v: f"{v:g} cores")
        available = cores or os.cpu_count() or 1
        if cpu > available:
            raise RefusedError(f"{key}: cpu {cpu:g} is above the {available} cores of this host")
        if cpu < MIN_CPU:
            raise RefusedError(f"{key}: cpu {cpu:g} is below the floor of {MIN_CPU:g} cores")
    if memory is not None:
        now_m = limits.memory or max((r.memory_limit or 0 for r in reps), default=0) or None
        within_cap(key, "memory", memory, now_m, limits.memory_cap, lambda v: human_bytes(int(v)))
        floor = max(MIN_MEMORY, int(memory_used * MEMORY_HEADROOM))
        if memory < floor:
            raise RefusedError(
                f"{key}: memory {human_bytes(memory)} is below the floor of "
                f"{human_bytes(floor)} (Docker's 6Mi, or {MEMORY_HEADROOM:g} times the "
                f"{human_bytes(memory_used)} a replica uses now: it would be OOM-killed)"
            )


def within_cap(
    key: str,
    name: str,
    value: float,
    now: float | None,
    cap: float | None,
    shown: Callable[[float], str],
) -> None:
    """``RefusedError`` when ``value`` raises the limit ``now`` without a declared ``cap``
    (``spec.limits.<name>Cap``) or past it; lowering, or no limit yet, always passes here."""
    if now is None or value <= now:
        return
    if cap is None:
        raise RefusedError(
            f"{key}: {name} {shown(value)} would raise the limit ({shown(now)}) and no "
            f"spec.limits.{name}Cap is declared: declare one to allow raising it"
        )
    if value > cap:
        raise RefusedError(
            f"{key}: {name} {shown(value)} is above spec.limits.{name}Cap ({shown(cap)}): "
            "raise the cap to allow it"
        )
