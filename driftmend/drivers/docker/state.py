"""What the Docker runtime keeps on disk per Container: ``state.json``.

Stage: *act* (its memory between passes and across controller restarts)::

    <state_dir>/docker/<namespace>.<name>/
        state.json         created replicas, stopped, scale and limits overrides, restarts,
                           how far each replica's log was copied
        replica-<i>.log    the replica's output (see logs.py), rotated to replica-<i>.log.1

The engine holds the containers; this holds only what the engine cannot tell: what driftmend
decided (a scale, a stop, raised limits) and how far it has read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftmend.drivers.state_files import (
    RuntimeState,
    int_map,
    opt_int,
    read_json,
    write_json,
)


@dataclass
class DockerState(RuntimeState):
    """What ``state.json`` holds for one Container: the shared fields, and Docker's own."""

    # ``set_limits`` override of spec.limits, valid while spec.limits keeps the values it had
    # (an edited spec is a newer wish than an older remedy)
    cpu: float | None = None
    memory: int | None = None
    limits_base: list[float | int | None] | None = None
    # Docker's time (ns) of the newest log line copied, per replica: a restarted controller
    # follows from there instead of copying the container's history again.
    log_ns: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``state.json``."""
        return super().to_json() | {
            "cpu": self.cpu,
            "memory": self.memory,
            "limits_base": self.limits_base,
            "log_ns": {str(i): n for i, n in sorted(self.log_ns.items())},
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> DockerState:
        """Read ``state.json``; a field that is missing or of the wrong type takes its default."""
        cpu = raw.get("cpu")
        base = raw.get("limits_base")
        return cls(
            key=key,
            **cls.shared_fields(raw),
            cpu=float(cpu) if isinstance(cpu, int | float) and not isinstance(cpu, bool) else None,
            memory=opt_int(raw.get("memory")),
            limits_base=list(base) if isinstance(base, list) and len(base) == 2 else None,
            log_ns=int_map(raw.get("log_ns")),
        )


def load_state(directory: Path, key: str) -> DockerState:
    """The state of ``key`` kept in ``directory``; a fresh one when there is none."""
    raw = read_json(directory / "state.json")
    return DockerState.from_json(key, raw) if raw else DockerState(key)


def save_state(directory: Path, state: DockerState) -> None:
    """Write ``state.json`` atomically: a crash never leaves half a file."""
    write_json(state.key, directory / "state.json", state.to_json())
