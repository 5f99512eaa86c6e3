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


def find_strays(directory: Path, known: set[int]) -> list[psutil.Process]:
    """Live processes (not ``known``, not us) whose ``DRIFTMEND_STATE_DIR`` is ``directory``.

    Reading another user's environment needs root; as another user, only our own
    processes are found, which are the only ones we could have started.
    """
    names = _names(directory)
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid in known or proc.pid == os.getpid():
            continue
        try:
            value = proc.environ().get("DRIFTMEND_STATE_DIR")
            if value is None or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue  # gone, or not ours to read
        if value in names or _names(Path(value)) & names:
            found.append(proc)
    return found


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
    key: str, directory: Path, known: set[int], sig: signal.Signals, grace: float
) -> list[dict[str, object]]:
    """Stop every stray process of ``directory`` (see ``find_strays``): ``{"pid", "how"}`` each."""
    procs = await asyncio.to_thread(find_strays, directory, known)
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
