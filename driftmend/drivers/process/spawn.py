"""Starting one replica as a local process: its command, directory, user and environment.

Stage: *act*. ``spawn`` resolves ``spec.process`` against the runtime's base directory,
opens the replica's log, starts the process in its own session (so it outlives the
controller, and a stop signals its whole group) and records it in ``replica-<i>.pid``.
A replica run as another user gets what it cannot reach where it can (``access.py``).
A start that fails raises ``SpawnError``, which says why in a bounded word (``reason``) and
in the OS's words, naming the command and the user.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from driftmend.drivers.process.access import (
    RunAs,
    blocker,
    copy_command,
    interpreter,
    own_dir,
    passable_dirs,
    work_dir,
)
from driftmend.drivers.process.unit import Replica, Unit, prime_cpu
from driftmend.drivers.secret_refs import resolve_env
from driftmend.drivers.state_files import write_json
from driftmend.errors import DriverError, PermanentError
from driftmend.spec import Container, ProcessSpec
from driftmend.state_dir import replica_umask

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

# What a supervised process inherits of the controller's environment: what a program needs
# to run (where binaries are, locale, time zone, a home and a temp directory), nothing
# else. Above all not the controller's secrets (GEMINI_API_KEY, DRIFTMEND_*_TOKEN, cloud
# credentials): like a container, a process gets the rest from its spec's `env`.
INHERITED_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR"}
)


class SpawnError(DriverError):
    """A replica could not be started; ``reason`` is one of ``state.START_REASONS``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Placement:
    """Where the runtime keeps files for replicas that run as another user (``access.py``):
    ``work_root`` (root's), and the state directory whose Containers they are."""

    work_root: Path
    state_root: Path


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission-denied"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "not-found"
    if exc.errno == errno.EADDRINUSE:
        return "address-in-use"
    return "other"


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The part of ``parent`` (the controller's environment) a supervised process inherits."""
    return {k: v for k, v in parent.items() if k in INHERITED_ENV or k.startswith("LC_")}


def process_spec(container: Container) -> ProcessSpec:
    """``spec.process``, which validation guarantees for ``runtime: process``."""
    if container.spec.process is None:
        # Only reachable when a docker Container is handed to this runtime by mistake.
        raise PermanentError(
            f"{container.key}: the process runtime needs spec.process (runtime is "
            f"{container.spec.runtime})"
        )
    return container.spec.process


async def spawn(
    unit: Unit,
    container: Container,
    index: int,
    base: Path,
    clock: Callable[[], float],
    placement: Placement,
) -> Replica:
    """Start replica ``index`` and record it (unit, pid file, state); returns once it exists.

    The caller watches it: nothing here waits for the process. ``SpawnError`` (or
    ``PermanentError`` for a user that does not exist) when it cannot be started.
    """
    spec = container.spec
    proc_spec = process_spec(container)
    port = spec.port + index if spec.port is not None else None
    argv = resolve_argv(container, base)
    cwd = resolve_cwd(container, base)
    # Read before anything is created: a secret that cannot be read is the operator's to fix.
    spec_env = resolve_env(proc_spec.env, f"{container.key}: spec.process.env")
    who: RunAs | None = None
    if proc_spec.user and os.geteuid() == 0:
        who = RunAs.named(proc_spec.user, container.key)
    elif proc_spec.user:
        # Only root can switch users; as anyone else the replica runs as we do.
        log.info("%s: ignoring user %r: driftmend is not root", unit.key, proc_spec.user)
    try:
        unit.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpawnError(
            f"{container.key}: cannot create {unit.dir}: {exc.strerror or exc}; "
            "check that the state directory is writable",
            _reason(exc),
        ) from exc
    own = unit.dir
    if who is not None:
        argv[0], own = _reachable(unit, container, who, Path(argv[0]), placement)
    env = {
        **child_environment(os.environ),
        **spec_env,
        "DRIFTMEND_STATE_DIR": str(own),
    }
    if spec.port_env and port is not None:
        env[spec.port_env] = str(port)
    log_path = unit.dir / f"replica-{index}.log"
    kwargs: dict[str, Any] = {}
    try:
        # The controller's (or the replica user's) only: a replica's output may hold what
        # its environment gave it.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_offset = os.fstat(log_fd).st_size
    except OSError as exc:
        raise SpawnError(
            f"{container.key}: cannot open {log_path}: {exc.strerror or exc}; "
            "check that the state directory is writable",
            _reason(exc),
        ) from exc
    try:
        if who is not None:
            kwargs = as_user(container, who, own, log_path, env)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # outlive the controller; signal the whole group
                umask=replica_umask(),  # the app's own, not the controller's private one
                **kwargs,
            )
        except OSError as exc:
            raise SpawnError(_exec_failed(container, index, argv, who, exc), _reason(exc)) from exc
        except (subprocess.SubprocessError, ValueError) as exc:
            raise SpawnError(
                f"{container.key}: cannot start replica {index} ({' '.join(argv)}): {exc}; "
                "check spec.process.command, workingDir and user",
                "other",
            ) from exc
    finally:
        os.close(log_fd)

    started_at = clock()
    ps: psutil.Process | None
    try:
        ps = psutil.Process(proc.pid)
        create_time = ps.create_time()
    except psutil.Error:
        # Already exited and reaped (a command that fails at once): the watcher records it.
        ps, create_time = None, time.time()
    r = Replica(index, proc.pid, create_time, port, started_at, argv, ps, proc=proc)
    prime_cpu(r)
    r.log_offset = log_offset
    unit.replicas[index] = r
    unit.state.created.add(index)
    write_json(unit.key, unit.dir / f"replica-{index}.pid", r.pid_json())
    unit.save()
    return r


