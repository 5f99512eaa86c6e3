"""CPU and memory of a local container read from its cgroup, without asking the engine.

Stage: *observe*. The engine's stats endpoint answers one container per request, at its own
collection tick: at 1,000 containers and a 1 s resync that is 1,000 requests a second to
dockerd (issue 15). When the controller runs on the engine's host, the same numbers are in
the container's cgroup: found once from ``/proc/<pid>/cgroup`` of its main process (so
the cgroup driver, the parent and the cgroup version need no configuration), then read as
files. Where they cannot be read (a remote engine, another PID namespace) ``read`` answers
None and the caller asks the engine as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from driftmend.drivers.docker.stats import Sample

__all__ = ["CgroupReader"]

_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class _Files:
    """Where one container's numbers are: cgroup v2 (one directory) or v1 (two)."""

    cpu: Path  # v2 cpu.stat (usage_usec), v1 cpuacct.usage (ns)
    memory: Path  # v2 memory.current, v1 memory.usage_in_bytes
    memory_stat: Path
    v2: bool


def _find(cid: str, pid: int, root: Path) -> _Files | None:
    """The cgroup files of container ``cid`` through its process ``pid``; None unless that
    process's cgroup is named after the container (Docker names it so whatever the driver):
    a pid read from an engine on another host or in another PID namespace is someone else.
    ``OSError`` when the process cannot be read now (it exited): worth asking again later."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    if not any(cid in line for line in lines):
        return None
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep:
            continue
        if controllers == "":
            v2 = path
        for c in controllers.split(","):
            v1[c] = path
    if "cpuacct" in v1 and "memory" in v1:
        cpu = root / "cpuacct" / v1["cpuacct"].lstrip("/")
        if not cpu.is_dir():
            cpu = root / "cpu,cpuacct" / v1["cpuacct"].lstrip("/")
        mem = root / "memory" / v1["memory"].lstrip("/")
        return _Files(
            cpu / "cpuacct.usage", mem / "memory.usage_in_bytes", mem / "memory.stat", False
        )
    if v2 is not None:
        d = root / v2.lstrip("/")
        return _Files(d / "cpu.stat", d / "memory.current", d / "memory.stat", True)
    return None


def _stat(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup stat file (``name value`` per line)."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[name] = int(value)
    return out


class CgroupReader:
    """Reads containers' cgroups; remembers where each container's files are."""

    def __init__(self, root: Path = _ROOT) -> None:
        self._root = root
        self._files: dict[str, _Files | None] = {}  # by container id

    def read(self, cid: str, pid: int) -> Sample | None:
        """A sample of container ``cid`` whose main process is ``pid`` (host PID); None
        when its cgroup cannot be read here (the caller asks the engine instead)."""
        if pid <= 0:
            return None
        files = self._files.get(cid)
        if files is None and cid not in self._files:
            try:
                # None is kept: this host cannot see the container's cgroup, ask the engine.
                files = self._files[cid] = _find(cid, pid, self._root)
            except OSError:
                return None  # the process is gone for now: look again at the next reading
        if files is None:
            return None
        try:
            if files.v2:
                cpu_ns = _stat(files.cpu)["usage_usec"] * 1000
                inactive = _stat(files.memory_stat).get("inactive_file", 0)
            else:
                cpu_ns = int(files.cpu.read_text())
                inactive = _stat(files.memory_stat).get("total_inactive_file", 0)
            usage = int(files.memory.read_text())
        except (OSError, ValueError, KeyError):
            # Gone (the container stopped) or not readable: look it up again next time.
            self._files.pop(cid, None)
            return None
        if not usage:
            return None
        return Sample(time.time(), cpu_ns, max(0, usage - inactive))

    def forget(self, cid: str) -> None:
        """Drop what is known of a container that stopped (its next run has a new cgroup)."""
        self._files.pop(cid, None)
