"""Watching replicas' processes: exits, stops, and adopting what an earlier controller started.

Stage: *observe* and *act*. A ``Supervisor`` awaits its own children's exits and polls
adopted processes (not its children: no exit code to await), records each exit in the
unit's state and reports it to the event sink unless driftmend stopped the process itself.
It stops a replica's whole process tree (stopSignal with SIGCONT, stopTimeout or the shorter
hungStopTimeout, then SIGKILL) and returns only once every process of it is gone, and it
loads a unit from disk, adopting the processes its pid files name when that very process
still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from driftmend.drivers.base import EventSink
from driftmend.drivers.process.exits import exited
from driftmend.drivers.process.state import Exit, ProcessState
from driftmend.drivers.process.tree import descendants
from driftmend.drivers.process.unit import Replica, Unit, alive, prime_cpu
from driftmend.drivers.state_files import read_json
from driftmend.errors import DriverError
from driftmend.spec import ProcessSpec

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

_PID_FILE = re.compile(r"^replica-(\d+)\.pid$")
_CREATE_TIME_SLACK = 0.5  # psutil's create_time is rounded to clock ticks
_KILL_WAIT = 5.0  # after SIGKILL, how long a process may take to be reaped
_REAP_POLL = 0.02  # how often the leftovers of a stopped replica are looked at


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


def _no_hook(unit: Unit, r: Replica, code: int | None) -> None:
    """What else an exit is told to when nobody asked (``exited``)."""


class Supervisor:
    """Watches and stops the replicas of every unit; reports exits to ``sink``.

    ``poll`` is how often an adopted process is checked; ``clock`` stamps exits.
    """

    def __init__(self, clock: Callable[[], float], poll: float) -> None:
        self.clock = clock
        self.poll = poll
        self.sink: EventSink = _no_sink
        # Also told of every exit, planned or not, once recorded (the runtime's start errors).
        self.exited: Callable[[Unit, Replica, int | None], None] = _no_hook

    def report(self, key: str, reason: str) -> None:
        """Tell the event sink (whichever is set now) that ``key`` changed."""
        self.sink(key, reason)

    # -- watching --------------------------------------------------------------------------

    def watch(self, unit: Unit, r: Replica) -> None:
        """Start the task that notices ``r``'s exit: awaited for a child, polled otherwise."""
        watcher = self._watch_child(unit, r) if r.proc is not None else self._watch_adopted(unit, r)
        r.watcher = asyncio.get_running_loop().create_task(
            watcher, name=f"watch {unit.key} replica {r.index}"
        )

    async def _watch_child(self, unit: Unit, r: Replica) -> None:
        """Wait for our own child to exit: an event, with its real exit code."""
        assert r.proc is not None
        code = await r.proc.wait()
        self.on_exit(unit, r, code)

    async def _watch_adopted(self, unit: Unit, r: Replica) -> None:
        """Poll a process that is not our child (adopted): its exit code cannot be known."""
        # Not our child: no wait() to await. The kernel says when it exits (a pidfd);
        # without pidfds, poll (pid and create time, zombie or not).
        if not await exited(r.pid, lambda: alive(r.ps)):
            while alive(r.ps):  # noqa: ASYNC110 - there is no event to wait on
                await asyncio.sleep(self.poll)
        self.on_exit(unit, r, None)

    def reap_adopted(self, unit: Unit) -> None:
        """Level-triggered check of adopted replicas, so an observe never waits for a poll."""
        for r in list(unit.replicas.values()):
            if r.proc is None and not r.exited.is_set() and not alive(r.ps):
                self.on_exit(unit, r, None)

    def on_exit(self, unit: Unit, r: Replica, code: int | None) -> None:
        """Record an exit; report it unless driftmend itself stopped the process."""
        if r.exited.is_set():
            return
        r.exited.set()
        if r.probe is not None:
            r.probe.cancel()
        if unit.replicas.get(r.index) is r:
            del unit.replicas[r.index]
            (unit.dir / f"replica-{r.index}.pid").unlink(missing_ok=True)
        # SIGKILL nobody in driftmend sent may be the OOM killer, or an operator's kill -9:
        # without the kernel log we cannot tell, so oom stays False and the reason says so.
        unit.state.exits[r.index] = Exit(code=code, at=self.clock(), planned=r.stopping)
        try:
            unit.save()
        except DriverError as exc:
            log.warning("%s", exc)
        self.exited(unit, r, code)
        if r.stopping:
            return
        log.info("%s: replica %d (pid %d) exited with %s", unit.key, r.index, r.pid, code)
        self.report(unit.key, "exit")

    # -- stopping --------------------------------------------------------------------------

    async def terminate(self, unit: Unit, r: Replica, spec: ProcessSpec) -> str:
        """Stop one replica's process tree: stopSignal, its timeout, then SIGKILL.

        The stop signal goes with SIGCONT, so a stopped (SIGSTOP) process acts on it at
        once; a hung replica (stopped, or failing its probes) gets ``hungStopTimeout``
        instead of ``stopTimeout``. Whatever is left of the tree once the replica's process
        has exited (descendants in sessions of their own, like PostgreSQL's backends) is
        killed and waited for, so that the next replica finds its port and its files free.
        Returns ``"stopped"`` or ``"killed"``. The exit is recorded as planned (no event).
        """
        r.stopping = True
        how = "stopped"
        tree = process_tree(r.ps)
        if not r.exited.is_set():
            hung = r.failures > 0 or any(_is_stopped(p) for p in tree)
            grace = min(spec.stop_timeout, spec.hung_stop_timeout) if hung else spec.stop_timeout
            _signal_group(unit.key, r, signal.Signals[spec.stop_signal])
            _signal_each(tree, signal.SIGCONT)  # after the stop signal: it is acted on first
            if not await wait_exit(r, grace):
                how = "killed"
                tree = _union(tree, process_tree(r.ps))
                _signal_group(unit.key, r, signal.SIGKILL)
                _signal_each(tree, signal.SIGKILL)
                if not await wait_exit(r, _KILL_WAIT):
                    raise DriverError(
                        f"{unit.key}: replica {r.index} (pid {r.pid}) survived SIGKILL for "
                        f"{_KILL_WAIT:g}s; it may be stuck in the kernel (state D): check `ps`"
                    )
        # The leader is gone; members of its group left behind (a shell's children) would
        # keep the port busy for the next replica.
        with contextlib.suppress(OSError):
            os.killpg(r.pid, signal.SIGKILL)
        await self._reap(unit, r, tree)
        r.cancel_tasks()
        return how

    async def _reap(self, unit: Unit, r: Replica, tree: list[psutil.Process]) -> None:
        """SIGKILL what is left of the replica's tree and wait until none of it runs."""
        left = [p for p in tree if alive(p)]
        if not left:
            return
        log.info(
            "%s: replica %d left %d process(es) behind: killing %s",
            unit.key, r.index, len(left), ",".join(str(p.pid) for p in left),
        )  # fmt: skip
        _signal_each(left, signal.SIGCONT)
        _signal_each(left, signal.SIGKILL)
        end = time.monotonic() + _KILL_WAIT
        # Polled: orphans are not our children, there is no exit to await.
        while any(alive(p) for p in left):
            if time.monotonic() > end:
                raise DriverError(
                    f"{unit.key}: processes of replica {r.index} survived SIGKILL for "
                    f"{_KILL_WAIT:g}s ({','.join(str(p.pid) for p in left if alive(p))}); "
                    "they may be stuck in the kernel (state D): check `ps`"
                )
            await asyncio.sleep(_REAP_POLL)

    async def terminate_all(self, unit: Unit, spec: ProcessSpec) -> list[dict[str, Any]]:
        """Stop every live replica, highest index first; ``{"replica", "pid", "how"}`` each."""
        out: list[dict[str, Any]] = []
        for i in sorted(unit.replicas, reverse=True):
            r = unit.replicas[i]
            how = await self.terminate(unit, r, spec)
            out.append({"replica": i, "pid": r.pid, "how": how})
        return out

    # -- loading and adopting --------------------------------------------------------------

    def load(self, key: str, directory: Path, units: dict[str, Unit]) -> Unit:
        """Read state.json and the pid files; adopt live processes, record stale ones as exits.

        The unit joins ``units`` before any process is adopted, so that one whose state
        cannot be saved is still known (and its adopted processes watched once, not twice).
        Synchronous on purpose: no other task can see a half-loaded unit.
        """
        raw = read_json(directory / "state.json")
        state = ProcessState.from_json(key, raw) if raw else ProcessState(key)
        unit = Unit(key, directory, state)
        units[key] = unit
        lost: list[int] = []
        if directory.is_dir():
            for pid_file in sorted(directory.glob("replica-*.pid")):
                m = _PID_FILE.match(pid_file.name)
                if m is None:
                    continue
                index = int(m.group(1))
                r = adopt(index, read_json(pid_file))
                state.created.add(index)  # a pid file means it was started once
                if r is None:
                    pid_file.unlink(missing_ok=True)
                    state.exits[index] = Exit(code=None, at=self.clock(), planned=False)
                    lost.append(index)
                    continue
                unit.replicas[index] = r
                self.watch(unit, r)
        if lost or (raw is None and unit.replicas):
            unit.save()
        if lost:
            log.info("%s: replicas %s died while nobody watched", key, lost)
            self.report(key, "exit")
        return unit


