"""The ``process`` runtime: ``Container`` replicas as local processes, supervised by driftmend.

Stage: *observe* and *act* in DESIGN.md. It starts replicas (``ensure``, ``restart``,
``scale``), stops them, reports their signals (``observe``), and turns process exits and
health-probe transitions into events for the loop. It never heals on its own: a replica that
was created and died stays dead until a policy's remedy (``container_restart``) runs, so the
controller's decision is recorded like every other fix.

State lives on disk, so a restarted controller adopts what still runs instead of starting it
twice::

    <state_dir>/containers/<namespace>.<name>/
        state.json         desired-replicas override, restarts, last exits, created/stopped
        replica-<i>.pid    {"pid", "create_time", "argv", "port", "started_at"}
        replica-<i>.log    the replica's stdout and stderr, appended

Replicas run in their own session (``start_new_session``) so they outlive the controller, and
so a stop signals the whole process group (PostgreSQL's backends, a shell's children).
Errors of the OS and of psutil are translated here into ``DriverError`` / ``PermanentError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from driftmend.drivers.base import EventSink
from driftmend.drivers.http_probe import probe_once
from driftmend.drivers.state_files import RuntimeState, read_json, resource_dir, write_json
from driftmend.errors import DriverError, PermanentError, RefusedError
from driftmend.keys import ResourceKey
from driftmend.model import Observation
from driftmend.signals import SignalValue
from driftmend.spec import Container, HealthProbe, ProcessSpec

log = logging.getLogger(__name__)

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


_PID_FILE = re.compile(r"^replica-(\d+)\.pid$")
_CREATE_TIME_SLACK = 0.5  # psutil's create_time is rounded to clock ticks
_KILL_WAIT = 5.0  # after SIGKILL, how long a process may take to be reaped
_CPU_MIN_INTERVAL = 0.5  # seconds between two CPU measurements of one replica
# After a restart, how long a new process must live to count as started: one that dies of
# its own startup error (bad config, port taken) is reported, not called alive.
_STARTUP_GRACE = 0.3


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


@dataclass
class _Exit:
    """How one replica's last process ended."""

    code: int | None  # None when unknown (an adopted process is not our child)
    at: float
    planned: bool  # driftmend stopped it (stop, restart, scale down): not a crash
    oom: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "at": self.at, "planned": self.planned, "oom": self.oom}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> _Exit:
        code = raw.get("code")
        return cls(
            code=int(code) if isinstance(code, int) else None,
            at=float(raw.get("at", 0.0)),
            planned=bool(raw.get("planned", False)),
            oom=bool(raw.get("oom", False)),
        )


@dataclass
class _State(RuntimeState):
    """What ``state.json`` holds for one Container: the shared fields, and the exits seen."""

    exits: dict[int, _Exit] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {
            "exits": {str(i): e.to_json() for i, e in sorted(self.exits.items())},
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> _State:
        exits = raw.get("exits")
        return cls(
            key=key,
            **cls.shared_fields(raw),
            exits={int(i): _Exit.from_json(e) for i, e in exits.items() if isinstance(e, dict)}
            if isinstance(exits, dict)
            else {},
        )


@dataclass
class _Replica:
    """One live (or just exited) process of a replica, and the tasks that watch it."""

    index: int
    pid: int
    create_time: float
    port: int | None
    started_at: float
    argv: list[str]
    ps: psutil.Process | None  # kept: cpu_percent measures between two calls on one object
    proc: asyncio.subprocess.Process | None = None  # None when adopted (not our child)
    children: dict[int, psutil.Process] = field(default_factory=dict)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False  # driftmend is stopping it: its exit is not a crash
    watcher: asyncio.Task[None] | None = None
    probe: asyncio.Task[None] | None = None
    probe_spec: HealthProbe | None = None
    failures: int = 0
    healthy: bool = True
    # A replica counts as healthy only once a probe has passed since it started, so that
    # verification after a restart waits for the app to answer, not just for a pid.
    probed_ok: bool = False
    cpu_percent: float = 0.0  # the last CPU measurement ...
    cpu_at: float = field(default_factory=time.monotonic)  # ... and when (the priming call)

    def pid_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "create_time": self.create_time,
            "argv": self.argv,
            "port": self.port,
            "started_at": self.started_at,
        }

    def processes(self) -> Iterator[psutil.Process]:
        """The replica's process and its descendants, reusing cached objects for CPU deltas."""
        if self.ps is None:
            return
        yield self.ps
        try:
            current = self.ps.children(recursive=True)
        except psutil.Error:
            return
        fresh: dict[int, psutil.Process] = {}
        for child in current:
            cached = self.children.get(child.pid)
            try:
                if cached is not None and cached.create_time() == child.create_time():
                    child = cached
            except psutil.Error:
                pass
            fresh[child.pid] = child
        self.children = fresh
        yield from fresh.values()