def resolve_argv(container: Container, base: Path) -> list[str]:
    """argv with command[0] resolved: relative paths against ``base``, bare names on PATH."""
    command = list(process_spec(container).command)
    exe = command[0]
    where = "spec.process.command[0]"
    if "/" in exe:
        path = Path(exe) if os.path.isabs(exe) else base / exe
        if not path.is_file():
            raise SpawnError(
                f"{container.key}: command {exe!r} not found (looked for {path}); "
                f"fix {where} (relative paths resolve against {base})",
                "not-found",
            )
        if not os.access(path, os.X_OK):
            raise SpawnError(
                f"{container.key}: command {path} is not executable; chmod +x it or fix {where}",
                "permission-denied",
            )
        command[0] = str(path)
        return command
    declared = process_spec(container).env.get("PATH")
    env_path = declared if isinstance(declared, str) else os.environ.get("PATH", os.defpath)
    found = shutil.which(exe, path=env_path)
    if found is None:
        raise SpawnError(
            f"{container.key}: command {exe!r} not found on PATH; install it or give its "
            f"full path in {where}",
            "not-found",
        )
    command[0] = found
    return command


def resolve_cwd(container: Container, base: Path) -> str:
    """``spec.process.workingDir`` (``base`` when unset; relative to ``base``); it must exist."""
    raw = process_spec(container).working_dir
    cwd = base if raw is None else Path(raw)
    if not cwd.is_absolute():
        cwd = base / cwd
    if not cwd.is_dir():
        raise SpawnError(
            f"{container.key}: working directory {cwd} does not exist; "
            f"fix spec.process.workingDir (relative paths resolve against {base})",
            "not-found",
        )
    return str(cwd)


def _reachable(
    unit: Unit, container: Container, who: RunAs, command: Path, placement: Placement
) -> tuple[str, Path]:
    """The command ``who`` runs, and its own directory (``DRIFTMEND_STATE_DIR``), both where
    ``who`` can reach them: the originals when it can, else a copy (of a script) and a
    directory under the work root (``access.py``). ``SpawnError`` naming the path and the
    user when a program, or a script's interpreter, is out of its reach: no copy mends it."""
    own = unit.dir
    work = None
    if blocker(unit.dir.parent, who) is not None:
        work = _work(unit, placement)
        own = work / "data"
        own_dir(own, who, container.key)
    out_of_reach = blocker(command, who, os.R_OK | os.X_OK)
    if out_of_reach is not None and interpreter(command) is None:
        # A program (not a script) finds its libraries and its prefix beside itself: a copy
        # would fail in its own confusing way, so say what blocks the original.
        raise SpawnError(
            f"{container.key}: {command} cannot be run as user {who.name}: {out_of_reach}; "
            "install it where that user can reach it",
            "permission-denied",
        )
    if out_of_reach is not None:
        work = work or _work(unit, placement)
        bin_dir = work / "bin"
        passable_dirs(placement.work_root, bin_dir, container.key)
        copied = copy_command(command, bin_dir, who, container.key)
        log.info("%s: %s is out of user %s's reach: running a copy, %s",
                 unit.key, command, who.name, copied)  # fmt: skip
        command = copied
    script = interpreter(command)
    if script is not None:
        why = blocker(script, who, os.X_OK)
        if why is not None:
            raise SpawnError(
                f"{container.key}: {command}'s interpreter {script} cannot be run as user "
                f"{who.name}: {why}",
                "permission-denied",
            )
    return str(command), own


def _work(unit: Unit, placement: Placement) -> Path:
    work = work_dir(placement.work_root, placement.state_root, unit.dir.name)
    passable_dirs(placement.work_root, work, unit.key)
    return work


def _exec_failed(
    container: Container, index: int, argv: list[str], who: RunAs | None, exc: OSError
) -> str:
    """Words for a failed exec: the OS's, and, as another user, the path that blocks it."""
    as_whom = f" as user {who.name}" if who is not None else ""
    message = (
        f"{container.key}: cannot start replica {index} ({' '.join(argv)}){as_whom}: "
        f"{exc.strerror or exc}"
    )
    if who is not None and exc.errno in (errno.EACCES, errno.ENOENT):
        why = blocker(Path(argv[0]), who, os.R_OK | os.X_OK)
        if why is not None:
            return f"{message}: {why}"
    return f"{message}; check spec.process.command, workingDir and user"


def as_user(
    container: Container, who: RunAs, own: Path, log_path: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Popen arguments that run the replica as ``who``; its own files become its own."""
    try:
        # The replica may write under DRIFTMEND_STATE_DIR; its log stays its own too.
        os.chown(own, who.uid, who.gid)
        os.chown(log_path, who.uid, who.gid)
    except OSError as exc:
        raise SpawnError(
            f"{container.key}: cannot chown {own} to {who.name}: {exc.strerror or exc}",
            _reason(exc),
        ) from exc
    for var, value in (("HOME", who.home), ("USER", who.name), ("LOGNAME", who.name)):
        if var not in process_spec(container).env:
            env[var] = value
    return {
        "user": who.uid,
        "group": who.gid,
        # Without this the child would keep root's supplementary groups.
        "extra_groups": sorted(who.groups),
    }
