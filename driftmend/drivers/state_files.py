"""What a runtime keeps on disk per Container, in ``state.json``: the part both runtimes share.

Stage: *act* (a runtime's memory between passes and across controller restarts). The
engine or the process table holds the replicas; this holds what only driftmend knows: which
replicas it created, whether it stopped them on purpose, a scale override, its restarts.
Each runtime adds its own fields (``process/state.py``: exits; ``docker/state.py``: limits,
log positions). Files are written atomically and read leniently: a field that is missing or
of the wrong type takes its default, so a damaged file costs memory, never a crash.

Each Container's files live in ``<root>/<namespace>.<name>/`` (``ResourceKey.dirname``);
``resource_dir`` moves a directory of the older ``<namespace>-<name>/`` form there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftmend.errors import DriverError
from driftmend.keys import ResourceKey

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")


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


def log_paths(directory: Path, indexes: set[int]) -> list[str]:
    """``replica-<i>.log`` in ``directory`` for ``indexes`` and for any other replica that left
    a log there, in replica order."""
    found = set(indexes)
    with contextlib.suppress(OSError):
        for path in directory.glob("replica-*.log"):
            with contextlib.suppress(ValueError):
                found.add(int(path.stem.removeprefix("replica-")))
    return [str(directory / f"replica-{i}.log") for i in sorted(found)]


def log_tail(path: Path, lines: int = 3, limit: int = 4096) -> list[str]:
    """The last non-empty ``lines`` of a replica's log (each cut to 300 characters): why a
    process that died at start died, in its own words. Empty when the file cannot be read."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines() if line.strip()][-lines:]


def legacy_dirname(key: ResourceKey) -> str:
    """The directory name older versions gave ``key``: ``<namespace>-<name>``, which collides
    (``shop-prod/db`` and ``shop/prod-db`` both gave ``shop-prod-db``)."""
    return f"{key.namespace}-{key.name}"


def _owners(legacy: str) -> int:
    """How many (namespace, name) pairs have ``legacy`` as their legacy directory name."""
    return sum(
        1
        for i, ch in enumerate(legacy)
        if ch == "-" and _LABEL.match(legacy[:i]) and _LABEL.match(legacy[i + 1 :])
    )


def _belongs(directory: Path, key: ResourceKey) -> bool:
    """Whether a legacy directory holds ``key``'s files.

    Its ``state.json`` names its key; without one, only a name no other resource could have
    had is taken as ``key``'s: of two resources sharing a directory, neither may take it.
    """
    raw = read_json(directory / "state.json")
    recorded = raw.get("key") if raw else None
    if isinstance(recorded, str):
        return recorded == str(key)
    return _owners(directory.name) == 1


def resource_dir(root: Path, key: ResourceKey) -> Path:
    """``<root>/<namespace>.<name>``, where a runtime keeps ``key``'s files.

    A directory of the legacy form that belongs to ``key`` (``_belongs``) is moved there
    first, so a restarted controller still finds the replicas it started, and a link is left
    at the old name: processes started before the move were handed paths under it
    (``DRIFTMEND_STATE_DIR``, PostgreSQL's data directory) and keep working. Renaming does
    not disturb open files, so replicas keep appending to their logs.
    """
    directory = root / key.dirname
    legacy = root / legacy_dirname(key)
    if directory.exists() or legacy.is_symlink() or not legacy.is_dir():
        return directory
    if not _belongs(legacy, key):
        return directory
    try:
        legacy.rename(directory)
        legacy.symlink_to(directory.name, target_is_directory=True)
    except OSError as exc:
        raise DriverError(
            f"{key}: cannot move {legacy} to {directory}: {exc.strerror or exc}; "
            "check that the state directory is writable"
        ) from exc
    log.info("%s: moved its state from %s to %s", key, legacy, directory)
    return directory