@dataclass
class _Usage:
    cpu_percent: float = 0.0
    rss: int = 0


@dataclass
class _Unit:
    """Everything the runtime holds for one Container key."""

    key: str
    dir: Path
    state: _State
    replicas: dict[int, _Replica] = field(default_factory=dict)  # live processes only
    spec: Container | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProcessRuntime:
    """Supervises ``Container`` replicas as local processes; implements ``ContainerRuntime``.

    ``base_dir`` is what a relative ``command[0]`` (one with a ``/``) and a relative
    ``workingDir`` resolve against; a bare command name is looked up on PATH. ``process.user``
    is honoured only when the controller runs as root (it cannot switch users otherwise); as
    another user the replica runs as that same user.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        base_dir: Path,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.2,
    ) -> None:
        # Absolute: supervised processes run in their own working directories, and paths we
        # hand them (DRIFTMEND_STATE_DIR, log files) must mean the same thing there.
        self._root = Path(state_dir).resolve() / "containers"
        self._base = Path(base_dir).resolve()
        self._clock = clock
        self._poll = poll_interval
        self._sink: EventSink = _no_sink
        self._units: dict[str, _Unit] = {}
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where exits and health transitions are reported: ``sink(key, "exit" | "health")``."""
        self._sink = sink

    async def start(self) -> None:
        """Adopt every replica recorded under the state directory that still runs."""
        if self._started:
            return
        self._started = True
        if not self._root.is_dir():
            return
        for state_file in sorted(self._root.glob("*/state.json")):
            if state_file.parent.is_symlink():
                continue  # the link left at a legacy name: its directory is globbed itself
            raw = read_json(state_file)
            key = ResourceKey.find(raw["key"]) if raw and isinstance(raw.get("key"), str) else None
            if key is not None and str(key) not in self._units:
                self._load(str(key), resource_dir(self._root, key))

    async def close(self) -> None:
        """Cancel every watcher and probe task; the supervised processes keep running."""
        tasks: list[asyncio.Task[None]] = []
        for unit in self._units.values():
            for r in unit.replicas.values():
                tasks.extend(t for t in (r.watcher, r.probe) if t is not None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._units.clear()
        self._started = False

    # -- the ContainerRuntime Protocol -----------------------------------------------------

    async def ensure(self, container: Container) -> list[str]:
        """Start the replicas that were never created; never restarts one that died."""
        unit = self._unit(container)
        done: list[str] = []
        async with unit.lock:
            if not unit.state.stopped:
                for i in range(self._desired(unit, container)):
                    if i not in unit.state.created and i not in unit.replicas:
                        r = await self._spawn(unit, container, i)
                        done.append(f"started {container.key} replica {i} (pid {r.pid})")
            self._sync_probes(unit, container)
        return done

    async def observe(self, container: Container) -> Observation:
        """The container's signals now (names and meanings in ``driftmend.signals``).

        ``exit_code``/``oom_killed`` describe the latest exit of a desired replica that is
        down (absent while all run); CPU and memory sum each replica and its descendants;
        the ``*_used_ratio`` signals exist only when the matching limit is declared.
        """
        unit = self._unit(container)
        self._reap_adopted(unit)
        self._sync_probes(unit, container)
        spec = container.spec
        desired = self._desired(unit, container)
        alive = dict(sorted(unit.replicas.items()))
        dead = [i for i in range(desired) if i not in alive]
        running = not dead and not unit.state.stopped

        usage = {i: self._usage(r) for i, r in alive.items()}
        signals: dict[str, SignalValue] = {
            "container.running": running,
            "container.replicas_running": len(alive),
            "container.replicas_desired": desired,
            "container.restarts": sum(unit.state.restarts.values()),
            "container.cpu_percent": round(sum(u.cpu_percent for u in usage.values()), 2),
            "container.memory_bytes": sum(u.rss for u in usage.values()),
        }
        last = self._last_exit(unit, dead)
        signals["container.exit_code"] = last.code if last is not None else None
        signals["container.oom_killed"] = last.oom if last is not None else False
        if spec.health is None:
            signals["container.healthy"] = True
            signals["container.health_failures"] = 0
        else:
            threshold = spec.health.failure_threshold
            worst = max((r.failures for r in alive.values()), default=0)
            # None until every replica's first probe has passed (or enough have failed):
            # "not known yet" is neither a drift nor a successful verification.
            healthy: bool | None = running and worst < threshold
            if healthy and not all(r.probed_ok for r in alive.values()):
                healthy = None
            signals["container.healthy"] = healthy
            signals["container.health_failures"] = worst
        if spec.limits.cpu is not None:
            worst_cpu = max((u.cpu_percent for u in usage.values()), default=0.0)
            signals["container.cpu_used_ratio"] = round(worst_cpu / 100.0 / spec.limits.cpu, 4)
        if spec.limits.memory is not None:
            worst_rss = max((u.rss for u in usage.values()), default=0)
            signals["container.memory_used_ratio"] = round(worst_rss / spec.limits.memory, 4)

        facts = {
            "pids": ",".join(str(r.pid) for r in alive.values()),
            "ports": ",".join(str(r.port) for r in alive.values() if r.port is not None),
        }
        exits = list(unit.state.exits.values())
        if exits:
            latest = max(exits, key=lambda e: e.at)
            facts["last_exit_at"] = datetime.fromtimestamp(latest.at, UTC).isoformat()
            facts["last_exit_reason"] = _exit_reason(latest)
        if unit.state.stopped:
            facts["stopped"] = "true"
        return Observation(key=container.key, at=self._clock(), signals=signals, facts=facts)

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """Stop (stopSignal, SIGKILL after stopTimeout) and start again; a dead one just starts.

        Returns ``{"replicas": [...], "old_pids": [...], "new_pids": [...], "alive": [...]}``
        in replica order; ``alive`` is False for a new process that exited during its first
        moments (``_STARTUP_GRACE``), which the next observation reports as an exit.
        """
        unit = self._unit(container)
        desired = self._desired(unit, container)
        if replica is not None and replica not in range(desired) and replica not in unit.replicas:
            raise PermanentError(
                f"{container.key} runs {desired} replica(s), numbered from 0; "
                f"there is no replica {replica}"
            )
        targets = [replica] if replica is not None else list(range(desired))
        old: list[int | None] = []
        new: list[int] = []
        alive: list[bool] = []
        async with unit.lock:
            unit.state.stopped = False
            for i in targets:
                current = unit.replicas.get(i)
                old.append(current.pid if current else None)
                if current is not None:
                    await self._terminate(unit, current, _process_spec(container))
                unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                started = await self._spawn(unit, container, i)
                new.append(started.pid)
                alive.append(not await self._wait_exit(unit, started, _STARTUP_GRACE))
            self._sync_probes(unit, container)
        return {"replicas": targets, "old_pids": old, "new_pids": new, "alive": alive}

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose; they stay stopped until ``restart`` or ``scale``."""
        unit = self._unit(container)
        async with unit.lock:
            unit.state.stopped = True
            self._save(unit)
            stopped = await self._terminate_all(unit, _process_spec(container))
        return {"stopped": stopped}

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Start every desired replica that is not running (after ``stop``); others are left."""
        unit = self._unit(container)
        started: list[dict[str, Any]] = []
        async with unit.lock:
            unit.state.stopped = False
            self._save(unit)
            for i in range(self._desired(unit, container)):
                if i not in unit.replicas:
                    r = await self._spawn(unit, container, i)
                    started.append({"replica": i, "pid": r.pid})
            self._sync_probes(unit, container)
        return {"started": started}

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Run exactly ``replicas`` replicas on ports port+i; the override persists on disk.

        The override holds while ``spec.replicas`` keeps the value it had when ``scale`` was
        called: an edited spec is a newer wish than an older scale.
        """
        cap = container.spec.max_replicas
        if not 0 <= replicas <= cap:
            raise PermanentError(
                f"cannot scale {container.key} to {replicas}: allowed 0..{cap} "
                "(raise spec.maxReplicas to allow more)"
            )
        unit = self._unit(container)
        started: list[int] = []
        stopped: list[dict[str, Any]] = []
        async with unit.lock:
            unit.state.scale, unit.state.scale_base = replicas, container.spec.replicas
            unit.state.stopped = False
            self._save(unit)
            for i in sorted(unit.replicas, reverse=True):
                if i >= replicas:
                    r = unit.replicas[i]
                    how = await self._terminate(unit, r, _process_spec(container))
                    stopped.append({"replica": i, "pid": r.pid, "how": how})
            # Replicas scaled away are forgotten: raising the count later starts them afresh.
            for i in [i for i in unit.state.created if i >= replicas]:
                unit.state.created.discard(i)
                unit.state.exits.pop(i, None)
            for i in range(replicas):
                if i not in unit.replicas:
                    await self._spawn(unit, container, i)
                    started.append(i)
            self._save(unit)
            self._sync_probes(unit, container)
        return {"replicas": replicas, "started": started, "stopped": stopped}

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per replica: pid, port, CPU, memory, uptime, restarts, last exit."""
        unit = self._unit(container)
        self._reap_adopted(unit)
        now = self._clock()
        out: list[dict[str, Any]] = []
        desired = self._desired(unit, container)
        for i in sorted(set(range(desired)) | set(unit.replicas)):
            r = unit.replicas.get(i)
            row: dict[str, Any] = {
                "replica": i,
                "running": r is not None,
                "restarts": unit.state.restarts.get(i, 0),
            }
            if r is not None:
                usage = self._usage(r)
                row |= {
                    "pid": r.pid,
                    "port": r.port,
                    "cpu_percent": round(usage.cpu_percent, 2),
                    "memory_bytes": usage.rss,
                    "uptime_seconds": round(max(0.0, now - r.started_at), 1),
                    "adopted": r.proc is None,
                    "health_failures": r.failures,
                }
            ex = unit.state.exits.get(i)
            if ex is not None:
                row["last_exit"] = {"code": ex.code, "at": ex.at, "reason": _exit_reason(ex)}
            out.append(row)
        return {"key": container.key, "replicas": out}

    def log_files(self, container: Container) -> Sequence[str]:
        """``replica-<i>.log`` of every desired replica, and of any other that left a log."""
        unit = self._units.get(container.key)
        if unit is None:
            # Synchronous and maybe outside the loop: read the state, adopt nothing.
            directory = self._dir(container)
            raw = read_json(directory / "state.json")
            unit = _Unit(container.key, directory, _State.from_json(container.key, raw or {}))
        indexes = set(range(self._desired(unit, container))) | set(unit.replicas)
        with contextlib.suppress(OSError):
            for path in unit.dir.glob("replica-*.log"):
                with contextlib.suppress(ValueError):
                    indexes.add(int(path.stem.removeprefix("replica-")))
        return [str(unit.dir / f"replica-{i}.log") for i in sorted(indexes)]

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        """Refused: a local process has no CPU or memory limit to update."""
        raise RefusedError(
            f"{container.key} runs on the process runtime, which cannot enforce CPU or memory "
            "limits (spec.limits are only watched as signals there); restart or scale it "
            "instead, or run it with runtime: docker"
        )

    async def down(self, container: Container) -> dict[str, Any]:
        """Stop every replica for good and forget the container's state (logs are kept)."""
        unit = self._unit(container)
        async with unit.lock:
            unit.state.stopped = True
            stopped = await self._terminate_all(unit, _process_spec(container))
            for r in list(unit.replicas.values()):
                self._cancel_tasks(r)
            with contextlib.suppress(FileNotFoundError):
                (unit.dir / "state.json").unlink()
            for pid_file in unit.dir.glob("replica-*.pid"):
                pid_file.unlink(missing_ok=True)
            self._units.pop(unit.key, None)
        return {"stopped": stopped}

    # -- units and state -------------------------------------------------------------------

    def _unit(self, container: Container) -> _Unit:
        """The unit of ``container``, loaded (and its live replicas adopted) on first use."""
        unit = self._units.get(container.key)
        if unit is None:
            unit = self._load(container.key, self._dir(container))
        unit.spec = container
        return unit

    def _dir(self, container: Container) -> Path:
        return resource_dir(self._root, container.resource_key)

    def _load(self, key: str, directory: Path) -> _Unit:
        """Read state.json and the pid files; adopt live processes, record stale ones as exits.

        Synchronous on purpose: no other task can see a half-loaded unit.
        """
        raw = read_json(directory / "state.json")
        state = _State.from_json(key, raw) if raw else _State(key)
        unit = _Unit(key, directory, state)
        self._units[key] = unit
        lost: list[int] = []
        if directory.is_dir():
            for pid_file in sorted(directory.glob("replica-*.pid")):
                m = _PID_FILE.match(pid_file.name)
                if m is None:
                    continue
                index = int(m.group(1))
                r = self._adopt(index, read_json(pid_file))
                state.created.add(index)  # a pid file means it was started once
                if r is None:
                    pid_file.unlink(missing_ok=True)
                    state.exits[index] = _Exit(code=None, at=self._clock(), planned=False)
                    lost.append(index)
                    continue
                unit.replicas[index] = r
                r.watcher = asyncio.get_running_loop().create_task(
                    self._watch_adopted(unit, r), name=f"watch {key} replica {index}"
                )
        if lost or (raw is None and unit.replicas):
            self._save(unit)
        if lost:
            log.info("%s: replicas %s died while nobody watched", key, lost)
            self._sink(key, "exit")
        return unit

    def _adopt(self, index: int, raw: dict[str, Any] | None) -> _Replica | None:
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
            ps.cpu_percent(None)  # prime the CPU measurement
        except (KeyError, TypeError, ValueError, psutil.Error):
            return None
        port = raw.get("port")
        return _Replica(
            index=index,
            pid=pid,
            create_time=recorded,
            port=port if isinstance(port, int) else None,
            started_at=float(raw.get("started_at", recorded)),
            argv=[str(a) for a in raw.get("argv", [])],
            ps=ps,
        )

    def _save(self, unit: _Unit) -> None:
        write_json(unit.key, unit.dir / "state.json", unit.state.to_json())

    def _desired(self, unit: _Unit, container: Container) -> int:
        s = unit.state
        if s.scale is not None and s.scale_base == container.spec.replicas:
            return min(s.scale, container.spec.max_replicas)
        return container.spec.replicas

    @staticmethod
    def _last_exit(unit: _Unit, dead: list[int]) -> _Exit | None:
        exits = [unit.state.exits[i] for i in dead if i in unit.state.exits]
        return max(exits, key=lambda e: e.at) if exits else None

    # -- starting --------------------------------------------------------------------------

    async def _spawn(self, unit: _Unit, container: Container, index: int) -> _Replica:
        """Start replica ``index``; returns once the process exists."""
        spec = container.spec
        proc_spec = _process_spec(container)
        port = spec.port + index if spec.port is not None else None
        argv = self._argv(container)
        cwd = self._cwd(container)
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
                kwargs = self._as_user(container, unit.dir, log_path, env)
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

        started_at = self._clock()
        ps: psutil.Process | None
        try:
            ps = psutil.Process(proc.pid)
            create_time = ps.create_time()
            ps.cpu_percent(None)  # prime the CPU measurement
        except psutil.Error:
            # Already exited and reaped (a command that fails at once): the watcher records it.
            ps, create_time = None, time.time()
        r = _Replica(index, proc.pid, create_time, port, started_at, argv, ps, proc=proc)
        unit.replicas[index] = r
        unit.state.created.add(index)
        write_json(unit.key, unit.dir / f"replica-{index}.pid", r.pid_json())
        self._save(unit)
        r.watcher = asyncio.get_running_loop().create_task(
            self._watch_child(unit, r), name=f"watch {unit.key} replica {index}"
        )
        log.info("%s: started replica %d (pid %d)", unit.key, index, r.pid)
        return r

    def _argv(self, container: Container) -> list[str]:
        """argv with command[0] resolved: relative paths against base_dir, bare names on PATH."""
        command = list(_process_spec(container).command)
        exe = command[0]
        where = "spec.process.command[0]"
        if "/" in exe:
            path = Path(exe) if os.path.isabs(exe) else self._base / exe
            if not path.is_file():
                raise DriverError(
                    f"{container.key}: command {exe!r} not found (looked for {path}); "
                    f"fix {where} (relative paths resolve against {self._base})"
                )
            if not os.access(path, os.X_OK):
                raise DriverError(
                    f"{container.key}: command {path} is not executable; chmod +x it or fix {where}"
                )
            command[0] = str(path)
            return command
        env_path = _process_spec(container).env.get("PATH", os.environ.get("PATH", os.defpath))
        found = shutil.which(exe, path=env_path)
        if found is None:
            raise DriverError(
                f"{container.key}: command {exe!r} not found on PATH; install it or give its "
                f"full path in {where}"
            )
        command[0] = found
        return command

    def _cwd(self, container: Container) -> str:
        raw = _process_spec(container).working_dir
        cwd = self._base if raw is None else Path(raw)
        if not cwd.is_absolute():
            cwd = self._base / cwd
        if not cwd.is_dir():
            raise DriverError(
                f"{container.key}: working directory {cwd} does not exist; "
                f"fix spec.process.workingDir (relative paths resolve against {self._base})"
            )
        return str(cwd)

    def _as_user(
        self, container: Container, directory: Path, log_path: Path, env: dict[str, str]
    ) -> dict[str, Any]:
        """Popen arguments that run the replica as ``process.user``; its files become its own."""
        name = _process_spec(container).user
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
            raise DriverError(
                f"{container.key}: cannot chown {directory} to {name}: {exc}"
            ) from exc
        for var, value in (("HOME", pw.pw_dir), ("USER", name), ("LOGNAME", name)):
            if var not in _process_spec(container).env:
                env[var] = value
        return {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            # Without this the child would keep root's supplementary groups.
            "extra_groups": os.getgrouplist(name, pw.pw_gid),
        }

    # -- watching --------------------------------------------------------------------------

    async def _watch_child(self, unit: _Unit, r: _Replica) -> None:
        """Wait for our own child to exit: an event, with its real exit code."""
        assert r.proc is not None
        code = await r.proc.wait()
        self._on_exit(unit, r, code)

    async def _watch_adopted(self, unit: _Unit, r: _Replica) -> None:
        """Poll a process that is not our child (adopted): its exit code cannot be known."""
        # Not our child: no wait() to await, so poll (pid and create time, zombie or not).
        while _alive(r.ps):  # noqa: ASYNC110 - there is no event to wait on
            await asyncio.sleep(self._poll)
        self._on_exit(unit, r, None)

    def _reap_adopted(self, unit: _Unit) -> None:
        """Level-triggered check of adopted replicas, so an observe never waits for a poll."""
        for r in list(unit.replicas.values()):
            if r.proc is None and not r.exited.is_set() and not _alive(r.ps):
                self._on_exit(unit, r, None)

    def _on_exit(self, unit: _Unit, r: _Replica, code: int | None) -> None:
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
        unit.state.exits[r.index] = _Exit(code=code, at=self._clock(), planned=r.stopping)
        try:
            self._save(unit)
        except DriverError as exc:
            log.warning("%s", exc)
        if r.stopping:
            return
        log.info("%s: replica %d (pid %d) exited with %s", unit.key, r.index, r.pid, code)
        self._sink(unit.key, "exit")

    # -- stopping --------------------------------------------------------------------------

    async def _terminate(self, unit: _Unit, r: _Replica, spec: ProcessSpec) -> str:
        """Stop one replica's process group: stopSignal, stopTimeout, then SIGKILL.

        Returns ``"stopped"`` or ``"killed"``. The exit is recorded as planned (no event).
        """
        r.stopping = True
        how = "stopped"
        if not r.exited.is_set():
            _signal_group(unit.key, r, signal.Signals[spec.stop_signal])
            if not await self._wait_exit(unit, r, spec.stop_timeout):
                how = "killed"
                _signal_group(unit.key, r, signal.SIGKILL)
                if not await self._wait_exit(unit, r, _KILL_WAIT):
                    raise DriverError(
                        f"{unit.key}: replica {r.index} (pid {r.pid}) survived SIGKILL for "
                        f"{_KILL_WAIT:g}s; it may be stuck in the kernel (state D): check `ps`"
                    )
        # The leader is gone; members of its group left behind (a shell's children) would
        # keep the port busy for the next replica.
        with contextlib.suppress(OSError):
            os.killpg(r.pid, signal.SIGKILL)
        self._cancel_tasks(r)
        return how

    async def _terminate_all(self, unit: _Unit, spec: ProcessSpec) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in sorted(unit.replicas, reverse=True):
            r = unit.replicas[i]
            how = await self._terminate(unit, r, spec)
            out.append({"replica": i, "pid": r.pid, "how": how})
        return out

    async def _wait_exit(self, unit: _Unit, r: _Replica, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                await r.exited.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _cancel_tasks(r: _Replica) -> None:
        for task in (r.watcher, r.probe):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    # -- health probes ---------------------------------------------------------------------

    def _sync_probes(self, unit: _Unit, container: Container) -> None:
        """One probe task per live replica while the spec declares a probe; none otherwise."""
        probe = container.spec.health
        for r in unit.replicas.values():
            if r.probe is not None and (r.probe_spec != probe or r.probe.done()):
                r.probe.cancel()
                r.probe, r.failures, r.healthy = None, 0, True
            if probe is not None and r.probe is None and not r.exited.is_set():
                r.probe_spec = probe
                r.probe = asyncio.get_running_loop().create_task(
                    self._probe_loop(unit, r, probe), name=f"probe {unit.key} replica {r.index}"
                )

    async def _probe_loop(self, unit: _Unit, r: _Replica, probe: HealthProbe) -> None:
        port = probe.http.port or r.port
        url = f"http://127.0.0.1:{port}{probe.http.path}" if port else None
        if probe.initial_delay > 0:
            await asyncio.sleep(probe.initial_delay)
        # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
        async with httpx.AsyncClient(timeout=probe.timeout, trust_env=False) as client:
            while not r.exited.is_set():
                ok = url is not None and await probe_once(client, url)
                # Before its first pass, within its start-up window, a replica that does not
                # answer yet is starting, not failing (its health stays "not known yet").
                starting = not r.probed_ok and self._clock() - r.started_at < probe.startup_timeout
                if ok or not starting:
                    self._record_probe(unit, r, ok, probe.failure_threshold)
                await asyncio.sleep(probe.interval)

    def _record_probe(self, unit: _Unit, r: _Replica, ok: bool, threshold: int) -> None:
        if ok:
            r.failures = 0
            r.probed_ok = True
            if not r.healthy:
                r.healthy = True
                log.info("%s: replica %d is healthy again", unit.key, r.index)
                self._sink(unit.key, "health")
            return
        r.failures += 1
        if r.healthy and r.failures >= threshold:
            r.healthy = False
            log.info("%s: replica %d failed %d probes in a row", unit.key, r.index, r.failures)
            self._sink(unit.key, "health")

    # -- usage -----------------------------------------------------------------------------

    @staticmethod
    def _usage(r: _Replica) -> _Usage:
        """CPU percent and RSS of a replica and its descendants.

        CPU is measured between two calls; calls closer than ``_CPU_MIN_INTERVAL`` reuse the
        last measurement, since a few milliseconds of CPU time is mostly rounding noise.
        """
        usage = _Usage()
        now = time.monotonic()
        measure = now - r.cpu_at >= _CPU_MIN_INTERVAL
        for p in r.processes():
            try:
                with p.oneshot():
                    if measure:
                        usage.cpu_percent += p.cpu_percent(None)
                    usage.rss += p.memory_info().rss
            except psutil.Error:
                continue  # exited or unreadable between listing and reading
        if measure:
            r.cpu_at, r.cpu_percent = now, usage.cpu_percent
        usage.cpu_percent = r.cpu_percent
        return usage


def _process_spec(container: Container) -> ProcessSpec:
    """``spec.process``, which validation guarantees for ``runtime: process``."""
    if container.spec.process is None:
        # Only reachable when a docker Container is handed to this runtime by mistake.
        raise PermanentError(
            f"{container.key}: the process runtime needs spec.process (runtime is "
            f"{container.spec.runtime})"
        )
    return container.spec.process


def _alive(ps: psutil.Process | None) -> bool:
    """True while the very process (same pid and create time) runs and is not a zombie."""
    if ps is None:
        return False
    try:
        return ps.is_running() and ps.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(key: str, r: _Replica, sig: signal.Signals) -> None:
    """Signal the replica's process group, or the process alone if it left its group."""
    try:
        if not _alive(r.ps):
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


def _exit_reason(e: _Exit) -> str:
    """Words for how a process ended, for facts, stats and the LLM prompt."""
    who = "stopped by driftmend" if e.planned else "exited"
    if e.code is None:
        return f"{who} (exit code unknown: the process was adopted, not our child)"
    if e.code < 0:
        try:
            name = signal.Signals(-e.code).name
        except ValueError:
            name = f"signal {-e.code}"
        if e.code == -signal.SIGKILL and not e.planned:
            return f"killed by {name}, not by driftmend (the OOM killer or an operator)"
        return f"{who} by {name}"
    return f"{who} with code {e.code}"
