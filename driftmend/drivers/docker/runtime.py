"""``DockerRuntime``: the ``ContainerRuntime`` of ``runtime: docker``, built from this package.

Stage: *observe* and *act*. The facade the router and the tools call: it keeps one unit per
Container (its lock, state, probes, log followers), runs the engine's blocking calls
(``engine.py``) in a small thread pool, and turns engine events (``events.py``) and probe
transitions into events for the loop, on the loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from driftmend.drivers.base import EventSink
from driftmend.drivers.docker.configs import clone_config, create_config, outdated
from driftmend.drivers.docker.engine import Engine
from driftmend.drivers.docker.events import EventStream, PlannedStops, key_of, reason_of
from driftmend.drivers.docker.limits import check_limits, wanted_limits
from driftmend.drivers.docker.logs import ReplicaLogs
from driftmend.drivers.docker.observation import Readings, facts_of, signals_of, stopped_by_us
from driftmend.drivers.docker.probes import Probe, sync_probes
from driftmend.drivers.docker.replicas import (
    DockerReplica,
    Snapshot,
    docker_spec,
    exit_reason,
    human_bytes,
    seconds,
)
from driftmend.drivers.docker.state import DockerState, load_state, save_state
from driftmend.drivers.docker.stats import CpuReading, Sample, Sampler, cpu_percent
from driftmend.drivers.state_files import resource_dir
from driftmend.errors import DriverError, PermanentError
from driftmend.model import Observation
from driftmend.spec import Container

log = logging.getLogger(__name__)

T = TypeVar("T")

# After a restart, how long a new container must run to count as started: one that dies of
# its own startup error (bad command, port taken) is reported, not called alive.
STARTUP_GRACE = 0.3
_LOG_SAVE_EVERY = 5.0  # seconds between two saves of how far the logs were copied


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


@dataclass
class _Unit:
    """Everything the runtime holds for one Container key."""

    key: str
    dir: Path
    state: DockerState
    spec: Container | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    probes: dict[int, Probe] = field(default_factory=dict)
    cpu: dict[str, CpuReading] = field(default_factory=dict)  # by container id
    logs: ReplicaLogs = field(init=False)
    log_saved_at: float = 0.0  # when the log positions were last saved (monotonic)

    def __post_init__(self) -> None:
        self.logs = ReplicaLogs(self.dir, self.state.log_ns)


class DockerRuntime:
    """Runs ``Container`` replicas as Docker containers; implements ``ContainerRuntime``.

    A ``Container`` names its containers in one of three ways (``spec.docker``):

    - ``image``: driftmend creates replica ``i`` as ``driftmend-<namespace>.<name>-<i>``,
      labelled ``driftmend.key`` / ``driftmend.replica``; images are never pulled.
    - ``containerName``: one existing container, watched and restarted.
    - ``compose``: the containers of a Compose service in one project; replica ``i`` is
      container number ``i + 1``, and scaling up clones the service's own container config.

    It never heals on its own: a replica that died stays dead until a policy's remedy runs,
    so the controller's decision is recorded like every fix. Construction touches nothing:
    the engine is reached on the first call that needs it, so a controller whose specs name
    no Docker container never connects. ``base_url`` defaults to Docker's own convention
    (``DOCKER_HOST``, else the local socket).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        workers: int = 8,
    ) -> None:
        self._root = Path(state_dir).resolve() / "docker"
        self._clock = clock
        self._sink: EventSink = _no_sink
        self._units: dict[str, _Unit] = {}
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._planned = PlannedStops()
        self._engine = Engine(base_url, timeout, self._planned, self._on_engine_connect)
        self._events: EventStream | None = None
        self._events_guard = threading.Lock()  # start/close on the loop, connect in the pool
        self._connects_before = 0
        self._sampler = Sampler(self._engine.sample, self._call)

    @property
    def event_stream_connects(self) -> int:
        """How often the event stream connected: more than once means it reconnected."""
        events = self._events
        return self._connects_before + (events.connects if events is not None else 0)

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where exits and health transitions are reported: ``sink(key, reason)``."""
        self._sink = sink

    async def start(self) -> None:
        """Remember the loop; the event stream starts with the first call to the engine."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        with self._events_guard:
            self._events = EventStream(
                self._engine.connect_events,
                lambda event: self._post(self._on_event, event),
                lambda: self._post(self._on_reconnect),
            )
        if self._engine.stream_api() is not None:
            self._on_engine_connect()

    async def close(self) -> None:
        """Stop the event stream, the log followers and the probes; containers keep running."""
        self._started = False
        with self._events_guard:
            events, self._events = self._events, None
        thread = events.close() if events is not None else None
        if events is not None:
            self._connects_before += events.connects
        tasks = [p.task for u in self._units.values() for p in u.probes.values() if p.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._sampler.close()
        joins = [t for unit in self._units.values() for t in unit.logs.close()]
        if thread is not None:
            joins.append(thread)
        # Joined off the loop: a thread blocked in a socket call wakes within moments.
        await asyncio.get_running_loop().run_in_executor(None, _join_all, joins, 5.0)
        for unit in self._units.values():
            self._note_log_progress(unit, force=True)
        self._units.clear()
        self._engine.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- the ContainerRuntime Protocol -----------------------------------------------------

    async def ensure(self, container: Container) -> list[str]:
        """Create the replicas that were never created; never restarts one that died.

        Only for ``image``: a watched container (``containerName``) or a Compose service's
        containers are created by whoever owns them. Existing containers are adopted.
        """
        unit = self._unit(container)
        done: list[str] = []
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            self._adopt(unit, snap)
            if docker_spec(container).image is not None and not unit.state.stopped:
                for i in range(self._desired(unit, container)):
                    if i not in unit.state.created and i not in snap.replicas:
                        rep = await self._call(self._create, unit, container, i, None)
                        unit.state.created.add(i)
                        done.append(f"created {container.key} replica {i} ({rep.name})")
                if done:
                    self._save(unit)
        return done

    async def observe(self, container: Container) -> Observation:
        """The container's signals and facts now (see ``observation.py``).

        A missing container is a replica that is down (a drift, not an error). CPU and
        memory come from one-shot stats. A Compose service without a project that runs in
        several projects is a ``PermanentError``: driftmend will not guess which to watch.
        """
        unit = self._unit(container)
        snap = await self._call(self._engine.snapshot, container)
        self._adopt(unit, snap)
        self._sync_followers(unit, snap)
        self._sync_probes(unit, container, snap)
        alive = {i: r for i, r in snap.replicas.items() if r.running}
        samples = await self._sampler.samples(list(alive.values()), fresh=False)
        for cid in set(unit.cpu) - {r.id for r in alive.values()}:
            del unit.cpu[cid]  # readings of a container that stopped: its next run starts anew
        readings = self._readings(unit, container, alive, samples)
        signals = signals_of(container, snap, readings)
        facts = facts_of(container, snap, readings)
        return Observation(key=container.key, at=self._clock(), signals=signals, facts=facts)

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """``docker restart`` each target replica (stopSignal, then SIGKILL after stopTimeout).

        A replica that is down is started; a missing one is created again (``image``: from
        the spec; ``compose``: cloned from a sibling); one whose spec changed (``image``) is
        recreated. Returns ``{"replicas",
        "containers", "how", "old_pids", "new_pids", "alive"}`` in replica order; ``alive``
        is False for a container that stopped during its first moments (``STARTUP_GRACE``).
        """
        unit = self._unit(container)
        desired = self._desired(unit, container)
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            self._adopt(unit, snap)
            if (
                replica is not None
                and replica not in range(desired)
                and replica not in snap.replicas
            ):
                raise PermanentError(
                    f"{container.key} runs {desired} replica(s), numbered from 0; "
                    f"there is no replica {replica}"
                )
            targets = [replica] if replica is not None else list(range(desired))
            template = next(iter(snap.replicas.values()), None)
            unit.state.stopped = False
            out: dict[str, list[Any]] = {
                k: [] for k in ("containers", "how", "old_pids", "new_pids", "alive")
            }
            try:
                for i in targets:
                    current = snap.replicas.get(i)
                    how, rep = await self._call(
                        self._restart_one, unit, container, i, current, template
                    )
                    unit.state.created.add(i)
                    unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                    await asyncio.sleep(STARTUP_GRACE)
                    after = await self._call(self._engine.inspect, rep.id, i)
                    out["containers"].append(rep.name)
                    out["how"].append(how)
                    out["old_pids"].append(current.pid if current and current.running else None)
                    out["new_pids"].append(after.pid if after else None)
                    out["alive"].append(bool(after and after.running))
            finally:
                self._save(unit)
        return {"replicas": targets, **out}

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose, until ``start_replicas``, ``restart`` or ``scale``.

        The spec still asks for them: the next pass sees a drift (``container.running`` is
        false, fact ``stopped``), which a policy heals unless healing is paused.
        """
        unit = self._unit(container)
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            unit.state.stopped = True
            self._save(unit)
            stopped = []
            for i, rep in sorted(snap.replicas.items(), reverse=True):
                self._drop_probe(unit, i)
                if rep.running:
                    await self._call(self._engine.stop, container, rep)
                    stopped.append({"replica": i, "container": rep.name})
        return {"stopped": stopped}

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Start every desired replica that is not running (after ``stop``); others are left.

        A missing replica is created as ``restart`` would. Returns ``{"started": [...]}``.
        """
        unit = self._unit(container)
        started: list[dict[str, Any]] = []
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            self._adopt(unit, snap)
            unit.state.stopped = False
            self._save(unit)
            template = next(iter(snap.replicas.values()), None)
            try:
                for i in range(self._desired(unit, container)):
                    current = snap.replicas.get(i)
                    if current is not None and current.running:
                        continue
                    how, rep = await self._call(
                        self._restart_one, unit, container, i, current, template
                    )
                    unit.state.created.add(i)
                    started.append({"replica": i, "container": rep.name, "how": how})
            finally:
                self._save(unit)
        return {"started": started}

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Run exactly ``replicas`` replicas; replicas at ``replicas`` and above are removed.

        ``image`` creates new replicas from the spec; ``compose`` clones the service's own
        container config (with ``portEnv`` set to port+i when declared), and scaling it to 0
        stops its first container instead of removing it: it is the only template the next
        scale-up can clone. Only containers of the service's own project are ever touched.
        The override persists while ``spec.replicas`` keeps the value it had when ``scale``
        was called.
        """
        cap = container.spec.max_replicas
        if not 0 <= replicas <= cap:
            raise PermanentError(
                f"cannot scale {container.key} to {replicas}: allowed 0..{cap} "
                "(raise spec.maxReplicas to allow more)"
            )
        docker = docker_spec(container)
        if docker.container_name is not None:
            raise PermanentError(
                f"{container.key} watches one container ({docker.container_name}) and cannot "
                "scale; declare it with image or compose to run several"
            )
        unit = self._unit(container)
        started: list[int] = []
        removed: list[dict[str, Any]] = []
        stopped: list[dict[str, Any]] = []
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            self._adopt(unit, snap)
            unit.state.scale, unit.state.scale_base = replicas, container.spec.replicas
            unit.state.stopped = False
            self._save(unit)
            keeper = (
                snap.replicas[min(snap.replicas)]
                if docker.compose is not None and replicas == 0 and snap.replicas
                else None
            )
            doomed = [r for i, r in snap.replicas.items() if i >= replicas] + list(snap.extras)
            for rep in sorted(doomed, key=lambda r: -r.index):
                if rep.project != snap.project:
                    continue  # another project's container: never ours to remove
                if rep.index >= replicas:
                    self._drop_probe(unit, rep.index)
                if rep is keeper:
                    if rep.running:
                        await self._call(self._engine.stop, container, rep)
                    stopped.append({"replica": rep.index, "container": rep.name})
                    continue
                await self._call(self._engine.remove, container, rep)
                removed.append({"replica": rep.index, "container": rep.name})
            # Replicas scaled away are forgotten: raising the count later creates them afresh.
            for i in [i for i in unit.state.created if i >= replicas]:
                unit.state.created.discard(i)
                unit.state.restarts.pop(i, None)
            survivors = [r for i, r in sorted(snap.replicas.items()) if i < replicas]
            # A removed container still serves as a template: cloning reads its config only.
            template = survivors[0] if survivors else next(iter(snap.replicas.values()), None)
            for i in range(replicas):
                current = snap.replicas.get(i)
                if current is None or not current.running:
                    await self._call(self._restart_one, unit, container, i, current, template)
                    unit.state.created.add(i)
                    started.append(i)
            self._save(unit)
        return {"replicas": replicas, "started": started, "removed": removed, "stopped": stopped}

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per replica: container, pid, port, CPU, memory and its limit, uptime, restarts."""
        unit = self._unit(container)
        snap = await self._call(self._engine.snapshot, container)
        alive = {i: r for i, r in snap.replicas.items() if r.running}
        samples = await self._sampler.samples(list(alive.values()), fresh=True)
        readings = self._readings(unit, container, alive, samples)
        want_cpu, want_memory = readings.limits
        now = self._clock()
        rows: list[dict[str, Any]] = []
        for i in sorted(set(range(readings.desired)) | set(snap.replicas)):
            rep = snap.replicas.get(i)
            row: dict[str, Any] = {
                "replica": i,
                "running": bool(rep and rep.running),
                "restarts": unit.state.restarts.get(i, 0),
            }
            if rep is None:
                rows.append(row | {"container": None, "missing": True})
                continue
            row |= {
                "container": rep.name,
                "id": rep.id[:12],
                "status": rep.status,
                "image": rep.image,
                "docker_restarts": rep.restart_count,
                "health": rep.health,
                "cpu_limit": rep.cpu_limit or want_cpu,
                "memory_limit": rep.memory_limit or want_memory,
            }
            if rep.running:
                port = container.spec.port
                row |= {
                    "pid": rep.pid,
                    "port": port + i if port is not None else None,
                    "cpu_percent": round(readings.cpu.get(i, 0.0), 2),
                    "memory_bytes": readings.memory.get(i),
                    "uptime_seconds": round(max(0.0, now - (seconds(rep.started_at) or now)), 1),
                }
                probe = unit.probes.get(i)
                if probe is not None:
                    row["health_failures"] = probe.failures
            elif rep.ended:
                row["last_exit"] = {
                    "code": rep.exit_code,
                    "oom_killed": rep.oom_killed,
                    "at": seconds(rep.finished_at),
                    "reason": exit_reason(rep, stopped_by_us(readings, rep)),
                }
            rows.append(row)
        return {"key": container.key, "replicas": rows}

    def log_files(self, container: Container) -> Sequence[str]:
        """``replica-<i>.log`` of every desired replica, and of any other that left a log.

        The log followers write these files; nothing here touches the engine.
        """
        directory = self._dir(container)
        unit = self._units.get(container.key)
        if unit is None:
            unit = _Unit(container.key, directory, load_state(directory, container.key))
        indexes = set(range(self._desired(unit, container)))
        with contextlib.suppress(OSError):
            for path in directory.glob("replica-*.log"):
                with contextlib.suppress(ValueError):
                    indexes.add(int(path.stem.removeprefix("replica-")))
        return [str(directory / f"replica-{i}.log") for i in sorted(indexes)]

    # -- beyond the Protocol: limits and teardown ------------------------------------------

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        """Update the CPU (cores) and memory (bytes) limits of every replica.

        Running replicas get them live (``docker update``); a desired replica that is down
        (OOM-killed, exited) is started again with them, unless it was stopped on purpose.
        Raising a limit above the declared one needs a declared cap (``spec.limits.cpuCap`` /
        ``memoryCap``) and stays within it; lowering stops at a floor (0.1 cores; the memory
        in use now plus a quarter, and Docker's 6 MiB: see ``limits.py``). The new limits
        also apply to replicas created later, while ``spec.limits`` keeps its values.
        """
        if cpu is None and memory is None:
            raise PermanentError("set_limits needs cpu (cores) or memory (bytes), or both")
        unit = self._unit(container)
        async with unit.lock:
            snap = await self._call(self._engine.snapshot, container)
            self._adopt(unit, snap)
            running = [r for r in snap.replicas.values() if r.running]
            samples = await self._sampler.samples(running, fresh=memory is not None)
            used = max((s.memory for s in samples.values()), default=0)
            check_limits(container, list(snap.replicas.values()), cpu, memory, used)
            limits = container.spec.limits
            before = self._limits(unit, container)
            new = (
                cpu if cpu is not None else before[0],
                memory if memory is not None else before[1],
            )
            unit.state.cpu, unit.state.memory = new
            unit.state.limits_base = [limits.cpu, limits.memory]
            self._save(unit)
            updated: list[str] = []
            started: list[dict[str, Any]] = []
            template = next(iter(snap.replicas.values()), None)
            try:
                for rep in snap.replicas.values():
                    await self._call(self._engine.update_limits, container, rep, new[0], new[1])
                    updated.append(rep.name)
                if not unit.state.stopped:
                    for i in range(self._desired(unit, container)):
                        current = snap.replicas.get(i)
                        if current is None or not current.running:
                            how, rep = await self._call(
                                self._restart_one, unit, container, i, current, template
                            )
                            unit.state.created.add(i)
                            unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                            started.append({"replica": i, "container": rep.name, "how": how})
            finally:
                self._save(unit)
        return {
            "cpu": new[0],
            "memory": new[1],
            "memory_human": human_bytes(new[1]) if new[1] else None,
            "previous": {"cpu": before[0], "memory": before[1]},
            "containers": updated,
            "started": started,
        }

    async def down(self, container: Container) -> dict[str, Any]:
        """Remove every replica driftmend created and forget the state (logs are kept).

        Containers made elsewhere (``containerName``, ``compose``) are left to their owner.
        """
        unit = self._unit(container)
        removed: list[str] = []
        async with unit.lock:
            if docker_spec(container).image is not None:
                snap = await self._call(self._engine.snapshot, container)
                for rep in [*snap.replicas.values(), *snap.extras]:
                    await self._call(self._engine.remove, container, rep)
                    removed.append(rep.name)
            for probe in unit.probes.values():
                if probe.task is not None:
                    probe.task.cancel()
            unit.logs.close()
            with contextlib.suppress(FileNotFoundError):
                (unit.dir / "state.json").unlink()
            self._units.pop(unit.key, None)
        return {"removed": removed}

    # -- blocking steps (run in the pool's threads) ----------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the runtime's own pool."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="docker"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _create(
        self, unit: _Unit, container: Container, index: int, template: DockerReplica | None
    ) -> DockerReplica:
        """Create and start replica ``index``: from the spec, or cloned from ``template``."""
        docker = docker_spec(container)
        key = container.key
        if docker.image is not None:
            cpu, memory = self._limits(unit, container)
            api_version = self._engine.api().api_version
            name, config = create_config(container, index, cpu, memory, api_version)
        elif template is not None:
            name, config = clone_config(container, template, index)
        elif docker.compose is not None:
            project = f" (project {docker.compose.project})" if docker.compose.project else ""
            raise PermanentError(
                f"{key}: no container of Compose service {docker.compose.service}{project} "
                f"exists to clone replica {index} from; run `docker compose up` first"
            )
        else:
            raise PermanentError(
                f"{key}: container {docker.container_name} does not exist and driftmend "
                "cannot create it (it only watches it); create it, or declare docker.image"
            )
        return self._engine.create(container, index, name, config)

    def _restart_one(
        self,
        unit: _Unit,
        container: Container,
        index: int,
        current: DockerReplica | None,
        template: DockerReplica | None,
    ) -> tuple[str, DockerReplica]:
        """Restart (start, if down), recreate or create one replica; returns how, and it.

        ``template`` is a sibling whose config a Compose replica is cloned from.
        """
        if current is None:
            return "created", self._create(unit, container, index, template)
        if outdated(container, current):
            self._engine.remove(container, current)
            return "recreated", self._create(unit, container, index, None)
        cpu, memory = self._limits(unit, container)
        if (cpu is not None and cpu != current.cpu_limit) or (
            memory is not None and memory != current.memory_limit
        ):
            self._engine.update_limits(container, current, cpu, memory)
        if current.status in ("created", "exited"):
            how, done = "started", self._engine.start(container.key, current.id, current.name)
        else:  # running, paused, restarting, dead
            how, done = "restarted", self._engine.restart(container, current)
        if not done:
            # Removed since the snapshot: create it again rather than fail the fix.
            return "created", self._create(unit, container, index, template)
        return how, current

    # -- events (on the loop's thread) -----------------------------------------------------

    def _on_engine_connect(self) -> None:
        """The engine answered: start the event stream (at most one thread, from any thread)."""
        with self._events_guard:
            events = self._events if self._started else None
        if events is not None:
            events.ensure_running()

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the event loop's thread (the sink and the queue are not thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(fn, *args)

    def _on_reconnect(self) -> None:
        for key in list(self._units):
            self._sink(key, "reconnect")

    def _on_event(self, event: dict[str, Any]) -> None:
        """Map one engine event to the resource it concerns; report it unless it was ours."""
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        action = str(event.get("Action") or event.get("status") or "")
        cid = str(actor.get("ID") or event.get("id") or "")
        key = key_of(attrs, [u.spec for u in self._units.values() if u.spec is not None])
        if key is None:
            return
        at = int(event.get("timeNano") or 0) / 1e9 or time.time()
        if action in ("die", "destroy", "restart") and self._planned.covers(cid, at):
            return
        log.info("%s: docker %s (%s)", key, action, attrs.get("name", cid[:12]))
        self._sink(key, reason_of(action))

    # -- log followers and probes (on the loop's thread) -----------------------------------

    def _sync_followers(self, unit: _Unit, snap: Snapshot) -> None:
        """Log followers for the replicas (see ``logs.py``); positions saved now and then."""
        api = self._engine.stream_api()
        if api is None or not self._started:
            return
        unit.logs.sync(api, snap.replicas)
        self._note_log_progress(unit)

    def _note_log_progress(self, unit: _Unit, force: bool = False) -> None:
        """Keep how far each replica's log was copied; saved every few seconds at most."""
        unit.logs.progress()
        now = time.monotonic()
        if unit.logs.moved and (force or now - unit.log_saved_at >= _LOG_SAVE_EVERY):
            unit.log_saved_at, unit.logs.moved = now, False
            try:
                self._save(unit)
            except DriverError as exc:  # the log position is a convenience: never fail observe
                log.warning("%s", exc)

    def _sync_probes(self, unit: _Unit, container: Container, snap: Snapshot) -> None:
        sync_probes(
            unit.probes,
            container,
            snap.replicas,
            functools.partial(self._probe_changed, unit.key),
        )

    def _probe_changed(self, key: str, index: int, p: Probe) -> None:
        state = "healthy again" if p.healthy else f"failing ({p.failures} probes in a row)"
        log.info("%s: replica %d is %s", key, index, state)
        self._sink(key, "health")

    @staticmethod
    def _drop_probe(unit: _Unit, index: int) -> None:
        """Stop probing a replica driftmend stops: its failures are not news."""
        p = unit.probes.pop(index, None)
        if p is not None and p.task is not None:
            p.task.cancel()

    # -- limits ----------------------------------------------------------------------------

    def _limits(self, unit: _Unit, container: Container) -> tuple[float | None, int | None]:
        """The limits replicas should have: a ``set_limits`` override, else the spec's."""
        return wanted_limits(unit.state, container)

    def _cpu_percent(self, unit: _Unit, rep: DockerReplica, sample: Sample | None) -> float:
        """Percent of one core between two readings (the last percent without a new one)."""
        last = unit.cpu.get(rep.id)
        if sample is None:
            return last.percent if last is not None else 0.0
        unit.cpu[rep.id], percent = cpu_percent(last, sample)
        return percent

    def _readings(
        self,
        unit: _Unit,
        container: Container,
        alive: dict[int, DockerReplica],
        samples: dict[str, Sample],
    ) -> Readings:
        """What the runtime measured and keeps, for ``observation.py``."""
        return Readings(
            desired=self._desired(unit, container),
            stopped=unit.state.stopped,
            restarts=sum(unit.state.restarts.values()),
            cpu={i: self._cpu_percent(unit, r, samples.get(r.id)) for i, r in alive.items()},
            memory={i: s.memory for i, r in alive.items() if (s := samples.get(r.id))},
            probes=dict(unit.probes),
            limits=self._limits(unit, container),
        )

    # -- units and state -------------------------------------------------------------------

    def _unit(self, container: Container) -> _Unit:
        unit = self._units.get(container.key)
        if unit is None:
            directory = self._dir(container)
            unit = _Unit(container.key, directory, load_state(directory, container.key))
            self._units[container.key] = unit
        unit.spec = container
        return unit

    def _adopt(self, unit: _Unit, snap: Snapshot) -> None:
        """A container that exists was created: it counts as created from now on."""
        new = set(snap.replicas) - unit.state.created
        if new:
            unit.state.created |= new
            self._save(unit)

    def _dir(self, container: Container) -> Path:
        return resource_dir(self._root, container.resource_key)

    def _desired(self, unit: _Unit, container: Container) -> int:
        s = unit.state
        if s.scale is not None and s.scale_base == container.spec.replicas:
            return min(s.scale, container.spec.max_replicas)
        return container.spec.replicas

    def _save(self, unit: _Unit) -> None:
        save_state(unit.dir, unit.state)


def _join_all(threads: Sequence[threading.Thread], within: float) -> None:
    end = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
