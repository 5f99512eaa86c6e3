"""``DockerRuntime``: the ``ContainerRuntime`` of ``runtime: docker``, built from this package.

Stage: *observe* and *act*. The facade the router and the tools call: it keeps one unit per
Container (``unit.py``: its lock, state, probes, log followers), runs the engine's blocking
calls (``engine.py``, ``provision.py``) in a small thread pool, and turns engine events
(``events.py``, ``relay.py``) and probe transitions into events for the loop, on the loop's
thread. A pass asks the engine nothing while its events say nothing changed: snapshots are
kept (``snapshots.py``) and CPU and memory are read from the cgroups of a local engine's
containers (``cgroups.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from driftmend.drivers.base import EventSink, no_revisions
from driftmend.drivers.docker.cgroups import CgroupReader
from driftmend.drivers.docker.engine import Engine
from driftmend.drivers.docker.events import PlannedStops, key_of, news_of, reason_of, reported
from driftmend.drivers.docker.limits import check_limits, override_limits
from driftmend.drivers.docker.observation import facts_of, signals_of, stats_rows
from driftmend.drivers.docker.probes import Probe, sync_probes
from driftmend.drivers.docker.provision import restart_replica
from driftmend.drivers.docker.relay import EventRelay, join_all
from driftmend.drivers.docker.replicas import (
    DockerReplica,
    Snapshot,
    docker_spec,
    exit_reason,
    scaled_away,
)
from driftmend.drivers.docker.snapshots import SnapshotCache
from driftmend.drivers.docker.stats import Sample, Sampler
from driftmend.drivers.docker.unit import DockerUnit
from driftmend.drivers.state_files import log_paths, resource_dir
from driftmend.errors import PermanentError
from driftmend.model import Observation
from driftmend.quantities import format_bytes
from driftmend.spec import Container

log = logging.getLogger(__name__)

T = TypeVar("T")

# After a restart, how long a new container must run to count as started: one that dies of
# its own startup error (bad command, port taken) is reported, not called alive.
STARTUP_GRACE = 0.3


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


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
        self._units: dict[str, DockerUnit] = {}
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._planned = PlannedStops()
        self._engine = Engine(base_url, timeout, self._planned, self._on_engine_connect)
        self._relay = EventRelay(self._engine.connect_events, self._on_event, self._on_reconnect)
        self._snapshots = SnapshotCache()
        self._cgroups = CgroupReader()
        self._sampler = Sampler(self._engine.sample, self._call, self._cgroup_sample)

    @property
    def event_stream_connects(self) -> int:
        """How often the event stream connected: more than once means it reconnected."""
        return self._relay.connects

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where exits and health transitions are reported: ``sink(key, reason)``."""
        self._sink = sink

    async def start(self) -> None:
        """Remember the loop; the event stream starts with the first call to the engine."""
        if self._relay.started:
            return
        self._relay.start(asyncio.get_running_loop())
        if self._engine.stream_api() is not None:
            self._on_engine_connect()

    async def close(self) -> None:
        """Stop the event stream, the log followers and the probes; containers keep running."""
        thread = self._relay.close()
        tasks = [t for unit in self._units.values() for t in unit.stop_probes()]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._sampler.close()
        joins = [t for unit in self._units.values() for t in unit.logs.close()]
        if thread is not None:
            joins.append(thread)
        # Joined off the loop: a thread blocked in a socket call wakes within moments.
        await asyncio.get_running_loop().run_in_executor(None, join_all, joins, 5.0)
        for unit in self._units.values():
            unit.note_log_progress(force=True)
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
            snap = await self._snapshot(container)
            unit.adopt(snap)
            if docker_spec(container).image is not None and not unit.state.stopped:
                for i in range(unit.desired(container)):
                    if i not in unit.state.created and i not in snap.replicas:
                        _, rep = await self._restart_one(unit, container, i, None, None)  # creates
                        unit.state.created.add(i)
                        done.append(f"created {container.key} replica {i} ({rep.name})")
                if done:
                    unit.save()
                    self._snapshots.stale(container.key)
        return done

    async def observe(self, container: Container) -> Observation:
        """The container's signals and facts now (see ``observation.py``).

        A missing container is a replica that is down (a drift, not an error). CPU and
        memory come from one-shot stats. A Compose service without a project that runs in
        several projects is a ``PermanentError``: driftmend will not guess which to watch.
        """
        unit = self._unit(container)
        snap = await self._snapshot(container)
        unit.adopt(snap)
        self._sync_followers(unit, snap)
        self._sync_probes(unit, container, snap)
        alive = {i: r for i, r in snap.replicas.items() if r.running}
        samples = await self._sampler.samples(list(alive.values()), fresh=False)
        for cid in set(unit.cpu) - {r.id for r in alive.values()}:
            del unit.cpu[cid]  # readings of a container that stopped: its next run starts anew
        readings = unit.readings(container, alive, samples)
        signals = signals_of(container, snap, readings)
        facts = facts_of(container, snap, readings)
        return Observation(key=container.key, at=self._clock(), signals=signals, facts=facts)

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """``docker restart`` each target replica (stopSignal, then SIGKILL after stopTimeout).

        A replica that is down is started; a missing one is created again (``image``: from
        the spec; ``compose``: cloned from a sibling); one whose spec changed (``image``) is
        recreated. Returns ``{"replicas",
        "containers", "how", "old_pids", "new_pids", "alive", "died"}`` in replica order;
        ``alive`` is False for a container that stopped during its first moments
        (``STARTUP_GRACE``), and ``died`` says how each of those ended.
        """
        unit = self._unit(container)
        desired = unit.desired(container)
        async with self._acting(unit):
            snap = await self._call(self._engine.snapshot, container)
            unit.adopt(snap)
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
                k: [] for k in ("containers", "how", "old_pids", "new_pids", "alive", "died")
            }
            try:
                for i in targets:
                    current = snap.replicas.get(i)
                    how, rep = await self._restart_one(unit, container, i, current, template)
                    unit.state.created.add(i)
                    unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                    await asyncio.sleep(STARTUP_GRACE)
                    after = await self._call(self._engine.inspect, rep.id, i)
                    out["containers"].append(rep.name)
                    out["how"].append(how)
                    out["old_pids"].append(current.pid if current and current.running else None)
                    out["new_pids"].append(after.pid if after else None)
                    out["alive"].append(bool(after and after.running))
                    if not out["alive"][-1]:
                        out["died"].append(
                            {
                                "replica": i,
                                "container": rep.name,
                                "reason": exit_reason(after, False) if after else "removed",
                                "error": after.error if after else "",
                            }
                        )
            finally:
                unit.save()
        return {"replicas": targets, **out}

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose, until ``start_replicas``, ``restart`` or ``scale``.

        The spec still asks for them: the next pass sees a drift (``container.running`` is
        false, fact ``stopped``), which a policy heals unless healing is paused.
        """
        unit = self._unit(container)
        async with self._acting(unit):
            snap = await self._call(self._engine.snapshot, container)
            unit.state.stopped = True
            unit.save()
            stopped = []
            for i, rep in sorted(snap.replicas.items(), reverse=True):
                unit.drop_probe(i)
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
        async with self._acting(unit):
            snap = await self._call(self._engine.snapshot, container)
            unit.adopt(snap)
            unit.state.stopped = False
            unit.save()
            template = next(iter(snap.replicas.values()), None)
            try:
                for i in range(unit.desired(container)):
                    current = snap.replicas.get(i)
                    if current is not None and current.running:
                        continue
                    how, rep = await self._restart_one(unit, container, i, current, template)
                    unit.state.created.add(i)
                    started.append({"replica": i, "container": rep.name, "how": how})
            finally:
                unit.save()
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
        async with self._acting(unit):
            snap = await self._call(self._engine.snapshot, container)
            unit.adopt(snap)
            unit.state.scale, unit.state.scale_base = replicas, container.spec.replicas
            unit.state.stopped = False
            unit.save()
            doomed, keeper = scaled_away(snap, replicas, docker.compose is not None)
            for rep in doomed:
                if rep.index >= replicas:
                    unit.drop_probe(rep.index)
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
                    await self._restart_one(unit, container, i, current, template)
                    unit.state.created.add(i)
                    started.append(i)
            unit.save()
        return {"replicas": replicas, "started": started, "removed": removed, "stopped": stopped}

    async def rollback(self, container: Container) -> dict[str, Any]:
        """Refused: the docker runtime keeps no revisions to go back to."""
        raise no_revisions(container)

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per replica: container, pid, port, CPU, memory and its limit, uptime, restarts."""
        unit = self._unit(container)
        snap = await self._call(self._engine.snapshot, container)
        alive = {i: r for i, r in snap.replicas.items() if r.running}
        samples = await self._sampler.samples(list(alive.values()), fresh=True)
        readings = unit.readings(container, alive, samples)
        rows = stats_rows(container, snap, readings, unit.state.restarts, self._clock())
        return {"key": container.key, "replicas": rows}

    def log_files(self, container: Container) -> Sequence[str]:
        """``replica-<i>.log`` of every desired replica, and of any other that left a log.

        The log followers write these files; nothing here touches the engine.
        """
        directory = self._dir(container)
        unit = self._units.get(container.key)
        if unit is None:
            unit = DockerUnit.load(container.key, directory)
        return log_paths(directory, set(range(unit.desired(container))))

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
        async with self._acting(unit):
            snap = await self._call(self._engine.snapshot, container)
            unit.adopt(snap)
            running = [r for r in snap.replicas.values() if r.running]
            samples = await self._sampler.samples(running, fresh=memory is not None)
            used = max((s.memory for s in samples.values()), default=0)
            check_limits(container, list(snap.replicas.values()), cpu, memory, used)
            before, new = override_limits(unit.state, container, cpu, memory)
            unit.save()
            updated: list[str] = []
            started: list[dict[str, Any]] = []
            template = next(iter(snap.replicas.values()), None)
            try:
                for rep in snap.replicas.values():
                    await self._call(self._engine.update_limits, container, rep, new[0], new[1])
                    updated.append(rep.name)
                if not unit.state.stopped:
                    for i in range(unit.desired(container)):
                        current = snap.replicas.get(i)
                        if current is None or not current.running:
                            how, rep = await self._restart_one(
                                unit, container, i, current, template
                            )
                            unit.state.created.add(i)
                            unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                            started.append({"replica": i, "container": rep.name, "how": how})
            finally:
                unit.save()
        return {
            "cpu": new[0],
            "memory": new[1],
            "memory_human": format_bytes(new[1]) if new[1] else None,  # exact: a limit to reuse
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
        async with self._acting(unit):
            if docker_spec(container).image is not None:
                snap = await self._call(self._engine.snapshot, container)
                for rep in [*snap.replicas.values(), *snap.extras]:
                    await self._call(self._engine.remove, container, rep)
                    removed.append(rep.name)
            unit.stop_probes()
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

    async def _restart_one(
        self,
        unit: DockerUnit,
        container: Container,
        index: int,
        current: DockerReplica | None,
        template: DockerReplica | None,
    ) -> tuple[str, DockerReplica]:
        """``provision.restart_replica`` in the pool, with the limits wanted now."""
        limits = unit.limits(container)
        return await self._call(
            restart_replica, self._engine, container, index, current, template, limits
        )

    async def _snapshot(self, container: Container) -> Snapshot:
        """The Container's containers, from the cache while the event stream says nothing
        changed them (``snapshots.py``), else from the engine."""
        key = container.key
        if self._relay.live:
            kept = self._snapshots.get(key)
            if kept is not None:
                return kept
        token = self._snapshots.begin(key)
        snap = await self._call(self._engine.snapshot, container)
        self._snapshots.put(key, snap, token)
        return snap

    @contextlib.asynccontextmanager
    async def _acting(self, unit: DockerUnit) -> AsyncIterator[None]:
        """An action on ``unit`` under its lock; its snapshot is stale before and after."""
        async with unit.lock:
            self._snapshots.stale(unit.key)
            try:
                yield
            finally:
                self._snapshots.stale(unit.key)

    def _cgroup_sample(self, rep: DockerReplica) -> Sample | None:
        """A stats sample from the replica's cgroup when the engine is on this host."""
        return self._cgroups.read(rep.id, rep.pid)

    # -- events (on the loop's thread) -----------------------------------------------------

    def _on_engine_connect(self) -> None:
        """The engine answered: start the event stream (from any thread)."""
        self._relay.engine_connected()

    def _on_reconnect(self) -> None:
        self._snapshots.clear()  # events may have been lost while it was down
        for key in list(self._units):
            self._sink(key, "reconnect")

    def _on_event(self, event: dict[str, Any]) -> None:
        """Map one engine event to the resource it concerns; report it unless it was ours."""
        specs = [u.spec for u in self._units.values() if u.spec is not None]
        key = key_of((event.get("Actor") or {}).get("Attributes") or {}, specs)
        if key is None:
            return
        self._snapshots.stale(key)
        if not reported(str(event.get("Action") or event.get("status") or "")):
            return  # a start, a create, an update: only the snapshot is stale
        news = news_of(event, key, self._planned)
        if news is not None:
            log.info("%s: docker %s (%s)", news.key, news.action, news.container)
            self._sink(news.key, reason_of(news.action))

    # -- log followers and probes (on the loop's thread) -----------------------------------

    def _sync_followers(self, unit: DockerUnit, snap: Snapshot) -> None:
        """Log followers for the replicas (see ``logs.py``); positions saved now and then."""
        api = self._engine.stream_api()
        if api is None or not self._relay.started:
            return
        unit.logs.sync(api, snap.replicas)
        unit.note_log_progress()

    def _sync_probes(self, unit: DockerUnit, container: Container, snap: Snapshot) -> None:
        sync_probes(
            unit.probes,
            container,
            snap.replicas,
            functools.partial(self._probe_changed, unit.key),
        )

    def _probe_changed(self, key: str, index: int, p: Probe) -> None:
        state = "healthy" if p.healthy else f"failing ({p.failures} probes in a row)"
        log.info("%s: replica %d is %s", key, index, state)
        self._sink(key, "health")

    # -- units and state -------------------------------------------------------------------

    def _unit(self, container: Container) -> DockerUnit:
        unit = self._units.get(container.key)
        if unit is None:
            directory = self._dir(container)
            unit = DockerUnit.load(container.key, directory)
            self._units[container.key] = unit
        unit.spec = container
        return unit

    def _dir(self, container: Container) -> Path:
        return resource_dir(self._root, container.resource_key)
