"""Health of a Container's replicas: our own HTTP probe, or Docker's healthcheck.

Stage: *observe*. ``Probe.record`` and ``health`` are pure; ``probe_loop`` is the task that
probes one run of one replica (a restart is a new run, with a new probe): fast until its
first pass, then every interval from start to start (``http_probe.until_next_probe``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx2

from driftmend.drivers.docker.replicas import DockerReplica, seconds
from driftmend.drivers.http_probe import probe_once, until_next_probe
from driftmend.spec import Container, HealthProbe


@dataclass
class Probe:
    """Our own HTTP probe of one run of one replica."""

    run: tuple[str, str]  # (container id, StartedAt)
    spec: HealthProbe
    port: int | None
    started: float  # the run's start (Unix seconds)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    healthy: bool = True
    # Healthy only once a probe has passed since the run started, so that verification
    # after a restart waits for the app to answer, not just for a running container.
    probed_ok: bool = False

    def starting(self, now: float) -> bool:
        """True before its first pass, within ``startupTimeout`` of the run's start."""
        return not self.probed_ok and now - self.started < self.spec.startup_timeout

    def record(self, ok: bool, now: float) -> bool:
        """Count one probe's result; True when the replica's health just changed: healthy
        or unhealthy, or its first pass (from "not known yet" to healthy, which the
        verification of a restart waits for).

        Before its first pass, within ``startupTimeout`` of its start, a replica that does
        not answer yet is starting, not failing: its health stays "not known yet".
        """
        if not ok and self.starting(now):
            return False
        if ok:
            self.failures = 0
            first, self.probed_ok = not self.probed_ok, True
            if not self.healthy:
                self.healthy = True
                return True
            return first
        self.failures += 1
        if self.healthy and self.failures >= self.spec.failure_threshold:
            self.healthy = False
            return True
        return False


def health(
    probe: HealthProbe | None,
    probes: Mapping[int, Probe],
    alive: Mapping[int, DockerReplica],
    running: bool,
    healthcheck_declared: bool,
) -> tuple[bool | None, int]:
    """(healthy, worst consecutive failures): our probe if declared, else Docker's check.

    None until every running replica has passed a first check (a probe, or Docker's
    ``starting``): "not known yet" is neither a drift nor a successful verification.
    """
    if probe is not None:
        mine = [probes.get(i) for i in alive]
        worst = max((p.failures for p in mine if p is not None), default=0)
        healthy: bool | None = running and worst < probe.failure_threshold
        if healthy and not all(p is not None and p.probed_ok for p in mine):
            healthy = None
        return healthy, worst
    checked = [r for r in alive.values() if r.health is not None]
    if not checked:
        return (running if healthcheck_declared else True), 0
    worst = max(r.failing_streak for r in checked)
    if not running or any(r.health == "unhealthy" for r in checked):
        return False, worst
    if any(r.health != "healthy" for r in checked):
        return (None if running else False), worst
    return True, worst


async def probe_loop(p: Probe, on_change: Callable[[Probe], None]) -> None:
    """Probe until cancelled; ``on_change`` when the replica turns healthy or unhealthy."""
    url = f"http://127.0.0.1:{p.port}{p.spec.http.path}" if p.port else None
    if p.spec.initial_delay > 0:
        await asyncio.sleep(p.spec.initial_delay)
    # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
    async with httpx2.AsyncClient(timeout=p.spec.timeout, trust_env=False) as client:
        while True:
            began = time.monotonic()
            ok = url is not None and await probe_once(client, url)
            if p.record(ok, time.time()):
                on_change(p)
            starting = p.starting(time.time())
            await asyncio.sleep(until_next_probe(p.spec.interval, began, starting=starting))


def sync_probes(
    probes: dict[int, Probe],
    container: Container,
    replicas: Mapping[int, DockerReplica],
    on_change: Callable[[int, Probe], None],
) -> None:
    """One probe task per running replica while the spec declares a probe; none otherwise.

    A probe belongs to one run (container id and start): a restarted replica gets a new one.
    Runs on the event loop's thread.
    """
    spec = container.spec.health
    for i in list(probes):
        p = probes[i]
        rep = replicas.get(i)
        current = rep is not None and rep.running and p.run == (rep.id, rep.started_at)
        if spec is None or not current or p.spec != spec or (p.task and p.task.done()):
            if p.task is not None:
                p.task.cancel()
            del probes[i]
    if spec is None:
        return
    for i, rep in replicas.items():
        if rep.running and i not in probes:
            base = container.spec.port + i if container.spec.port is not None else None
            p = Probe(
                run=(rep.id, rep.started_at),
                spec=spec,
                port=spec.http.port or base,
                started=seconds(rep.started_at) or time.time(),
            )
            p.task = asyncio.get_running_loop().create_task(
                probe_loop(p, functools.partial(on_change, i)),
                name=f"probe {container.key} replica {i}",
            )
            probes[i] = p
