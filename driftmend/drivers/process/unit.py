"""What the process runtime holds in memory: one ``Unit`` per Container, its live replicas.

Stage: *observe* and *act*. A ``Replica`` is one running (or just exited) process with the
tasks that watch it; a ``Unit`` is everything kept for one Container key. Also here: the
replica count wanted now, and the CPU and memory a replica uses with its descendants.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from driftmend.drivers.process.state import Exit, ProcessState
from driftmend.drivers.process.tree import descendant_pids
from driftmend.drivers.state_files import write_json
from driftmend.spec import Container, HealthProbe

CPU_MIN_INTERVAL = 0.5  # seconds between two CPU measurements of one replica


@dataclass
class Replica:
    """One live (or just exited) process of a replica, and the tasks that watch it."""

    index: int
    pid: int
    create_time: float
    port: int | None
    started_at: float
    argv: list[str]
    ps: psutil.Process | None  # kept: cpu_percent measures between two calls on one object
    proc: asyncio.subprocess.Process | None = None  # None when adopted (not our child)
    children: dict[int, psutil.Process] = field(default_factory=dict)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # its first probe passed
    stopping: bool = False  # driftmend is stopping it: its exit is not a crash
    watcher: asyncio.Task[None] | None = None
    probe: asyncio.Task[None] | None = None
    probe_spec: HealthProbe | None = None
    failures: int = 0
    healthy: bool = True
    # A replica counts as healthy only once a probe has passed since it started, so that
    # verification after a restart waits for the app to answer, not just for a pid.
    probed_ok: bool = False
    cpu_percent: float = 0.0  # the last CPU measurement ...
    cpu_at: float = field(default_factory=time.monotonic)  # ... and when (the priming call)
    cpu_seen: dict[int, tuple[float, float]] = field(default_factory=dict)  # pid -> (when, CPU s)
    # Where this process's output begins in its log (None when adopted): an early exit
    # quotes its last lines from there, never an older process's.
    log_offset: int | None = None

    def pid_json(self) -> dict[str, Any]:
        """What ``replica-<i>.pid`` holds: enough to adopt this very process later."""
        return {
            "pid": self.pid,
            "create_time": self.create_time,
            "argv": self.argv,
            "port": self.port,
            "started_at": self.started_at,
        }

    def processes(self) -> Iterator[psutil.Process]:
        """The replica's process and its descendants, reusing cached objects for CPU deltas."""
        if self.ps is None:
            return
        yield self.ps
        fresh: dict[int, psutil.Process] = {}
        for pid in descendant_pids(self.ps):
            child = self.children.get(pid)
            try:
                # A cached process that is not running means the pid was reused.
                if child is None or not child.is_running():
                    child = psutil.Process(pid)
            except psutil.Error:
                continue  # exited since the walk
            fresh[pid] = child
        self.children = fresh
        yield from fresh.values()

    def cancel_tasks(self) -> None:
        """Cancel the watcher and the probe (never the task calling this)."""
        for task in (self.watcher, self.probe):
            if task is not None and task is not asyncio.current_task():
                task.cancel()


@dataclass
class Unit:
    """Everything the runtime holds for one Container key."""

    key: str
    dir: Path
    state: ProcessState
    replicas: dict[int, Replica] = field(default_factory=dict)  # live processes only
    spec: Container | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Starts that failed in a row per replica, and when ``ensure`` may try again: a command
    # that is missing is retried with a growing delay, not at every pass.
    failed_starts: dict[int, int] = field(default_factory=dict)
    retry_at: dict[int, float] = field(default_factory=dict)

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        write_json(self.key, self.dir / "state.json", self.state.to_json())

    def desired(self, container: Container) -> int:
        """How many replicas should run: a ``scale`` override while it holds, else the spec's."""
        s = self.state
        if s.scale is not None and s.scale_base == container.spec.replicas:
            return min(s.scale, container.spec.max_replicas)
        return container.spec.replicas

    def last_exit(self, dead: list[int]) -> Exit | None:
        """The latest exit among the ``dead`` replicas, if any was recorded."""
        exits = [self.state.exits[i] for i in dead if i in self.state.exits]
        return max(exits, key=lambda e: e.at) if exits else None


@dataclass
class Usage:
    """CPU percent and resident memory of one replica and its descendants."""

    cpu_percent: float = 0.0
    rss: int = 0


def measure_usage(r: Replica) -> Usage:
    """CPU percent and RSS of a replica and its descendants.

    CPU is measured between two calls; calls closer than ``CPU_MIN_INTERVAL`` reuse the
    last measurement, since a few milliseconds of CPU time is mostly rounding noise.
    """
    usage = Usage()
    now = time.monotonic()
    measure = now - r.cpu_at >= CPU_MIN_INTERVAL
    seen: dict[int, tuple[float, float]] = {}
    for p in r.processes():
        try:
            with p.oneshot():
                if measure:
                    # psutil's cpu_percent, without its CPU count on every call: CPU
                    # seconds used since the last reading of this process, over the time.
                    t = p.cpu_times()
                    used = t.user + t.system
                    last = r.cpu_seen.get(p.pid)
                    if last is not None and now > last[0]:
                        usage.cpu_percent += 100.0 * max(0.0, used - last[1]) / (now - last[0])
                    seen[p.pid] = (now, used)
                usage.rss += p.memory_info().rss
        except psutil.Error:
            continue  # exited or unreadable between listing and reading
    if measure:
        r.cpu_at, r.cpu_percent, r.cpu_seen = now, usage.cpu_percent, seen
    usage.cpu_percent = r.cpu_percent
    return usage


def prime_cpu(r: Replica) -> None:
    """Take the first CPU reading of ``r``'s process: the next measurement starts from it."""
    if r.ps is None:
        return
    try:
        t = r.ps.cpu_times()
    except psutil.Error:
        return
    r.cpu_seen[r.pid] = (r.cpu_at, t.user + t.system)


def alive(ps: psutil.Process | None) -> bool:
    """True while the very process (same pid and create time) runs and is not a zombie."""
    if ps is None:
        return False
    try:
        return ps.is_running() and ps.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
