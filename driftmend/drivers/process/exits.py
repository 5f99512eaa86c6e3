"""Waiting for process exits without a thread or a poll per process: Linux pidfds.

Stage: *observe*. Python 3.11's asyncio waits for each child on a thread of its own
(``ThreadedChildWatcher``): 1,000 replicas cost 1,000 threads (issue 15). Python 3.12 made
a pidfd watcher the default on Linux; ``use_pidfd_child_watcher`` installs the same design
on 3.11: the loop that starts a child is told of its exit by the kernel, through a pidfd in
its selector. ``exited`` waits the same way for a process that is not our child (a replica
an earlier controller started), instead of polling it. Where pidfds are missing (not Linux,
a kernel older than 5.3, a sandbox that refuses them) both keep asyncio's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["exited", "pidfds_work", "use_pidfd_child_watcher"]


def pidfds_work() -> bool:
    """True where ``os.pidfd_open`` exists and the kernel answers it."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


_WORKS = pidfds_work()

with warnings.catch_warnings():
    # The child watcher classes are deprecated from 3.12, where this one is not needed.
    warnings.simplefilter("ignore", DeprecationWarning)
    _Base: Any = getattr(asyncio, "AbstractChildWatcher", object)


class _PidfdChildWatcher(_Base):  # type: ignore[misc]
    """A child watcher for any running loop: each child's pidfd is read by the loop that
    started it (3.11's own ``PidfdChildWatcher`` is bound to one loop at a time).

    A child whose loop closed before it exited (a controller stopped, its replicas left
    running) is taken over by the next loop that starts a child, so it is still reaped.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, int, Any, Any]] = {}

    def add_child_handler(self, pid: int, callback: Any, *args: Any) -> None:
        """Call ``callback(pid, returncode, *args)`` once the child ``pid`` has exited."""
        loop = asyncio.get_running_loop()
        for orphan, (old, pidfd, cb, cb_args) in list(self._waiting.items()):
            if old.is_closed():
                self._wait(loop, orphan, pidfd, cb, cb_args)
        self._wait(loop, pid, os.pidfd_open(pid), callback, args)

    def _wait(
        self, loop: asyncio.AbstractEventLoop, pid: int, pidfd: int, callback: Any, args: Any
    ) -> None:
        self._waiting[pid] = (loop, pidfd, callback, args)
        loop.add_reader(pidfd, self._reap, loop, pid)

    def _reap(self, loop: asyncio.AbstractEventLoop, pid: int) -> None:
        _, pidfd, callback, args = self._waiting.pop(pid)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by someone else: the code is lost
            code = 255
        else:
            code = os.waitstatus_to_exitcode(status)
        # The loop that started it may be closed (RuntimeError): nobody awaits it then.
        with contextlib.suppress(RuntimeError):
            callback(pid, code, *args)

    def remove_child_handler(self, pid: int) -> bool:
        """asyncio never calls this; the reader goes when the child exits."""
        return True

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Nothing to attach: the loop is the one running when a child starts."""

    def is_active(self) -> bool:
        """Always ready: it needs no loop of its own."""
        return True

    def close(self) -> None:
        """Nothing held between children."""

    def __enter__(self) -> _PidfdChildWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def use_pidfd_child_watcher() -> bool:
    """Have asyncio wait for children through pidfds (Python 3.11 only, Linux 5.3+).

    Process-wide and idempotent; True when pidfds are in use (always on 3.12+ where they
    work, since it is asyncio's default there).
    """
    if not _WORKS:
        return False
    if sys.version_info >= (3, 12):
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        if not isinstance(policy.get_child_watcher(), _PidfdChildWatcher):
            policy.set_child_watcher(_PidfdChildWatcher())
    return True


async def exited(pid: int, same: Callable[[], bool]) -> bool:
    """Wait until process ``pid`` (any process, not only a child) has exited.

    ``same`` tells whether ``pid`` is still the process meant (its create time): it is
    asked once the pidfd is open, which pins the process, so a pid reused before that is
    not waited for. False, at once, where pidfds cannot be used: the caller polls instead.
    """
    if not _WORKS:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    loop = asyncio.get_running_loop()
    try:
        if not same():
            return True
        gone = loop.create_future()
        loop.add_reader(pidfd, _settle, gone)
        try:
            await gone
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    return True
