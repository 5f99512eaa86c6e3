"""Watching real processes cheaply: descendants without a ``/proc`` scan, exits without a
thread, strays of many Containers from one scan (``drivers/process/tree.py``,
``exits.py``, ``strays.py``; issue 15)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from driftmend.drivers.process.exits import exited, pidfds_work, use_pidfd_child_watcher
from driftmend.drivers.process.strays import StrayIndex
from driftmend.drivers.process.tree import descendant_pids
from tests.integration.harness import eventually
from tests.services import poll_until

needs_pidfds = pytest.mark.skipif(not pidfds_work(), reason="this kernel has no pidfd_open")


def test_descendants_are_found_in_every_session() -> None:
    # sh -> sleep, and sh -> setsid -> sleep in a session of its own (PostgreSQL's backends).
    tree = subprocess.Popen(["sh", "-c", "setsid sleep 60 & sleep 60 & wait"])
    try:
        ps = psutil.Process(tree.pid)
        poll_until(lambda: len(ps.children(recursive=True)) >= 2, deadline_s=10, what="two sleeps")
        expected = {p.pid for p in ps.children(recursive=True)}
        assert set(descendant_pids(ps)) == expected
        assert any(os.getsid(pid) != os.getsid(tree.pid) for pid in expected)
    finally:
        for p in psutil.Process(tree.pid).children(recursive=True):
            p.kill()
        tree.kill()
        tree.wait()


def test_a_process_without_children_has_no_descendants() -> None:
    leaf = subprocess.Popen(["sleep", "60"])
    try:
        assert descendant_pids(psutil.Process(leaf.pid)) == []
    finally:
        leaf.kill()
        leaf.wait()


@needs_pidfds
async def test_children_are_waited_for_without_a_thread_each() -> None:
    assert use_pidfd_child_watcher()
    before = threading.active_count()
    procs = [await asyncio.create_subprocess_exec("sleep", "60") for _ in range(30)]
    try:
        assert threading.active_count() < before + 5  # the threaded watcher: one per child
        procs[0].send_signal(signal.SIGKILL)
        procs[1].terminate()
        assert await asyncio.wait_for(procs[0].wait(), 10) == -signal.SIGKILL
        assert await asyncio.wait_for(procs[1].wait(), 10) == -signal.SIGTERM
        assert procs[2].returncode is None
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 10)
    ok = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
    assert await asyncio.wait_for(ok.wait(), 10) == 3


@needs_pidfds
def test_a_child_whose_loop_closed_is_reaped_by_the_next_loop() -> None:
    async def start() -> int:
        use_pidfd_child_watcher()
        return (await asyncio.create_subprocess_exec("sleep", "60")).pid

    orphan = asyncio.run(start())  # its loop is closed: nobody awaits it any more

    async def next_loop() -> None:
        other = await asyncio.create_subprocess_exec("true")  # takes the orphan over
        await asyncio.wait_for(other.wait(), 10)
        os.kill(orphan, signal.SIGKILL)
        # Reaped, not left a zombie (a zombie's pid still exists).
        await eventually(lambda: not psutil.pid_exists(orphan), what=f"pid {orphan} reaped")

    asyncio.run(next_loop())


@needs_pidfds
async def test_the_exit_of_a_process_that_is_not_our_child_is_an_event() -> None:
    # The shell exits at once: its sleep is re-parented, as an adopted replica is.
    shell = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await shell.communicate()
    pid = int(out)
    ps = psutil.Process(pid)
    assert ps.ppid() != os.getpid()
    waiting = asyncio.create_task(exited(pid, ps.is_running))
    done, _ = await asyncio.wait([waiting], timeout=0.05)
    assert not done  # still waiting: the process runs
    os.kill(pid, signal.SIGKILL)
    assert await asyncio.wait_for(waiting, 10) is True
    # Gone already, or a pid that is no longer the process meant: no wait at all.
    assert await asyncio.wait_for(exited(pid, ps.is_running), 1) is True
    leaf = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        assert await asyncio.wait_for(exited(leaf.pid, lambda: False), 1) is True
    finally:
        leaf.kill()
        await leaf.wait()


def test_one_scan_finds_the_strays_of_many_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    procs = [
        subprocess.Popen(["sleep", "60"], env={**os.environ, "DRIFTMEND_STATE_DIR": str(d)})
        for d in dirs
    ]
    scans: list[int] = []
    real = psutil.process_iter

    def counted(*args: Any, **kwargs: Any) -> Any:
        scans.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(psutil, "process_iter", counted)
    try:
        index = StrayIndex(max_age=60.0)
        assert [p.pid for p in index.find(dirs[0], set())] == [procs[0].pid]
        procs[1].kill()
        procs[1].wait()
        assert index.find(dirs[1], set()) == []  # ended since the scan: left out
        assert [p.pid for p in index.find(dirs[2], set())] == [procs[2].pid]
        assert index.find(dirs[2], {procs[2].pid}) == []  # a pid file names it
        assert len(scans) == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()
