"""One owner per state directory: a second controller refuses, ``down`` stops the running one
first and leaves nothing running. Real ``driftmend`` subprocesses on ``sleep`` replicas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.controllers import Stack, make_stack, restart_on_exit, sleeper
from tests.services import poll_until

pytestmark = pytest.mark.integration

# Holds the state directory's lock as a controller would, and ignores SIGTERM.
STUBBORN = (
    "import fcntl, os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "os.makedirs(sys.argv[1], exist_ok=True)\n"
    "fd = os.open(os.path.join(sys.argv[1], 'controller.lock'), os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.write(fd, b'%d\\n' % os.getpid())\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(tmp_path, [sleeper("a", replicas=2), sleeper("b"), restart_on_exit()])


def _up(stack: Stack) -> tuple[int, int, int]:
    """Wait until the three replicas run; their pids."""
    return poll_until(
        lambda: (
            (a0 := stack.replica_pid("a", 0)) and (a1 := stack.replica_pid("a", 1))
            and (b0 := stack.replica_pid("b")) and (a0, a1, b0)
        ),
        deadline_s=30,
        what="the three replicas started",
    )  # fmt: skip


def _stubborn(stack: Stack) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, str(stack.state)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _end(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_second_controller_refuses_naming_the_first(stack: Stack) -> None:
    first = stack.start()
    pids = _up(stack)
    second = stack.start()
    code = second.proc.wait(30)
    lines = [line for line in second.output().splitlines() if line.strip()]
    assert code != 0
    assert len(lines) == 1, lines
    assert f"pid {first.pid}" in lines[0] and "refusing" in lines[0]
    # The first one still owns everything, untouched: same replicas, same pid files.
    assert first.proc.poll() is None
    assert (stack.replica_pid("a", 0), stack.replica_pid("a", 1), stack.replica_pid("b")) == pids
    assert sorted(p.pid for p in stack.processes()) == sorted(pids)


def test_a_refused_controller_touches_nothing(stack: Stack) -> None:
    holder = _stubborn(stack)
    try:
        refused = stack.start()
        assert refused.proc.wait(30) != 0
        assert f"pid {holder.pid}" in refused.output()
        # No store, no containers directory, no process: only the holder's lock file.
        assert sorted(p.name for p in stack.state.iterdir()) == ["controller.lock"]
        assert stack.processes() == []
    finally:
        _end(holder)


def test_the_lock_of_a_dead_controller_is_no_obstacle(stack: Stack) -> None:
    dead = stack.start()
    pids = _up(stack)
    assert dead.stop(signal.SIGKILL) == -signal.SIGKILL
    assert (stack.state / "controller.lock").read_text().strip() == str(dead.pid)
    heir = stack.start()
    heir.wait_for("running: 2 resources")
    assert (stack.state / "controller.lock").read_text().strip() == str(heir.pid)
    # It adopted the replicas rather than starting new ones.
    assert sorted(p.pid for p in stack.processes()) == sorted(pids)
    assert heir.stop() == 0


def test_down_beside_a_running_controller_leaves_nothing_running(stack: Stack) -> None:
    controller = stack.start()
    _up(stack)
    # A process of the stack that no pid file names, as a race with a restart once left
    # behind: down must find it all the same.
    stray_dir = stack.state / "containers" / "default.b"
    stray = subprocess.Popen(
        ["sleep", "3600"],
        env={"PATH": os.environ["PATH"], "DRIFTMEND_STATE_DIR": str(stray_dir)},
        start_new_session=True,
    )
    try:
        done = stack.command("down")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"stopping the controller (pid {controller.pid}) first" in done.stdout
        assert f"stopped the controller (pid {controller.pid})" in done.stdout
        assert controller.proc.poll() == 0, "the controller did not end cleanly"
        assert stray.poll() is not None, "a process no pid file named survived down"
        assert f"{stray.pid}" in done.stdout
        assert stack.processes() == []
        assert not list(stack.state.glob("containers/*/replica-*.pid"))
        # The stack can come up again on the same ports and state: nothing blocks it.
        again = stack.start()
        _up(stack)
        assert again.stop() == 0
        assert stack.command("down").returncode == 0
        assert stack.processes() == []
    finally:
        _end(stray)


def test_down_refuses_when_the_controller_will_not_stop(stack: Stack) -> None:
    holder = _stubborn(stack)
    victim = subprocess.Popen(
        ["sleep", "3600"],
        env={"PATH": os.environ["PATH"], "DRIFTMEND_STATE_DIR": str(stack.state / "containers")},
        start_new_session=True,
    )
    try:
        done = stack.command("down", "--controller-timeout", "1")
        assert done.returncode == 1
        assert f"(pid {holder.pid})" in done.stderr and "did not stop within 1s" in done.stderr
        assert "nothing was stopped" in done.stderr
        assert holder.poll() is None and victim.poll() is None
    finally:
        _end(holder)
        _end(victim)