def adopt(index: int, raw: dict[str, Any] | None) -> Replica | None:
    """The replica described by a pid file, when that very process still runs."""
    if not raw:
        return None
    try:
        pid, recorded = int(raw["pid"]), float(raw["create_time"])
        ps = psutil.Process(pid)
        if abs(ps.create_time() - recorded) > _CREATE_TIME_SLACK:
            return None  # the pid was reused by another process
        if ps.status() == psutil.STATUS_ZOMBIE:
            return None
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None
    port = raw.get("port")
    r = Replica(
        index=index,
        pid=pid,
        create_time=recorded,
        port=port if isinstance(port, int) else None,
        started_at=float(raw.get("started_at", recorded)),
        argv=[str(a) for a in raw.get("argv", [])],
        ps=ps,
    )
    prime_cpu(r)
    return r


async def wait_exit(r: Replica, within: float, *, unless: asyncio.Event | None = None) -> bool:
    """True once ``r`` has exited; False if it still runs after ``within`` seconds, or once
    ``unless`` is set while it runs."""
    waits = [asyncio.ensure_future(r.exited.wait())]
    if unless is not None:
        waits.append(asyncio.ensure_future(unless.wait()))
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return r.exited.is_set()


def process_tree(ps: psutil.Process | None) -> list[psutil.Process]:
    """A live process and all its descendants, whatever their session or group."""
    if not alive(ps):
        return []
    assert ps is not None
    try:
        return [ps, *descendants(ps)]
    except psutil.Error:
        return [ps]


def _union(a: list[psutil.Process], b: list[psutil.Process]) -> list[psutil.Process]:
    """``a`` and the processes of ``b`` it lacks (a psutil process is its pid and start)."""
    return a + [p for p in b if p not in a]


def _is_stopped(p: psutil.Process) -> bool:
    try:
        return p.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def _signal_each(procs: list[psutil.Process], sig: signal.Signals) -> None:
    """Signal each process that still runs (psutil checks it is the same process first)."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def _signal_group(key: str, r: Replica, sig: signal.Signals) -> None:
    """Signal the replica's process group, or the process alone if it left its group."""
    try:
        if not alive(r.ps):
            return
        if os.getpgid(r.pid) == r.pid:
            os.killpg(r.pid, sig)
        else:
            os.kill(r.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise DriverError(
            f"{key}: cannot signal replica {r.index} (pid {r.pid}): {exc}; "
            "was it started by another user? stop it by hand"
        ) from exc
