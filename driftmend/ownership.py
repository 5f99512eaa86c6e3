"""One owner per state directory: the lock a controller holds for as long as it runs.

Stage: start-up and shutdown of ``driftmend run`` and ``driftmend down`` (docs/ARCHITECTURE.md,
the composition root). Two controllers on one state directory would both act: duplicate
replicas, each deleting the other's pid files. So ``driftmend run`` takes an exclusive
``flock`` on ``<state dir>/controller.lock`` before it starts, opens or touches anything else,
and writes its pid there for others to name it. The kernel drops a ``flock`` when its holder
dies, so a lock file left by a dead controller is no obstacle. The descriptor is opened
close-on-exec (Python's default), so a supervised process never inherits the lock.

``driftmend down`` takes the same lock, after asking its holder to stop (``stop_owner``),
and holds it while it stops the stack: no controller can start replicas behind its back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from driftmend.errors import PermanentError

__all__ = ["LOCK_NAME", "Ownership", "StateDirOwnedError", "claim", "stop_owner"]

LOCK_NAME = "controller.lock"


class StateDirOwnedError(PermanentError):
    """Another live process holds the state directory's lock; ``pid`` names it (None when
    its pid could not be read)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class Ownership:
    """The held lock of one state directory; ``release`` (or process exit) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock. The file stays: removing it would let a newcomer lock a fresh
        inode while a waiter still holds the old one."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Ownership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_path(state_dir: Path) -> Path:
    return Path(state_dir) / LOCK_NAME


def _read_pid(fd: int) -> int | None:
    """The pid written in the lock file, or None when it is empty or not a number."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _open(state_dir: Path) -> int:
    try:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        return os.open(_lock_path(state_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PermanentError(
            f"cannot open {_lock_path(state_dir)}: {exc.strerror or exc}; "
            "check that the state directory is writable"
        ) from exc


def claim(state_dir: Path, *, what: str = "a controller") -> Ownership:
    """Take the state directory's lock and write our pid in it, or raise
    ``StateDirOwnedError`` naming the holder's pid. Never waits."""
    fd = _open(state_dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # The holder writes its pid right after locking: a moment's wait reads it.
        pid = _read_pid(fd)
        for _ in range(20):
            if pid is not None:
                break
            time.sleep(0.01)
            pid = _read_pid(fd)
        os.close(fd)
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded"
        raise StateDirOwnedError(
            f"the state directory {Path(state_dir).resolve()} is owned by {who}, a running "
            f"driftmend; refusing to start {what} beside it (stop it, or give another "
            "--state-dir)",
            pid,
        ) from None
    except OSError as exc:
        os.close(fd)
        raise PermanentError(f"cannot lock {_lock_path(state_dir)}: {exc}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return Ownership(_lock_path(state_dir), fd)


def stop_owner(
    state_dir: Path,
    *,
    timeout: float,
    say: Callable[[str], None] = print,
    poll: float = 0.05,
) -> Ownership:
    """Own ``state_dir``: if a controller holds it, SIGTERM it and wait up to ``timeout``
    seconds for its lock to be released, then take it.

    Raises ``StateDirOwnedError`` when the holder cannot be signalled or does not let go
    in time; nothing was stopped then except by the holder itself.
    """
    try:
        return claim(state_dir, what="`driftmend down`")
    except StateDirOwnedError as exc:
        pid = exc.pid
        if pid is None or pid == os.getpid():
            raise
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended between the lock check and the signal
    except PermissionError as err:
        raise StateDirOwnedError(
            f"the controller (pid {pid}) running on {Path(state_dir).resolve()} belongs to "
            f"another user and cannot be stopped from here ({err.strerror}); stop it first, "
            "then run `driftmend down` again",
            pid,
        ) from err
    say(f"stopping the controller (pid {pid}) first")
    deadline = time.monotonic() + timeout
    while True:
        try:
            owned = claim(state_dir, what="`driftmend down`")
        except StateDirOwnedError:
            if time.monotonic() >= deadline:
                raise StateDirOwnedError(
                    f"the controller (pid {pid}) on {Path(state_dir).resolve()} did not stop "
                    f"within {timeout:g}s of SIGTERM; nothing was stopped: stop it (kill "
                    f"{pid}), then run `driftmend down` again",
                    pid,
                ) from None
            time.sleep(poll)
            continue
        say(f"stopped the controller (pid {pid})")
        return owned
