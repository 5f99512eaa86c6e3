"""A store that cannot be written: the controller says so, keeps healing, and writes what it
missed once it can. A real ``driftmend run`` whose store lives on a small tmpfs that the test
fills up (mounting needs root: skipped otherwise, with the reason)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftmend.store import Store
from tests.integration.controllers import Stack, make_stack, restart_on_exit, sleeper
from tests.services import poll_until

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the store's directory."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill up needs root")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(tmp_path, [sleeper("a"), restart_on_exit()])


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    # Unbuffered: a buffered file would try its last block again on close, and fail there.
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return str(answer.read().decode())


def test_a_full_store_is_reported_and_healing_goes_on(stack: Stack, small_disk: Path) -> None:
    db = small_disk / "driftmend.db"
    controller = stack.start("--db-path", str(db))
    first = poll_until(lambda: stack.replica_pid("a"), deadline_s=30, what="replica started")
    controller.wait_for("running: 1 resources")
    filler = _fill(small_disk)
    controller.wait_for("cannot be written", deadline_s=20)
    assert json.loads(_get(controller.port, "/healthz"))["status"] == "degraded"
    assert "driftmend_store_writable 0.0" in _get(controller.port, "/metrics")
    assert "Degraded: the store cannot be written" in _get(controller.port, "/")

    # A killed replica is still restarted, with nothing written.
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    second = poll_until(
        lambda: (pid := stack.replica_pid("a")) != first and pid,
        deadline_s=20,
        what="the killed replica restarted",
    )
    healed_in = time.monotonic() - killed_at
    assert second and os.kill(second, 0) is None
    assert healed_in < 5, healed_in
    print(f"restarted {healed_in:.2f}s after kill -9, with the store full")
    with Store(db) as store:
        assert store.fix_records.fixes(key="Container/a") == []  # nothing could be written

    # Space is back: the fix it could not write appears, whole, and it says so.
    filler.unlink()
    controller.wait_for("can be written again", deadline_s=20)
    assert json.loads(_get(controller.port, "/healthz"))["status"] == "ok"
    assert "driftmend_store_writable 1.0" in _get(controller.port, "/metrics")
    with Store(db) as store:
        [fix] = store.fix_records.fixes(key="Container/a")
        whole = store.fix_records.fix(fix.id)
    assert whole is not None and whole.id > 0
    assert (whole.status, str(whole.outcome), whole.rule) == ("done", "fixed", "restart-on-exit")
    assert [(s.tool, s.status) for s in whole.steps] == [("container_restart", "ok")]
    assert controller.stop() == 0
    assert "Fatal Python error" not in controller.output()
    with contextlib.suppress(subprocess.TimeoutExpired):
        stack.command("down", timeout=30)
