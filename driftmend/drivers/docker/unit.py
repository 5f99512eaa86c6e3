"""What the Docker runtime holds in memory for one Container: its ``DockerUnit``.

Stage: *observe* and *act*. Its lock, its kept state (``state.py``), its probes, its CPU
readings and its log followers, and what follows from them alone: the replica count and
limits wanted now, and the readings ``observation.py`` turns into signals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from driftmend.drivers.docker.limits import wanted_limits
from driftmend.drivers.docker.logs import ReplicaLogs
from driftmend.drivers.docker.observation import Readings
from driftmend.drivers.docker.probes import Probe
from driftmend.drivers.docker.replicas import DockerReplica, Snapshot
from driftmend.drivers.docker.state import DockerState, load_state, save_state
from driftmend.drivers.docker.stats import CpuReading, Sample, cpu_percent
from driftmend.errors import DriverError
from driftmend.spec import Container

# The runtime's logger, as before these moved out of runtime.py: log settings name it.
log = logging.getLogger("driftmend.drivers.docker.runtime")

_LOG_SAVE_EVERY = 5.0  # seconds between two saves of how far the logs were copied


@dataclass
class DockerUnit:
    """Everything the runtime holds for one Container key."""

    key: str
    dir: Path
    state: DockerState
    spec: Container | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    probes: dict[int, Probe] = field(default_factory=dict)
    cpu: dict[str, CpuReading] = field(default_factory=dict)  # by container id
    logs: ReplicaLogs = field(init=False)
    log_saved_at: float = 0.0  # when the log positions were last saved (monotonic)

    def __post_init__(self) -> None:
        self.logs = ReplicaLogs(self.dir, self.state.log_ns)

    @classmethod
    def load(cls, key: str, directory: Path) -> DockerUnit:
        """The unit of ``key`` with the state kept in ``directory`` (fresh when none is)."""
        return cls(key, directory, load_state(directory, key))

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        save_state(self.dir, self.state)

    def note_log_progress(self, force: bool = False) -> None:
        """Keep how far each replica's log was copied; saved every few seconds at most."""
        self.logs.progress()
        now = time.monotonic()
        if self.logs.moved and (force or now - self.log_saved_at >= _LOG_SAVE_EVERY):
            self.log_saved_at, self.logs.moved = now, False
            try:
                self.save()
            except DriverError as exc:  # the log position is a convenience: never fail observe
                log.warning("%s", exc)

    def adopt(self, snap: Snapshot) -> None:
        """A container that exists was created: it counts as created from now on."""
        new = set(snap.replicas) - self.state.created
        if new:
            self.state.created |= new
            self.save()

    def desired(self, container: Container) -> int:
        """How many replicas should run: a ``scale`` override while it holds, else the spec's."""
        s = self.state
        if s.scale is not None and s.scale_base == container.spec.replicas:
            return min(s.scale, container.spec.max_replicas)
        return container.spec.replicas

    def limits(self, container: Container) -> tuple[float | None, int | None]:
        """The limits replicas should have: a ``set_limits`` override, else the spec's."""
        return wanted_limits(self.state, container)

    def drop_probe(self, index: int) -> None:
        """Stop probing a replica driftmend stops: its failures are not news."""
        p = self.probes.pop(index, None)
        if p is not None and p.task is not None:
            p.task.cancel()

    def stop_probes(self) -> list[asyncio.Task[None]]:
        """Cancel every probe task; returns them, for a caller that awaits their end."""
        tasks = [p.task for p in self.probes.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        return tasks

    def cpu_percent(self, rep: DockerReplica, sample: Sample | None) -> float:
        """Percent of one core between two readings (the last percent without a new one)."""
        last = self.cpu.get(rep.id)
        if sample is None:
            return last.percent if last is not None else 0.0
        self.cpu[rep.id], percent = cpu_percent(last, sample)
        return percent

    def readings(
        self, container: Container, alive: dict[int, DockerReplica], samples: dict[str, Sample]
    ) -> Readings:
        """What the runtime measured and keeps, for ``observation.py``."""
        return Readings(
            desired=self.desired(container),
            stopped=self.state.stopped,
            restarts=sum(self.state.restarts.values()),
            cpu={i: self.cpu_percent(r, samples.get(r.id)) for i, r in alive.items()},
            memory={i: s.memory for i, r in alive.items() if (s := samples.get(r.id))},
            probes=dict(self.probes),
            limits=self.limits(container),
        )
