"""CPU and memory limits: which ones replicas should have, and which new ones are allowed.

Stage: *act* (``set_limits``). Pure: the spec, the kept state and what the engine showed in,
a verdict out. Raising a limit needs a declared cap and stays within it; lowering stops at a
floor, so a remedy cannot starve (or OOM-kill at once) what it means to heal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from controller.drivers.docker.replicas import DockerReplica, human_bytes
from controller.drivers.docker.state import DockerState
from controller.errors import PermanentError
from controller.spec import Container

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


def check_limits(
    container: Container,
    reps: Sequence[DockerReplica],
    cpu: float | None,
    memory: int | None,
    memory_used: int,
    cores: int | None = None,
) -> None:
    """PermanentError unless the new limits are within the caps and above the floors.

    "Raising" is relative to the declared limit, else to the containers' own (a Compose
    service's ``mem_limit``); with neither, a new limit only lowers (from unlimited).
    ``memory_used`` is the most a running replica uses now; ``cores`` the host's.
    """
    limits = container.spec.limits
    key = container.key
    if cpu is not None:
        now = limits.cpu or max((r.cpu_limit or 0.0 for r in reps), default=0.0) or None
        if now is not None and cpu > now:
            if limits.cpu_cap is None:
                raise PermanentError(
                    f"{key}: cpu {cpu:g} would raise the limit ({now:g} cores) and no "
                    "spec.limits.cpuCap is declared: declare one to allow raising it"
                )
            if cpu > limits.cpu_cap:
                raise PermanentError(
                    f"{key}: cpu {cpu:g} is above spec.limits.cpuCap ({limits.cpu_cap:g} "
                    "cores): raise the cap to allow it"
                )
        available = cores or os.cpu_count() or 1
        if cpu > available:
            raise PermanentError(f"{key}: cpu {cpu:g} is above the {available} cores of this host")
        if cpu < MIN_CPU:
            raise PermanentError(f"{key}: cpu {cpu:g} is below the floor of {MIN_CPU:g} cores")
    if memory is not None:
        now_m = limits.memory or max((r.memory_limit or 0 for r in reps), default=0) or None
        if now_m is not None and memory > now_m:
            if limits.memory_cap is None:
                raise PermanentError(
                    f"{key}: memory {human_bytes(memory)} would raise the limit "
                    f"({human_bytes(now_m)}) and no spec.limits.memoryCap is declared: "
                    "declare one to allow raising it"
                )
            if memory > limits.memory_cap:
                raise PermanentError(
                    f"{key}: memory {human_bytes(memory)} is above spec.limits.memoryCap "
                    f"({human_bytes(limits.memory_cap)}): raise the cap to allow it"
                )
        floor = max(MIN_MEMORY, int(memory_used * MEMORY_HEADROOM))
        if memory < floor:
            raise PermanentError(
                f"{key}: memory {human_bytes(memory)} is below the floor of "
                f"{human_bytes(floor)} (Docker's 6Mi, or {MEMORY_HEADROOM:g} times the "
                f"{human_bytes(memory_used)} a replica uses now: it would be OOM-killed)"
            )
