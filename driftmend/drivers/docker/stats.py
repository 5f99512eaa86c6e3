"""CPU and memory of running containers, from the engine's one-shot stats.

Stage: *observe*. ``parse_stats`` and ``cpu_percent`` are pure; ``Sampler`` keeps the latest
reading per container and starts new ones in the background, because the engine answers a
one-shot stats request only at its next collection tick (up to a second later). Where the
container's cgroup can be read (``cgroups.py``) it is read instead, and the engine not asked.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.drivers.docker.replicas import parse_time_ns

CPU_MIN_INTERVAL = 0.5  # seconds between two CPU measurements of one container
STATS_MAX_AGE = 1.0  # observe starts a new stats reading when the last is this old ...
STATS_WAIT = 2.5  # ... and waits at most this long for a container's first reading
_FORGET_AFTER = 60.0  # seconds: a reading this old is of a container gone (or stopped)


@dataclass(frozen=True)
class Sample:
    """One one-shot ``stats`` reading of a running container."""

    at: float  # when the engine read it (Unix seconds)
    cpu_total_ns: int
    memory: int  # usage minus inactive page cache, as `docker stats` shows it


@dataclass(frozen=True)
class CpuReading:
    """The last CPU reading of one container, and the percent measured up to it."""

    at: float
    total_ns: int
    percent: float = 0.0


def parse_stats(raw: dict[str, Any]) -> Sample | None:
    """A ``Sample`` from a stats body; None for the zeros of a container that just stopped."""
    at = (parse_time_ns(raw.get("read")) or time.time_ns()) / 1e9
    cpu = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
    mem = raw.get("memory_stats") or {}
    inner = mem.get("stats") or {}
    # What `docker stats` shows: usage minus the page cache the kernel can drop at once
    # (cgroup v1 calls it total_inactive_file, v2 inactive_file).
    inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0
    usage = int(mem.get("usage") or 0)
    if not usage:
        return None
    return Sample(at, int(cpu), max(0, usage - int(inactive)))


def cpu_percent(last: CpuReading | None, sample: Sample) -> tuple[CpuReading, float]:
    """The reading to keep and the percent of one core between ``last`` and ``sample``.

    Readings closer than ``CPU_MIN_INTERVAL`` keep the last percent (a few milliseconds of
    CPU time is mostly rounding noise); a counter that went back means a new run: 0 %.
    """
    if last is None or sample.cpu_total_ns < last.total_ns:
        return CpuReading(sample.at, sample.cpu_total_ns), 0.0
    elapsed = sample.at - last.at
    if elapsed < CPU_MIN_INTERVAL:
        return last, last.percent
    percent = (sample.cpu_total_ns - last.total_ns) / 1e9 / elapsed * 100.0
    return CpuReading(sample.at, sample.cpu_total_ns, percent), percent


class Sampler:
    """The latest stats reading of each running container, refreshed in the background.

    ``read`` is a blocking call (``Engine.sample``); ``run`` runs it off the loop.
    """

    def __init__(
        self,
        read: Callable[[Any], Sample | None],
        run: Callable[[Callable[..., Sample | None], Any], Awaitable[Sample | None]],
        direct: Callable[[Any], Sample | None] | None = None,
    ) -> None:
        self._read = read
        self._run = run
        # Read on the loop, cheaply, where it works (a local engine's cgroups): then the
        # engine is not asked at all.
        self._direct = direct
        self._last: dict[str, Sample] = {}  # by container id
        self._pending: dict[str, asyncio.Future[Sample | None]] = {}

    async def samples(self, running: Sequence[Any], fresh: bool) -> dict[str, Sample]:
        """The latest reading of each running replica, by container id.

        ``observe`` does not wait for a new reading: it starts one and uses the last, waiting
        only for a container's first. ``fresh`` (the ``container_stats`` tool) waits for a
        new reading of each.
        """
        now = time.time()
        for cid in [c for c, s in self._last.items() if now - s.at > _FORGET_AFTER]:
            del self._last[cid]
        waits: list[asyncio.Future[Sample | None]] = []
        for rep in running:
            last = self._last.get(rep.id)
            due = fresh or last is None or now - last.at >= STATS_MAX_AGE
            if due and self._direct is not None:
                direct = self._direct(rep)
                if direct is not None:
                    self._last[rep.id] = direct
                    continue
            pending = self._pending.get(rep.id)
            if pending is None and due:
                pending = asyncio.ensure_future(self._run(self._read, rep))
                self._pending[rep.id] = pending
                pending.add_done_callback(functools.partial(self._done, rep.id))
            if pending is not None and (fresh or last is None):
                waits.append(pending)
        if waits:
            await asyncio.wait(waits, timeout=STATS_WAIT)
        return {r.id: s for r in running if (s := self._last.get(r.id)) is not None}

    async def close(self) -> None:
        """Cancel the readings under way."""
        pending = list(self._pending.values())
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._pending.clear()

    def _done(self, cid: str, done: asyncio.Future[Sample | None]) -> None:
        self._pending.pop(cid, None)
        if done.cancelled() or done.exception() is not None:
            return
        sample = done.result()
        if sample is not None:
            self._last[cid] = sample
