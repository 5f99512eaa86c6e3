"""``ProcessRuntime``: the ``ContainerRuntime`` of ``runtime: process``, built from this package.

Stage: *observe* and *act*. The facade the router and the tools call: it keeps one unit
per Container (its lock, state and live replicas), starts replicas (``spawn.py``), has the
``Supervisor`` watch and stop them (``supervision.py``) and probe them (``probes.py``), and
reports their signals. It never heals on its own: a replica that was created and died stays
dead until a policy's remedy (``container_restart``) runs, so the controller's decision is
recorded like every other fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftmend.drivers.base import EventSink, StartFailureSink, no_revisions
from driftmend.drivers.process.access import DEFAULT_WORK_ROOT, work_dir
from driftmend.drivers.process.exits import use_pidfd_child_watcher
from driftmend.drivers.process.probes import sync_probes
from driftmend.drivers.process.spawn import Placement, SpawnError, process_spec, spawn
from driftmend.drivers.process.starts import Starts, start_facts
from driftmend.drivers.process.state import ProcessState, exit_reason
from driftmend.drivers.process.strays import StrayIndex, stop_strays
from driftmend.drivers.process.supervision import Supervisor, wait_exit
from driftmend.drivers.process.unit import Replica, Unit, measure_usage
from driftmend.drivers.state_files import log_paths, log_tail, read_json, resource_dir
from driftmend.errors import DriverError, PermanentError, RefusedError
from driftmend.keys import ResourceKey
from driftmend.model import Observation
from driftmend.signals import SignalValue
from driftmend.spec import Container

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

# After a restart, how long a new process must live to count as started: one that dies of
# its own startup error (bad config, port taken) is reported, not called alive. One that
# passes its health probe sooner has started (a later exit fails the fix's verification).
STARTUP_GRACE = 0.3


class ProcessRuntime:
    """Supervises ``Container`` replicas as local processes; implements ``ContainerRuntime``.

    ``base_dir`` is what a relative ``command[0]`` (one with a ``/``) and a relative
    ``workingDir`` resolve against; a bare command name is looked up on PATH. ``process.user``
    is honoured only when the controller runs as root (it cannot switch users otherwise); as
    another user the replica runs as that same user. What such a replica cannot reach (its
    command, its state directory) it gets under ``work_root`` (``access.py``).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        base_dir: Path,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.2,
        work_root: Path = DEFAULT_WORK_ROOT,
    ) -> None:
        # Absolute: supervised processes run in their own working directories, and paths we
        # hand them (DRIFTMEND_STATE_DIR, log files) must mean the same thing there.
        self.state_dir = Path(state_dir).resolve()
        self._root = self.state_dir / "containers"
        self._base = Path(base_dir).resolve()
        self._placement = Placement(Path(work_root).resolve(), self._root.parent)
        self._clock = clock
        self._supervisor = Supervisor(clock, poll_interval)
        self._starts = Starts(clock)
        self._supervisor.exited = self._starts.exited
        self._units: dict[str, Unit] = {}
        self._started = False
        # One scan of the process table for a `down` of many Containers (strays.py).
        self._strays = StrayIndex()

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where exits and health transitions are reported: ``sink(key, "exit" | "health")``."""
        self._supervisor.sink = sink

    def set_start_failure_sink(self, sink: StartFailureSink) -> None:
        """Where each replica that fails to start is counted: ``sink(kind, reason)``."""
        self._starts.sink = sink

    async def start(self) -> None:
        """Adopt every replica recorded under the state directory that still runs."""
        if self._started:
            return
        self._started = True
        use_pidfd_child_watcher()  # no thread per replica (Python 3.11)
        if not self._root.is_dir():
            return
        for state_file in sorted(self._root.glob("*/state.json")):
            if state_file.parent.is_symlink():
                continue  # the link left at a legacy name: its directory is globbed itself
            raw = read_json(state_file)
            key = ResourceKey.find(raw["key"]) if raw and isinstance(raw.get("key"), str) else None
            if key is not None and str(key) not in self._units:
                self._supervisor.load(str(key), resource_dir(self._root, key), self._units)

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
        """Start the replicas that were never created; never restarts one that died.

        A replica that cannot be started is not an error of the pass: its start error is
        kept for the observation to report, and it is tried again after a growing delay.
        """
        unit = self._unit(container)
        done: list[str] = []
        async with unit.lock:
            if not unit.state.stopped:
                for i in range(unit.desired(container)):
                    if i in unit.state.created or i in unit.replicas:
                        continue
                    if not self._starts.may_try(unit, i):
                        continue
                    try:
                        r = await self._spawn(unit, container, i)
                    except (DriverError, PermanentError):
                        continue  # recorded by _spawn; the observation says why
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
        self._supervisor.reap_adopted(unit)
        self._sync_probes(unit, container)
        self._starts.check(unit)
        spec = container.spec
        desired = unit.desired(container)
        alive = dict(sorted(unit.replicas.items()))
        dead = [i for i in range(desired) if i not in alive]
        running = not dead and not unit.state.stopped

        usage = {i: measure_usage(r) for i, r in alive.items()}
        signals: dict[str, SignalValue] = {
            "container.running": running,
            "container.replicas_running": len(alive),
            "container.replicas_desired": desired,
            "container.restarts": sum(unit.state.restarts.values()),
            "container.cpu_percent": round(sum(u.cpu_percent for u in usage.values()), 2),
            "container.memory_bytes": sum(u.rss for u in usage.values()),
        }
        last = unit.last_exit(dead)
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
            facts["last_exit_reason"] = exit_reason(latest)
        if unit.state.stopped:
            facts["stopped"] = "true"
        why, error = start_facts(unit, range(desired))
        facts |= why
        work = self._work_dir(unit)
        if work.is_dir():
            facts["work_dir"] = str(work)
        return Observation(
            key=container.key, at=self._clock(), signals=signals, facts=facts, error=error
        )

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """Stop (stopSignal, SIGKILL after stopTimeout) and start again; a dead one just starts.

        Returns ``{"replicas": [...], "old_pids": [...], "new_pids": [...], "alive": [...],
        "died": [...]}`` in replica order; ``alive`` is False for a new process that exited
        during its first moments (``STARTUP_GRACE``), and ``died`` says how each of those
        ended (replica, pid, seconds it lived, exit reason, last log lines).
        """
        unit = self._unit(container)
        desired = unit.desired(container)
        if replica is not None and replica not in range(desired) and replica not in unit.replicas:
            raise PermanentError(
                f"{container.key} runs {desired} replica(s), numbered from 0; "
                f"there is no replica {replica}"
            )
        targets = [replica] if replica is not None else list(range(desired))
        old: list[int | None] = []
        new: list[int] = []
        alive: list[bool] = []
        died: list[dict[str, Any]] = []
        async with unit.lock:
            unit.state.stopped = False
            for i in targets:
                current = unit.replicas.get(i)
                old.append(current.pid if current else None)
                if current is not None:
                    await self._supervisor.terminate(unit, current, process_spec(container))
                unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                started = await self._spawn(unit, container, i)
                new.append(started.pid)
                self._sync_probes(unit, container)
                alive.append(not await wait_exit(started, STARTUP_GRACE, unless=started.answered))
                if not alive[-1]:
                    died.append(self._death(unit, started))
            self._sync_probes(unit, container)
        return {"replicas": targets, "old_pids": old, "new_pids": new, "alive": alive, "died": died}

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose; they stay stopped until ``restart`` or ``scale``."""
        unit = self._unit(container)
        async with unit.lock:
            unit.state.stopped = True
            unit.save()
            stopped = await self._supervisor.terminate_all(unit, process_spec(container))
        return {"stopped": stopped}

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Start every desired replica that is not running (after ``stop``); others are left."""
        unit = self._unit(container)
        started: list[dict[str, Any]] = []
        async with unit.lock:
            unit.state.stopped = False
            unit.save()
            for i in range(unit.desired(container)):
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
            unit.save()
            for i in sorted(unit.replicas, reverse=True):
                if i >= replicas:
                    r = unit.replicas[i]
                    how = await self._supervisor.terminate(unit, r, process_spec(container))
                    stopped.append({"replica": i, "pid": r.pid, "how": how})
            # Replicas scaled away are forgotten: raising the count later starts them afresh.
            for i in [i for i in unit.state.created if i >= replicas]:
                unit.state.created.discard(i)
                unit.state.exits.pop(i, None)
            for i in range(replicas):
                if i not in unit.replicas:
                    await self._spawn(unit, container, i)
                    started.append(i)
            unit.save()
            self._sync_probes(unit, container)
        return {"replicas": replicas, "started": started, "stopped": stopped}

    async def rollback(self, container: Container) -> dict[str, Any]:
        """Refused: the process runtime keeps no revisions to go back to."""
        raise no_revisions(container)

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per replica: pid, port, CPU, memory, uptime, restarts, last exit."""
        unit = self._unit(container)
        self._supervisor.reap_adopted(unit)
        now = self._clock()
        out: list[dict[str, Any]] = []
        desired = unit.desired(container)
        for i in sorted(set(range(desired)) | set(unit.replicas)):
            r = unit.replicas.get(i)
            row: dict[str, Any] = {
                "replica": i,
                "running": r is not None,
                "restarts": unit.state.restarts.get(i, 0),
            }
            if r is not None:
                usage = measure_usage(r)
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
                row["last_exit"] = {"code": ex.code, "at": ex.at, "reason": exit_reason(ex)}
            start_error = unit.state.start_errors.get(i)
            if start_error is not None:
                row["start_error"] = start_error.to_json()
            out.append(row)
        return {"key": container.key, "replicas": out}

    def log_files(self, container: Container) -> Sequence[str]:
        """``replica-<i>.log`` of every desired replica, and of any other that left a log."""
        unit = self._units.get(container.key)
        if unit is None:
            # Synchronous and maybe outside the loop: read the state, adopt nothing.
            directory = self._dir(container)
            raw = read_json(directory / "state.json")
            unit = Unit(container.key, directory, ProcessState.from_json(container.key, raw or {}))
        return log_paths(unit.dir, set(range(unit.desired(container))) | set(unit.replicas))

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
        """Stop every replica for good and forget the container's state (logs are kept).

        Processes of the Container that no pid file names (``strays.py``) are stopped too:
        whatever ``down`` leaves running would keep its port from the next start.
        """
        unit = self._unit(container)
        spec = process_spec(container)
        async with unit.lock:
            unit.state.stopped = True
            stopped = await self._supervisor.terminate_all(unit, spec)
            for r in list(unit.replicas.values()):
                r.cancel_tasks()
            strays = await stop_strays(
                unit.key, unit.dir, set(), signal.Signals[spec.stop_signal], spec.stop_timeout,
                self._strays,
            )  # fmt: skip
            # A replica run as another user out of reach of unit.dir was given its own
            # directory under the work root instead (access.py): its strays carry that one.
            own = self._work_dir(unit) / "data"
            if own.is_dir():
                strays += await stop_strays(
                    unit.key, own, set(), signal.Signals[spec.stop_signal], spec.stop_timeout,
                    self._strays,
                )  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                (unit.dir / "state.json").unlink()
            for pid_file in unit.dir.glob("replica-*.pid"):
                pid_file.unlink(missing_ok=True)
            self._forget_work(unit)
            self._units.pop(unit.key, None)
        return {"stopped": stopped, "strays": strays}

    # -- units ---------------------------------------------------------------------------

    def _unit(self, container: Container) -> Unit:
        """The unit of ``container``, loaded (and its live replicas adopted) on first use."""
        unit = self._units.get(container.key)
        if unit is None:
            unit = self._supervisor.load(container.key, self._dir(container), self._units)
        unit.spec = container
        return unit

    def _dir(self, container: Container) -> Path:
        return resource_dir(self._root, container.resource_key)

    async def _spawn(self, unit: Unit, container: Container, index: int) -> Replica:
        """Start replica ``index`` and watch it; returns once the process exists.

        A start that fails is recorded and counted (``starts.py``) before its error goes on.
        """
        try:
            r = await spawn(unit, container, index, self._base, self._clock, self._placement)
        except (DriverError, PermanentError) as exc:
            reason = exc.reason if isinstance(exc, SpawnError) else "other"
            command = " ".join(process_spec(container).command)
            self._starts.cannot_create(unit, index, reason, str(exc), command)
            raise
        self._supervisor.watch(unit, r)
        log.info("%s: started replica %d (pid %d)", unit.key, index, r.pid)
        return r

    def _death(self, unit: Unit, r: Replica) -> dict[str, Any]:
        """How a replica that died during its start ended: what ``restart`` reports of it."""
        ex = unit.state.exits.get(r.index)
        return {
            "replica": r.index,
            "pid": r.pid,
            "lived_seconds": round(max(0.0, ex.at - r.started_at), 3) if ex else None,
            "reason": exit_reason(ex) if ex else "exited",
            "log_tail": log_tail(unit.dir / f"replica-{r.index}.log"),
        }

    def _work_dir(self, unit: Unit) -> Path:
        """Where a replica run as another user gets what it cannot reach (``access.py``)."""
        return work_dir(self._placement.work_root, self._placement.state_root, unit.dir.name)

    def _forget_work(self, unit: Unit) -> None:
        """Remove the copies of commands made for ``unit``, and its work directories once
        empty; a directory of data a replica wrote is kept, like its logs."""
        work = self._work_dir(unit)
        shutil.rmtree(work / "bin", ignore_errors=True)
        for directory in (work, work.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def _sync_probes(self, unit: Unit, container: Container) -> None:
        sync_probes(unit, container, self._clock, self._supervisor.report)
