"""Starting one replica as a local process: its command, directory, user and environment.

Stage: *act*. ``spawn`` resolves ``spec.process`` against the runtime's base directory,
opens the replica's log, starts the process in its own session (so it outlives the
controller, and a stop signals its whole group) and records it in ``replica-<i>.pid``.
OS errors are translated here into ``DriverError`` / ``PermanentError``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from driftmend.drivers.process.unit import Replica, Unit
from driftmend.drivers.state_files import write_json
from driftmend.errors import DriverError, PermanentError
from driftmend.spec import Container, ProcessSpec

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

# What a supervised process inherits of the controller's environment: what a program needs
# to run (where binaries are, locale, time zone, a home and a temp directory), nothing
# else. Above all not the controller's secrets (GEMINI_API_KEY, DRIFTMEND_*_TOKEN, cloud
# credentials): like a container, a process gets the rest from its spec's `env`.
INHERITED_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR"}
)


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
    unit: Unit, container: Container, index: int, base: Path, clock: Callable[[], float]
) -> Replica:
    """Start replica ``index`` and record it (unit, pid file, state); returns once it exists.

    The caller watches it: nothing here waits for the process.
    """
    spec = container.spec
    proc_spec = process_spec(container)
    port = spec.port + index if spec.port is not None else None
    argv = resolve_argv(container, base)
    cwd = resolve_cwd(container, base)
    env = {
        **child_environment(os.environ),
        **proc_spec.env,
        "DRIFTMEND_STATE_DIR": str(unit.dir),
    }
    if spec.port_env and port is not None:
        env[spec.port_env] = str(port)
    log_path = unit.dir / f"replica-{index}.log"
    kwargs: dict[str, Any] = {}
    try:
        unit.dir.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise DriverError(
            f"{container.key}: cannot open {log_path}: {exc.strerror or exc}; "
            "check that the state directory is writable"
        ) from exc
    try:
        if proc_spec.user and os.geteuid() == 0:
            kwargs = as_user(container, unit.dir, log_path, env)
        elif proc_spec.user:
            # Only root can switch users; as anyone else the replica runs as we do.
            log.info("%s: ignoring user %r: driftmend is not root", unit.key, proc_spec.user)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # outlive the controller; signal the whole group
                **kwargs,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise DriverError(
                f"{container.key}: cannot start replica {index} ({' '.join(argv)}): {exc}; "
                "check spec.process.command, workingDir and user"
            ) from exc
    finally:
        os.close(log_fd)

    started_at = clock()
    ps: psutil.Process | None
    try:
        ps = psutil.Process(proc.pid)
        create_time = ps.create_time()
        ps.cpu_percent(None)  # prime the CPU measurement
    except psutil.Error:
        # Already exited and reaped (a command that fails at once): the watcher records it.
        ps, create_time = None, time.time()
    r = Replica(index, proc.pid, create_time, port, started_at, argv, ps, proc=proc)
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
            raise DriverError(
                f"{container.key}: command {exe!r} not found (looked for {path}); "
                f"fix {where} (relative paths resolve against {base})"
            )
        if not os.access(path, os.X_OK):
            raise DriverError(
                f"{container.key}: command {path} is not executable; chmod +x it or fix {where}"
            )
        command[0] = str(path)
        return command
    env_path = process_spec(container).env.get("PATH", os.environ.get("PATH", os.defpath))
    found = shutil.which(exe, path=env_path)
    if found is None:
        raise DriverError(
            f"{container.key}: command {exe!r} not found on PATH; install it or give its "
            f"full path in {where}"
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
        raise DriverError(
            f"{container.key}: working directory {cwd} does not exist; "
            f"fix spec.process.workingDir (relative paths resolve against {base})"
        )
    return str(cwd)


def as_user(
    container: Container, directory: Path, log_path: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Popen arguments that run the replica as ``process.user``; its files become its own."""
    name = process_spec(container).user
    assert name is not None
    try:
        pw = pwd.getpwnam(name)
    except KeyError as exc:
        raise PermanentError(
            f"{container.key}: user {name!r} does not exist; create it or fix spec.process.user"
        ) from exc
    try:
        # The replica may write under DRIFTMEND_STATE_DIR and must append to its log.
        os.chown(directory, pw.pw_uid, pw.pw_gid)
        os.chown(log_path, pw.pw_uid, pw.pw_gid)
    except OSError as exc:
        raise DriverError(f"{container.key}: cannot chown {directory} to {name}: {exc}") from exc
    for var, value in (("HOME", pw.pw_dir), ("USER", name), ("LOGNAME", name)):
        if var not in process_spec(container).env:
            env[var] = value
    return {
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        # Without this the child would keep root's supplementary groups.
        "extra_groups": os.getgrouplist(name, pw.pw_gid),
    }
