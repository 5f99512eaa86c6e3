"""Finding and stopping a Container's processes that no pid file names any more.

Stage: *act* (``driftmend down``). Pid files are the runtime's memory of what it started,
and a memory can be lost: a pid file deleted while a controller restarted the replica, a
state directory copied or cleaned by hand. Every replica is started with
``DRIFTMEND_STATE_DIR`` set to its Container's directory, and its children inherit it, so
the process table itself says which processes belong to a Container: ``down`` stops those
too, and nothing it was asked to stop survives to hold a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

log = logging.getLogger("driftmend.drivers.process")

_KILL_WAIT = 5.0  # after SIGKILL, how long a process may take to go


def _names(directory: Path) -> set[str]:
    """The spellings of ``directory`` a replica's environment may hold."""
    names = {str(directory)}
    with contextlib.suppress(OSError):
        names.add(str(directory.resolve()))
    return names


class StrayIndex:
    """Processes by the ``DRIFTMEND_STATE_DIR`` in their environment, from one scan of the
    process table reused for ``max_age`` seconds.

    ``down`` of 1,000 Containers read the environment of every process on the machine once
    per Container, a million reads and minutes (issue 15); one scan serves them all. A
    process that ended since the scan is left out when asked for; none is started for a
    Container being brought down (its controller was stopped first).
    """

    def __init__(self, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._scanned_at: float | None = None
        self._by_dir: dict[str, list[psutil.Process]] = {}

    def find(self, directory: Path, known: set[int]) -> list[psutil.Process]:
        """Live processes (not ``known``, not us) whose ``DRIFTMEND_STATE_DIR`` is
        ``directory``.

        Reading another user's environment needs root; as another user, only our own
        processes are found, which are the only ones we could have started.
        """
        now = self._clock()
        if self._scanned_at is None or now - self._scanned_at >= self.max_age:
            self._by_dir = _scan()
            self._scanned_at = now
        found: dict[int, psutil.Process] = {}
        for name in _names(directory):
            for proc in self._by_dir.get(name, ()):
                if proc.pid in known or proc.pid in found:
                    continue
                try:
                    if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                        found[proc.pid] = proc
                except psutil.Error:
                    continue
        return list(found.values())


def _scan() -> dict[str, list[psutil.Process]]:
    """Every process with ``DRIFTMEND_STATE_DIR`` set, by each spelling of its value."""
    by_value: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            value = proc.environ().get("DRIFTMEND_STATE_DIR")
        except psutil.Error:
            continue  # gone, or not ours to read
        if value is not None:
            by_value.setdefault(value, []).append(proc)
    by_dir: dict[str, list[psutil.Process]] = {}
    for value, procs in by_value.items():
        for name in _names(Path(value)):
            by_dir.setdefault(name, []).extend(procs)
    return by_dir


def _stop(procs: list[psutil.Process], sig: signal.Signals, grace: float) -> list[int]:
    """Send ``sig`` (and SIGCONT, so a stopped process can honour it) to each, wait up to
    ``grace`` seconds, SIGKILL the rest; returns the pids that had to be killed."""
    for proc in procs:
        for s in (sig, signal.SIGCONT):
            try:
                proc.send_signal(s)
            except psutil.Error:
                break
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    _, stuck = psutil.wait_procs(alive, timeout=_KILL_WAIT)
    for proc in stuck:
        log.warning("pid %d survived SIGKILL for %gs (state D?): check `ps`", proc.pid, _KILL_WAIT)
    return [p.pid for p in alive]


async def stop_strays(
    key: str,
    directory: Path,
    known: set[int],
    sig: signal.Signals,
    grace: float,
    index: StrayIndex | None = None,
) -> list[dict[str, object]]:
    """Stop every stray process of ``directory`` (see ``StrayIndex``): ``{"pid", "how"}``
    each. ``index`` is a scan shared by many calls (``down`` of every Container)."""
    finder = index or StrayIndex(max_age=0.0)
    procs = await asyncio.to_thread(finder.find, directory, known)
    if not procs:
        return []
    log.warning(
        "%s: %d process(es) without a pid file still run (pids %s); stopping them",
        key,
        len(procs),
        ", ".join(str(p.pid) for p in procs),
    )
    killed = set(await asyncio.to_thread(_stop, procs, sig, grace))
    return [{"pid": p.pid, "how": "killed" if p.pid in killed else "stopped"} for p in procs]
