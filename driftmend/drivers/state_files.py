"""What a runtime keeps on disk per Container, in ``state.json``: the part both runtimes share.

Stage: *act* (a runtime's memory between passes and across controller restarts). The
engine or the process table holds the replicas; this holds what only driftmend knows: which
replicas it created, whether it stopped them on purpose, a scale override, its restarts.
Each runtime adds its own fields (``process.py``: exits; ``docker/state.py``: limits, log
positions). Files are written atomically and read leniently: a field that is missing or of
the wrong type takes its default, so a damaged file costs memory, never a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftmend.errors import DriverError


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is missing, unreadable or not an object."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def write_json(key: str, path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename): a crash never leaves half
    a file. ``DriverError`` naming ``key`` when the state directory is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise DriverError(
            f"{key}: cannot write {path}: {exc.strerror or exc}; "
            "check that the state directory is writable"
        ) from exc


def opt_int(value: object) -> int | None:
    """``value`` if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def int_map(value: object) -> dict[int, int]:
    """A ``{"0": 3}`` JSON object as ``{0: 3}``; entries that are not numbers are dropped."""
    if not isinstance(value, dict):
        return {}
    out: dict[int, int] = {}
    for i, n in value.items():
        try:
            out[int(i)] = int(n)
        except (TypeError, ValueError):
            continue
    return out


@dataclass
class RuntimeState:
    """The fields of ``state.json`` that every runtime keeps for a Container."""

    key: str
    created: set[int] = field(default_factory=set)  # replica indexes ever started
    stopped: bool = False  # stopped on purpose (``stop``), until ``start_replicas``/``restart``
    scale: int | None = None  # ``scale`` override of spec.replicas ...
    scale_base: int | None = None  # ... valid while spec.replicas is still this value
    restarts: dict[int, int] = field(default_factory=dict)  # restarts made by driftmend

    def to_json(self) -> dict[str, Any]:
        """The shared fields as JSON; a runtime's own state adds its fields to this."""
        return {
            "key": self.key,
            "created": sorted(self.created),
            "stopped": self.stopped,
            "scale": self.scale,
            "scale_base": self.scale_base,
            "restarts": {str(i): n for i, n in sorted(self.restarts.items())},
        }

    @staticmethod
    def shared_fields(raw: dict[str, Any]) -> dict[str, Any]:
        """The shared fields read from a ``state.json`` object, as constructor arguments."""
        created = raw.get("created")
        return {
            "created": {i for i in created if opt_int(i) is not None}
            if isinstance(created, list)
            else set(),
            "stopped": bool(raw.get("stopped", False)),
            "scale": opt_int(raw.get("scale")),
            "scale_base": opt_int(raw.get("scale_base")),
            "restarts": int_map(raw.get("restarts")),
        }
