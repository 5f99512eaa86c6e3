"""What the Docker runtime keeps on disk per Container: ``state.json``.

Stage: *act* (its memory between passes and across controller restarts)::

    <state_dir>/docker/<namespace>-<name>/
        state.json         created replicas, stopped, scale and limits overrides, restarts,
                           how far each replica's log was copied
        replica-<i>.log    the replica's output (see logs.py), rotated to replica-<i>.log.1

The engine holds the containers; this holds only what the engine cannot tell: what driftmend
decided (a scale, a stop, raised limits) and how far it has read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import DriverError


@dataclass
class DockerState:
    """What ``state.json`` holds for one Container."""

    key: str
    created: set[int] = field(default_factory=set)  # replica indexes ever created
    stopped: bool = False  # stopped on purpose (``stop``), until ``start_replicas``/``restart``
    scale: int | None = None  # ``scale`` override of spec.replicas ...
    scale_base: int | None = None  # ... valid while spec.replicas is still this value
    restarts: dict[int, int] = field(default_factory=dict)  # restarts made by driftmend
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
        return {
            "key": self.key,
            "created": sorted(self.created),
            "stopped": self.stopped,
            "scale": self.scale,
            "scale_base": self.scale_base,
            "restarts": {str(i): n for i, n in sorted(self.restarts.items())},
            "cpu": self.cpu,
            "memory": self.memory,
            "limits_base": self.limits_base,
            "log_ns": {str(i): n for i, n in sorted(self.log_ns.items())},
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> DockerState:
        """Read ``state.json``; a field that is missing or of the wrong type takes its default."""

        def opt_int(value: object) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        def int_map(value: object) -> dict[int, int]:
            if not isinstance(value, dict):
                return {}
            out: dict[int, int] = {}
            for i, n in value.items():
                try:
                    out[int(i)] = int(n)
                except (TypeError, ValueError):
                    continue
            return out

        cpu = raw.get("cpu")
        base = raw.get("limits_base")
        created = raw.get("created")
        return cls(
            key=key,
            created={int(i) for i in created if isinstance(i, int)}
            if isinstance(created, list)
            else set(),
            stopped=bool(raw.get("stopped", False)),
            scale=opt_int(raw.get("scale")),
            scale_base=opt_int(raw.get("scale_base")),
            restarts=int_map(raw.get("restarts")),
            cpu=float(cpu) if isinstance(cpu, int | float) and not isinstance(cpu, bool) else None,
            memory=opt_int(raw.get("memory")),
            limits_base=list(base) if isinstance(base, list) and len(base) == 2 else None,
            log_ns=int_map(raw.get("log_ns")),
        )


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is missing, unreadable or not an object."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def load_state(directory: Path, key: str) -> DockerState:
    """The state of ``key`` kept in ``directory``; a fresh one when there is none."""
    raw = read_json(directory / "state.json")
    return DockerState.from_json(key, raw) if raw else DockerState(key)


def save_state(directory: Path, state: DockerState) -> None:
    """Write ``state.json`` atomically (temp file + rename): a crash never leaves half a file."""
    path = directory / "state.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise DriverError(
            f"{state.key}: cannot write {path}: {exc.strerror or exc}; "
            "check that the state directory is writable"
        ) from exc
