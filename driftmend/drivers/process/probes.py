"""Health probes of process replicas: one HTTP probe task per live replica.

Stage: *observe*. While the spec declares ``health``, each live replica has a task that GETs
its probe URL on 127.0.0.1 every interval; a replica turns unhealthy after
``failureThreshold`` failures in a row and healthy again on the next pass, and each turn is
reported to the event sink as ``health``. A replica that does not answer yet within its
start-up window is starting, not failing.

The interval runs from the start of one probe to the start of the next (Kubernetes'
``periodSeconds``), so a probe that times out does not stretch the declared window. Until
its first probe passes, a new replica is probed every ``STARTUP_POLL`` seconds
(``http_probe.py``) and its
first pass is reported (``health``: its health goes from "not known yet" to healthy), so
the verification of a restart sees the app answer within tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx2

from driftmend.drivers.http_probe import probe_once, until_next_probe
from driftmend.drivers.process.unit import Replica, Unit
from driftmend.spec import Container, HealthProbe

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

Report = Callable[[str, str], None]  # (key, reason): the event sink as it is when called


def sync_probes(
    unit: Unit, container: Container, clock: Callable[[], float], report: Report
) -> None:
    """One probe task per live replica while the spec declares a probe; none otherwise."""
    probe = container.spec.health
    for r in unit.replicas.values():
        if r.probe is not None and (r.probe_spec != probe or r.probe.done()):
            r.probe.cancel()
            r.probe, r.failures, r.healthy = None, 0, True
        if probe is not None and r.probe is None and not r.exited.is_set():
            r.probe_spec = probe
            r.probe = asyncio.get_running_loop().create_task(
                _probe_loop(unit, r, probe, clock, report),
                name=f"probe {unit.key} replica {r.index}",
            )


async def _probe_loop(
    unit: Unit, r: Replica, probe: HealthProbe, clock: Callable[[], float], report: Report
) -> None:
    port = probe.http.port or r.port
    url = f"http://127.0.0.1:{port}{probe.http.path}" if port else None
    if probe.initial_delay > 0:
        await asyncio.sleep(probe.initial_delay)
    # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
    async with httpx2.AsyncClient(timeout=probe.timeout, trust_env=False) as client:
        while not r.exited.is_set():
            began = time.monotonic()
            ok = url is not None and await probe_once(client, url)
            # Before its first pass, within its start-up window, a replica that does not
            # answer yet is starting, not failing (its health stays "not known yet").
            starting = not r.probed_ok and clock() - r.started_at < probe.startup_timeout
            if ok or not starting:
                _record_probe(unit, r, ok, probe.failure_threshold, report)
            await asyncio.sleep(until_next_probe(probe.interval, began, starting=starting))


def _record_probe(unit: Unit, r: Replica, ok: bool, threshold: int, report: Report) -> None:
    if ok:
        r.failures = 0
        first, r.probed_ok = not r.probed_ok, True
        r.answered.set()
        if first and r.healthy:
            report(unit.key, "health")  # from "not known yet" to healthy: a restart verified
        if not r.healthy:
            r.healthy = True
            log.info("%s: replica %d is healthy again", unit.key, r.index)
            report(unit.key, "health")
        return
    r.failures += 1
    if r.healthy and r.failures >= threshold:
        r.healthy = False
        log.info("%s: replica %d failed %d probes in a row", unit.key, r.index, r.failures)
        report(unit.key, "health")
