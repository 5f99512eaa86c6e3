"""The ``docker`` runtime: ``Container`` replicas as Docker containers, through docker-py.

Stage: *observe* and *act* in DESIGN.md, the Docker twin of ``process.py`` with the same
signals and the same behaviour. It creates replicas (``ensure``, ``restart``, ``scale``),
stops them, reports their signals (``observe``), and turns the engine's events (``die``,
``oom``, ``health_status``, ``restart``, ``destroy``) and our own health-probe transitions into
events for the loop. It never heals on its own: a replica that was created and died stays
dead until a policy's remedy runs, so the controller's decision is recorded like every fix.

A ``Container`` names its containers in one of three ways (``spec.docker``):

- ``image``: driftmend creates replica ``i`` as ``driftmend-<namespace>-<name>-<i>``, labelled
  ``driftmend.key`` / ``driftmend.replica``; images are never pulled.
- ``containerName``: one existing container, watched and restarted.
- ``compose``: the containers of a Compose service (``com.docker.compose.project`` and
  ``.service`` labels); replica ``i`` is container number ``i + 1``, and scaling up clones the
  service's own container config.

Three kinds of threads, because docker-py is synchronous: a small pool for request/response
calls (awaited from the loop), one thread reading the event stream (reconnecting with backoff
after the engine restarts; every watched resource is queued after a reconnect, so the resync
covers what the gap hid), and one log follower per running container, which appends the
container's output to ``replica-<i>.log`` under the state directory so the log accumulator
reads Docker containers exactly as it reads processes::

    <state_dir>/docker/<namespace>-<name>/
        state.json         created replicas, stopped, scale and limits overrides, restarts
        replica-<i>.log    the replica's stdout and stderr, appended across its runs

docker-py's errors are translated here into ``DriverError`` (the engine could not do it now)
and ``PermanentError`` (retrying will not help: a missing image, a bad spec). A container
that does not exist is not an error: it is a replica that is not running, a drift.
"""

from __future__ import annotations

import asyncio
import calendar
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import docker  # type: ignore[import-untyped]  # docker-py ships no type information
import httpx
import requests
from docker import errors as docker_errors

from controller.drivers.base import EventSink
from controller.errors import DriverError, PermanentError
from controller.model import Observation
from controller.signals import SignalValue
from controller.spec import Container, DockerSpec, HealthProbe

log = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_KEY = "driftmend.key"
LABEL_REPLICA = "driftmend.replica"
LABEL_CONFIG = "driftmend.config-hash"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"

# What the event stream carries: exits, OOM kills, health changes, restarts by Docker's own
# policy, and removals (a removed container is a replica that is not running).
EVENT_FILTERS = {
    "type": ["container"],
    "event": ["die", "oom", "health_status", "restart", "destroy"],
}
_RECONNECT_MIN = 0.1  # seconds before the first reconnect of the event stream ...
_RECONNECT_MAX = 2.0  # ... doubling up to this: a local engine restarts in a few seconds
_CPU_MIN_INTERVAL = 0.5  # seconds between two CPU measurements of one container
_STATS_MAX_AGE = 1.0  # observe starts a new stats reading when the last is this old ...
_STATS_WAIT = 2.5  # ... and waits at most this long for a container's first reading
# After a restart, how long a new container must run to count as started: one that dies of
# its own startup error (bad command, port taken) is reported, not called alive.
_STARTUP_GRACE = 0.3
_PLANNED_SLACK = 0.2  # seconds around a driftmend stop in which a `die` event is ours
_GONE_WAIT = 10.0  # seconds a removal already under way may take before we give up on it
_MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses memory limits below 6 MiB
_NEVER = "0001-01-01T00:00:00Z"  # Docker's zero time: the container never started or ended
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


def parse_time_ns(raw: str | None) -> int | None:
    """Docker's RFC 3339 UTC time (``2026-11-25T04:54:06.598413247Z``) as Unix nanoseconds.

    None for Docker's zero time (never started, never ended) and for anything unparsable.
    """
    if not raw or raw.startswith("0001-"):
        return None
    m = _TIME.match(raw)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def _seconds(raw: str | None) -> float | None:
    ns = parse_time_ns(raw)
    return ns / 1e9 if ns is not None else None


# --- what the engine says about one replica ------------------------------------------------


@dataclass(frozen=True)
class DockerReplica:
    """One container of a Container resource, as ``docker inspect`` shows it."""

    index: int
    id: str
    name: str
    status: str  # created, running, paused, restarting, removing, exited, dead
    exit_code: int
    oom_killed: bool
    error: str
    started_at: str
    finished_at: str
    restart_count: int
    pid: int
    health: str | None  # starting, healthy, unhealthy; None without a Docker healthcheck
    failing_streak: int
    cpu_limit: float | None  # cores
    memory_limit: int | None  # bytes
    config_hash: str | None
    image: str
    env: tuple[str, ...]
    attrs: dict[str, Any] = field(repr=False, compare=False)

    @property
    def running(self) -> bool:
        """Serving: a paused or restarting container is not."""
        return self.status == "running"

    @classmethod
    def from_inspect(cls, index: int, attrs: dict[str, Any]) -> DockerReplica:
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        host = attrs.get("HostConfig") or {}
        health = state.get("Health") or {}
        cpu: float | None = None
        if host.get("NanoCpus"):
            cpu = host["NanoCpus"] / 1e9
        elif host.get("CpuQuota", 0) > 0:
            cpu = host["CpuQuota"] / (host.get("CpuPeriod") or 100_000)
        labels = config.get("Labels") or {}
        return cls(
            index=index,
            id=str(attrs.get("Id", "")),
            name=str(attrs.get("Name", "")).lstrip("/"),
            status=str(state.get("Status", "unknown")),
            exit_code=int(state.get("ExitCode") or 0),
            oom_killed=bool(state.get("OOMKilled")),
            error=str(state.get("Error") or ""),
            started_at=str(state.get("StartedAt") or _NEVER),
            finished_at=str(state.get("FinishedAt") or _NEVER),
            restart_count=int(attrs.get("RestartCount") or 0),
            pid=int(state.get("Pid") or 0),
            health=health.get("Status") or None,
            failing_streak=int(health.get("FailingStreak") or 0),
            cpu_limit=cpu,
            memory_limit=int(host["Memory"]) if host.get("Memory") else None,
            config_hash=labels.get(LABEL_CONFIG),
            image=str(config.get("Image", "")),
            env=tuple(config.get("Env") or ()),
            attrs=attrs,
        )


@dataclass(frozen=True)
class _Sample:
    """One one-shot ``stats`` reading of a running container."""

    at: float  # when the engine read it (Unix seconds)
    cpu_total_ns: int
    memory: int  # usage minus inactive page cache, as `docker stats` shows it


@dataclass(frozen=True)
class _Snapshot:
    """Every replica of one Container, as the engine shows them now."""

    replicas: dict[int, DockerReplica]  # the chosen container per replica index
    extras: tuple[DockerReplica, ...]  # duplicates of an index (older, not running)


# --- what driftmend keeps ----------------------------------------------------------------


@dataclass
class _State:
    """What ``state.json`` holds for one Container."""

    key: str
    created: set[int] = field(default_factory=set)  # replica indexes ever created
    stopped: bool = False  # stopped on purpose (``stop``)
    scale: int | None = None  # ``scale`` override of spec.replicas ...
    scale_base: int | None = None  # ... valid while spec.replicas is still this value
    restarts: dict[int, int] = field(default_factory=dict)  # restarts made by driftmend
    # ``set_limits`` override of spec.limits, valid while spec.limits keeps the values it had
    # (an edited spec is a newer wish than an older remedy)
    cpu: float | None = None
    memory: int | None = None
    limits_base: list[float | int | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "created": sorted(self.created),
            "stopped": self.stopped,
            "scale": self.scale,
            "scale_base": self.scale_base,
            "restarts": {str(i): n for i, n in sorted(self.restarts.items())},
            "cpu": self.cpu,
            "memory": self.memory,
            "limits_base": self.limits_base,
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> _State:
        def opt_int(value: object) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        cpu = raw.get("cpu")
        base = raw.get("limits_base")
        return cls(
            key=key,
            created={int(i) for i in raw.get("created", [])},
            stopped=bool(raw.get("stopped", False)),
            scale=opt_int(raw.get("scale")),
            scale_base=opt_int(raw.get("scale_base")),
            restarts={int(i): int(n) for i, n in raw.get("restarts", {}).items()},
            cpu=float(cpu) if isinstance(cpu, int | float) else None,
            memory=opt_int(raw.get("memory")),
            limits_base=list(base) if isinstance(base, list) and len(base) == 2 else None,
        )


@dataclass
class _Probe:
    """Our own HTTP probe of one run of one replica (a restart is a new run)."""

    run: tuple[str, str]  # (container id, StartedAt)
    spec: HealthProbe
    port: int | None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    healthy: bool = True
    # Healthy only once a probe has passed since the run started, so that verification
    # after a restart waits for the app to answer, not just for a running container.
    probed_ok: bool = False


@dataclass
class _Cpu:
    """The last CPU reading of one container, and the percent measured up to it."""

    at: float
    total_ns: int
    percent: float = 0.0


@dataclass
class _Unit:
    """Everything the runtime holds for one Container key."""

    key: str
    dir: Path
    state: _State
    spec: Container | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    probes: dict[int, _Probe] = field(default_factory=dict)
    cpu: dict[str, _Cpu] = field(default_factory=dict)  # by container id
    followers: dict[int, _LogFollower] = field(default_factory=dict)
    log_last_ns: dict[int, int] = field(default_factory=dict)  # newest line written, per replica
    drained: dict[int, tuple[str, str]] = field(default_factory=dict)  # (id, FinishedAt) read


# --- the log follower --------------------------------------------------------------------


class _LogFollower:
    """Appends one run of one container's output to its replica's log file, from a thread.

    ``logs(follow=True)`` ends when the container stops; the runtime starts a new follower
    for the next run, from the newest line already written (``since`` plus a nanosecond
    comparison), so a line is written once however often followers come and go.
    """

    def __init__(self, api: Any, container_id: str, path: Path, since_ns: int) -> None:
        self.container_id = container_id
        self.path = path
        self.last_ns = since_ns
        self._api = api
        self._stream: Any = None
        self._closed = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._main, name=f"docker logs {container_id[:12]}", daemon=True
        )

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop following: closing the stream wakes the thread blocked in ``recv``."""
        with self._lock:
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # already closed by the engine
                stream.close()

    def _main(self) -> None:
        stream: Any = None
        try:
            since = self.last_ns / 1e9 if self.last_ns else None
            stream = self._api.logs(
                self.container_id, stream=True, follow=True, timestamps=True, since=since
            )
            with self._lock:
                if self._closed:
                    stream.close()
                    return
                self._stream = stream
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as out:
                partial = b""
                for chunk in stream:
                    partial = self._write(out, partial + chunk)
                if partial:
                    self._write(out, partial + b"\n")
        except docker_errors.NotFound:
            pass  # removed: nothing more to read
        except Exception as exc:  # a thread's boundary: the engine went away, a bad file
            if not self._closed:
                log.debug("log follower of %s ended: %s", self.container_id[:12], exc)
        finally:
            with self._lock:
                self._stream = None
            if stream is not None:
                with contextlib.suppress(Exception):  # closed already (by close())
                    stream.close()

    def _write(self, out: Any, data: bytes) -> bytes:
        """Write every complete line of ``data`` (without Docker's timestamp); keep the rest."""
        *lines, rest = data.split(b"\n")
        wrote = False
        for line in lines:
            stamp, _, text = line.partition(b" ")
            ns = parse_time_ns(stamp.decode("ascii", "replace"))
            if ns is not None:
                if ns <= self.last_ns:
                    continue  # already written by the follower of an earlier run
                self.last_ns = ns
            out.write(text + b"\n")
            wrote = True
        if wrote:
            out.flush()
        return rest


# --- the runtime -------------------------------------------------------------------------


class DockerRuntime:
    """Runs ``Container`` replicas as Docker containers; implements ``ContainerRuntime``.

    Construction touches nothing: the client is created on the first call that needs the
    engine, so a controller whose specs name no Docker container never connects (and a
    machine without Docker runs process-only specs). ``base_url`` defaults to Docker's own
    convention (``DOCKER_HOST``, else the local socket).
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
        self._base_url = base_url
        self._timeout = timeout
        self._clock = clock
        self._sink: EventSink = _no_sink
        self._units: dict[str, _Unit] = {}
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._client_lock = threading.Lock()
        self._api_client: Any = None
        self._stream_client: Any = None  # logs and events: no read timeout, own pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = threading.Event()
        self._events_thread: threading.Thread | None = None
        self._events_stream: Any = None
        self._events_lock = threading.Lock()
        self._planned: dict[str, list[list[float]]] = {}  # container id -> [start, end] windows
        self._last_sample: dict[str, _Sample] = {}  # by container id
        self._sampling: dict[str, asyncio.Future[_Sample | None]] = {}  # readings under way
        self.event_stream_connects = 0
        """How often the event stream connected: more than once means it reconnected."""

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where exits and health transitions are reported: ``sink(key, reason)``."""
        self._sink = sink

    async def start(self) -> None:
        """Remember the loop; the event stream starts with the first call to the engine."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._closing.clear()
        self._started = True
        if self._api_client is not None:
            self._start_events()

    async def close(self) -> None:
        """Stop the event stream, the log followers and the probes; containers keep running."""
        self._closing.set()
        self._started = False
        with self._events_lock:
            stream, self._events_stream = self._events_stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        tasks: list[asyncio.Task[None]] = []
        followers: list[_LogFollower] = []
        for unit in self._units.values():
            tasks.extend(p.task for p in unit.probes.values() if p.task is not None)
            followers.extend(unit.followers.values())
        for task in tasks:
            task.cancel()
        for pending in self._sampling.values():
            pending.cancel()
        await asyncio.gather(*tasks, *self._sampling.values(), return_exceptions=True)
        self._sampling.clear()
        for follower in followers:
            follower.close()
        thread, self._events_thread = self._events_thread, None
        joins = [f.thread for f in followers if f.thread.ident is not None]
        if thread is not None:
            joins.append(thread)
        # Joined off the loop: a thread blocked in a socket call wakes within moments.
        await asyncio.get_running_loop().run_in_executor(None, _join_all, joins, 5.0)
        self._units.clear()
        with self._client_lock:
            for client in (self._api_client, self._stream_client):
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            self._api_client = self._stream_client = None
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
            snap = await self._call(self._snapshot, container)
            self._adopt(unit, snap)
            docker = _docker_spec(container)
            if docker.image is not None and not unit.state.stopped:
                for i in range(self._desired(unit, container)):
                    if i not in unit.state.created and i not in snap.replicas:
                        rep = await self._call(self._create, unit, container, i, None)
                        done.append(f"created {container.key} replica {i} ({rep.name})")
                if done:
                    self._save(unit)
        return done

    async def observe(self, container: Container) -> Observation:
        """The container's signals now (names and meanings in ``controller.signals``).

        ``exit_code``/``oom_killed`` describe the latest exit of a desired replica that is
        down (absent while all run; Docker's codes: 137 is SIGKILL); a replica whose container
        is missing is down too (a drift, not an error). CPU and memory come from one-shot
        stats; the ``*_used_ratio`` signals use the container's own limit, else the spec's.
        """
        unit = self._unit(container)
        snap = await self._call(self._snapshot, container)
        self._adopt(unit, snap)
        self._sync_followers(unit, snap)
        self._sync_probes(unit, container, snap)
        spec = container.spec
        desired = self._desired(unit, container)
        reps = snap.replicas
        alive = {i: r for i, r in sorted(reps.items()) if r.running}
        dead = [i for i in range(desired) if i not in alive]
        running = not dead and not unit.state.stopped
        samples = await self._samples(list(alive.values()), fresh=False)
        cpu = {i: self._cpu_percent(unit, r, samples.get(r.id)) for i, r in alive.items()}
        for cid in set(unit.cpu) - {r.id for r in alive.values()}:
            del unit.cpu[cid]  # readings of a container that stopped: its next run starts anew
        memory = {i: s.memory for i, r in alive.items() if (s := samples.get(r.id))}

        signals: dict[str, SignalValue] = {
            "container.running": running,
            "container.replicas_running": len(alive),
            "container.replicas_desired": desired,
            "container.restarts": sum(unit.state.restarts.values())
            + sum(r.restart_count for r in reps.values()),
            "container.cpu_percent": round(sum(cpu.values()), 2),
            "container.memory_bytes": sum(memory.values()),
        }
        last = max(
            (reps[i] for i in dead if i in reps and parse_time_ns(reps[i].finished_at)),
            key=lambda r: parse_time_ns(r.finished_at) or 0,
            default=None,
        )
        signals["container.exit_code"] = last.exit_code if last is not None else None
        signals["container.oom_killed"] = last.oom_killed if last is not None else False
        healthy, failures = self._health(unit, container, alive, running)
        signals["container.healthy"] = healthy
        signals["container.health_failures"] = failures
        cpu_limits = {i: self._cpu_limit(unit, container, r) for i, r in alive.items()}
        if any(v is not None for v in cpu_limits.values()) or self._limits(unit, container)[0]:
            signals["container.cpu_used_ratio"] = round(
                max(
                    (cpu[i] / 100.0 / lim for i, lim in cpu_limits.items() if lim),
                    default=0.0,
                ),
                4,
            )
        mem_limits = {i: self._memory_limit(unit, container, r) for i, r in alive.items()}
        if any(v is not None for v in mem_limits.values()) or self._limits(unit, container)[1]:
            signals["container.memory_used_ratio"] = round(
                max(
                    (memory.get(i, 0) / lim for i, lim in mem_limits.items() if lim),
                    default=0.0,
                ),
                4,
            )

        facts: dict[str, str] = {
            "containers": ",".join(r.name for r in alive.values()),
            "pids": ",".join(str(r.pid) for r in alive.values() if r.pid),
            "ports": ",".join(str(spec.port + i) for i in alive if spec.port is not None),
        }
        missing = [i for i in dead if i not in reps]
        if missing:
            facts["missing"] = ", ".join(
                f"replica {i} ({self._expected_name(container, i)})" for i in missing
            )
        exited = [r for r in reps.values() if parse_time_ns(r.finished_at) and not r.running]
        if exited:
            latest = max(exited, key=lambda r: parse_time_ns(r.finished_at) or 0)
            at = _seconds(latest.finished_at) or 0.0
            facts["last_exit_at"] = datetime.fromtimestamp(at, UTC).isoformat()
            facts["last_exit_reason"] = self._exit_reason(unit, latest)
        outdated = [r.name for r in reps.values() if self._outdated(container, r)]
        if outdated:
            facts["config_outdated"] = ",".join(outdated) + " (the next restart recreates them)"
        if unit.state.stopped:
            facts["stopped"] = "true"
        return Observation(key=container.key, at=self._clock(), signals=signals, facts=facts)

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """``docker restart`` each target replica (stopSignal, then SIGKILL after stopTimeout).

        A missing replica is created again (``image``: from the spec; ``compose``: cloned from
        a sibling); one whose spec changed (``image``) is recreated. Returns ``{"replicas",
        "containers", "how", "old_pids", "new_pids", "alive"}`` in replica order; ``alive``
        is False for a container that stopped during its first moments (``_STARTUP_GRACE``).
        """
        unit = self._unit(container)
        desired = self._desired(unit, container)
        async with unit.lock:
            snap = await self._call(self._snapshot, container)
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
                    unit.state.restarts[i] = unit.state.restarts.get(i, 0) + 1
                    await asyncio.sleep(_STARTUP_GRACE)
                    after = await self._call(self._inspect, rep.id, i)
                    out["containers"].append(rep.name)
                    out["how"].append(how)
                    out["old_pids"].append(current.pid if current and current.running else None)
                    out["new_pids"].append(after.pid if after else None)
                    out["alive"].append(bool(after and after.running))
            finally:
                self._save(unit)
        return {"replicas": targets, **out}

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose; they stay stopped until ``restart`` or ``scale``."""
        unit = self._unit(container)
        async with unit.lock:
            unit.state.stopped = True
            self._save(unit)
            snap = await self._call(self._snapshot, container)
            stopped = []
            for i, rep in sorted(snap.replicas.items(), reverse=True):
                self._drop_probe(unit, i)
                if rep.running:
                    await self._call(self._stop_one, container, rep)
                    stopped.append({"replica": i, "container": rep.name})
        return {"stopped": stopped}

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Run exactly ``replicas`` replicas; replicas at ``replicas`` and above are removed.

        ``image`` creates new replicas from the spec; ``compose`` clones the service's own
        container config (with ``portEnv`` set to port+i when declared). The override persists
        while ``spec.replicas`` keeps the value it had when ``scale`` was called.
        """
        cap = container.spec.max_replicas
        if not 0 <= replicas <= cap:
            raise PermanentError(
                f"cannot scale {container.key} to {replicas}: allowed 0..{cap} "
                "(raise spec.maxReplicas to allow more)"
            )
        docker = _docker_spec(container)
        if docker.container_name is not None:
            raise PermanentError(
                f"{container.key} watches one container ({docker.container_name}) and cannot "
                "scale; declare it with image or compose to run several"
            )
        unit = self._unit(container)
        started: list[int] = []
        removed: list[dict[str, Any]] = []
        async with unit.lock:
            snap = await self._call(self._snapshot, container)
            self._adopt(unit, snap)
            unit.state.scale, unit.state.scale_base = replicas, container.spec.replicas
            unit.state.stopped = False
            self._save(unit)
            doomed = [r for i, r in snap.replicas.items() if i >= replicas] + list(snap.extras)
            for rep in sorted(doomed, key=lambda r: -r.index):
                if rep.index >= replicas:
                    self._drop_probe(unit, rep.index)
                await self._call(self._remove_one, container, rep)
                removed.append({"replica": rep.index, "container": rep.name})
            # Replicas scaled away are forgotten: raising the count later creates them afresh.
            for i in [i for i in unit.state.created if i >= replicas]:
                unit.state.created.discard(i)
                unit.state.restarts.pop(i, None)
            survivors = [r for i, r in sorted(snap.replicas.items()) if i < replicas]
            template = survivors[0] if survivors else next(iter(snap.replicas.values()), None)
            for i in range(replicas):
                current = snap.replicas.get(i)
                if current is None or not current.running:
                    await self._call(self._restart_one, unit, container, i, current, template)
                    started.append(i)
            self._save(unit)
        return {"replicas": replicas, "started": started, "removed": removed}

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per replica: container, pid, port, CPU, memory and its limit, uptime, restarts."""
        unit = self._unit(container)
        snap = await self._call(self._snapshot, container)
        running = [r for r in snap.replicas.values() if r.running]
        samples = await self._samples(running, fresh=True)
        now = self._clock()
        rows: list[dict[str, Any]] = []
        desired = self._desired(unit, container)
        for i in sorted(set(range(desired)) | set(snap.replicas)):
            rep = snap.replicas.get(i)
            row: dict[str, Any] = {
                "replica": i,
                "running": bool(rep and rep.running),
                "restarts": unit.state.restarts.get(i, 0),
            }
            if rep is None:
                row["container"] = None
                row["missing"] = True
                rows.append(row)
                continue
            row |= {
                "container": rep.name,
                "id": rep.id[:12],
                "status": rep.status,
                "image": rep.image,
                "docker_restarts": rep.restart_count,
                "health": rep.health,
                "cpu_limit": self._cpu_limit(unit, container, rep),
                "memory_limit": self._memory_limit(unit, container, rep),
            }
            sample = samples.get(rep.id)
            if rep.running:
                started = _seconds(rep.started_at) or now
                row |= {
                    "pid": rep.pid,
                    "port": container.spec.port + i if container.spec.port is not None else None,
                    "cpu_percent": round(self._cpu_percent(unit, rep, sample), 2),
                    "memory_bytes": sample.memory if sample else None,
                    "uptime_seconds": round(max(0.0, now - started), 1),
                }
                probe = unit.probes.get(i)
                if probe is not None:
                    row["health_failures"] = probe.failures
            elif parse_time_ns(rep.finished_at):
                row["last_exit"] = {
                    "code": rep.exit_code,
                    "oom_killed": rep.oom_killed,
                    "at": _seconds(rep.finished_at),
                    "reason": self._exit_reason(unit, rep),
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
            raw = _read_json(directory / "state.json")
            unit = _Unit(container.key, directory, _State.from_json(container.key, raw or {}))
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
        """Update the CPU (cores) and memory (bytes) limits of every replica, live.

        Raising a limit above the declared one needs a cap (``spec.limits.cpuCap`` /
        ``memoryCap``): a remedy may go up to it, never past it. The new limits also apply to
        replicas created later, while ``spec.limits`` keeps its values. An OOM-killed replica
        stays dead: follow this with ``restart``.
        """
        if cpu is None and memory is None:
            raise PermanentError("set_limits needs cpu (cores) or memory (bytes), or both")
        limits = container.spec.limits
        if cpu is not None:
            cap = limits.cpu_cap if limits.cpu_cap is not None else limits.cpu
            if cpu <= 0:
                raise PermanentError(f"cpu must be above 0 cores, not {cpu:g}")
            if cap is not None and cpu > cap:
                raise PermanentError(
                    f"cpu {cpu:g} is above the cap of {container.key} ({cap:g} cores): "
                    + (
                        "raise spec.limits.cpuCap to allow it"
                        if limits.cpu_cap is not None
                        else "declare spec.limits.cpuCap to allow raising it"
                    )
                )
            available = os.cpu_count() or 1
            if cpu > available:
                raise PermanentError(f"cpu {cpu:g} is above the {available} cores of this host")
        if memory is not None:
            cap_m = limits.memory_cap if limits.memory_cap is not None else limits.memory
            if memory < _MIN_MEMORY:
                raise PermanentError(
                    f"memory {_human_bytes(memory)} is below Docker's minimum of 6Mi"
                )
            if cap_m is not None and memory > cap_m:
                raise PermanentError(
                    f"memory {_human_bytes(memory)} is above the cap of {container.key} "
                    f"({_human_bytes(cap_m)}): "
                    + (
                        "raise spec.limits.memoryCap to allow it"
                        if limits.memory_cap is not None
                        else "declare spec.limits.memoryCap to allow raising it"
                    )
                )
        unit = self._unit(container)
        async with unit.lock:
            before = self._limits(unit, container)
            new = (
                cpu if cpu is not None else before[0],
                memory if memory is not None else before[1],
            )
            unit.state.cpu, unit.state.memory = new
            unit.state.limits_base = [limits.cpu, limits.memory]
            self._save(unit)
            snap = await self._call(self._snapshot, container)
            updated = []
            for rep in snap.replicas.values():
                await self._call(self._update_limits, container, rep, new[0], new[1])
                updated.append(rep.name)
        return {
            "cpu": new[0],
            "memory": new[1],
            "memory_human": _human_bytes(new[1]) if new[1] else None,
            "previous": {"cpu": before[0], "memory": before[1]},
            "containers": updated,
        }

    async def down(self, container: Container) -> dict[str, Any]:
        """Remove every replica driftmend created and forget the state (logs are kept).

        Containers made elsewhere (``containerName``, ``compose``) are left to their owner.
        """
        unit = self._unit(container)
        removed: list[str] = []
        async with unit.lock:
            if _docker_spec(container).image is not None:
                snap = await self._call(self._snapshot, container)
                for rep in [*snap.replicas.values(), *snap.extras]:
                    await self._call(self._remove_one, container, rep)
                    removed.append(rep.name)
            for probe in unit.probes.values():
                if probe.task is not None:
                    probe.task.cancel()
            for follower in unit.followers.values():
                follower.close()
            with contextlib.suppress(FileNotFoundError):
                (unit.dir / "state.json").unlink()
            self._units.pop(unit.key, None)
        return {"removed": removed}

    # -- talking to the engine (these run in the pool's threads) ---------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking docker-py call in the runtime's own pool."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="docker"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _api(self) -> Any:
        """The request/response client, created (and the event stream started) on first use."""
        with self._client_lock:
            if self._api_client is None:
                self._api_client = self._connect(self._timeout)
                self._stream_client = self._connect(None)
                if self._started:
                    self._start_events()
            return self._api_client

    def _connect(self, timeout: float | None) -> Any:
        kwargs: dict[str, Any] = (
            {"base_url": self._base_url} if self._base_url else docker.utils.kwargs_from_env()
        )
        base_url = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")
        try:
            _check_unix_socket(base_url)
            return docker.APIClient(version="auto", timeout=timeout, max_pool_size=32, **kwargs)
        except (docker_errors.DockerException, requests.RequestException, OSError) as exc:
            raise DriverError(
                f"no Docker engine answers at {base_url}: {exc}; start dockerd "
                "(scripts/docker-engine.sh does it on Debian) or fix DOCKER_HOST"
            ) from exc

    def _snapshot(self, container: Container) -> _Snapshot:
        """Every container of ``container``, inspected."""
        api = self._api()
        docker = _docker_spec(container)
        key = container.key
        found: list[DockerReplica] = []
        with _translate(key, "list containers"):
            if docker.container_name is not None:
                try:
                    attrs = api.inspect_container(docker.container_name)
                except docker_errors.NotFound:
                    attrs = None
                if attrs is not None:
                    found.append(DockerReplica.from_inspect(0, attrs))
            else:
                if docker.compose is not None:
                    labels = [f"{COMPOSE_SERVICE}={docker.compose.service}"]
                    if docker.compose.project is not None:
                        labels.append(f"{COMPOSE_PROJECT}={docker.compose.project}")
                else:
                    labels = [f"{LABEL_KEY}={key}"]
                for summary in api.containers(all=True, filters={"label": labels}):
                    try:
                        attrs = api.inspect_container(summary["Id"])
                    except docker_errors.NotFound:
                        continue  # removed between the list and the inspect
                    index = _replica_index(docker, attrs)
                    if index is not None and (attrs.get("State") or {}).get("Status") != "removing":
                        found.append(DockerReplica.from_inspect(index, attrs))
        replicas: dict[int, DockerReplica] = {}
        extras: list[DockerReplica] = []
        # Two containers claiming one index (a half-finished recreate): keep the running one,
        # else the newest; the other is an extra that ``scale`` removes.
        for rep in sorted(found, key=lambda r: (r.running, r.started_at)):
            if rep.index in replicas:
                extras.append(replicas[rep.index])
            replicas[rep.index] = rep
        return _Snapshot(replicas, tuple(extras))

    async def _samples(self, running: Sequence[DockerReplica], fresh: bool) -> dict[str, _Sample]:
        """The latest stats reading of each running container, by id.

        The engine answers a one-shot stats request at its next collection tick (up to a
        second later), so ``observe`` does not wait for it: it starts a reading in the
        background and uses the last one, waiting only for a container's first reading.
        ``fresh`` (the ``container_stats`` tool) waits for a new reading of each.
        """
        now = time.time()
        for cid in [c for c, s in self._last_sample.items() if now - s.at > 60]:
            del self._last_sample[cid]  # a container gone (or stopped) a while ago
        waits: list[asyncio.Future[_Sample | None]] = []
        for rep in running:
            last = self._last_sample.get(rep.id)
            pending = self._sampling.get(rep.id)
            if pending is None and (fresh or last is None or now - last.at >= _STATS_MAX_AGE):
                pending = asyncio.ensure_future(self._call(self._sample, rep))
                self._sampling[rep.id] = pending
                pending.add_done_callback(functools.partial(self._sampled, rep.id))
            if pending is not None and (fresh or last is None):
                waits.append(pending)
        if waits:
            await asyncio.wait(waits, timeout=_STATS_WAIT)
        return {r.id: s for r in running if (s := self._last_sample.get(r.id)) is not None}

    def _sampled(self, cid: str, done: asyncio.Future[_Sample | None]) -> None:
        self._sampling.pop(cid, None)
        if done.cancelled() or done.exception() is not None:
            return
        sample = done.result()
        if sample is not None:
            self._last_sample[cid] = sample

    def _sample(self, rep: DockerReplica) -> _Sample | None:
        """One-shot stats; CPU is the delta between two of our own readings."""
        api = self._api()
        try:
            raw = api.stats(rep.id, stream=False, one_shot=True)
        except docker_errors.InvalidVersion:
            raw = api.stats(rep.id, stream=False)  # an engine older than API 1.41
        except (docker_errors.DockerException, requests.RequestException):
            return None  # stopped between the inspect and the stats: no reading this time
        at = (parse_time_ns(raw.get("read")) or time.time_ns()) / 1e9
        cpu = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        mem = raw.get("memory_stats") or {}
        inner = mem.get("stats") or {}
        # What `docker stats` shows: usage minus the page cache the kernel can drop at once
        # (cgroup v1 calls it total_inactive_file, v2 inactive_file).
        inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0
        usage = int(mem.get("usage") or 0)
        if not usage:
            return None  # stopped between the inspect and the stats: the engine sends zeros
        return _Sample(at, int(cpu), max(0, usage - int(inactive)))

    def _inspect(self, ident: str, index: int) -> DockerReplica | None:
        api = self._api()
        with _translate(ident, "inspect"):
            try:
                return DockerReplica.from_inspect(index, api.inspect_container(ident))
            except docker_errors.NotFound:
                return None

    def _create(
        self,
        unit: _Unit,
        container: Container,
        index: int,
        template: DockerReplica | None,
    ) -> DockerReplica:
        """Create and start replica ``index``: from the spec, or cloned from ``template``."""
        api = self._api()
        docker = _docker_spec(container)
        key = container.key
        if docker.image is not None:
            name = self._expected_name(container, index)
            config = self._create_config(unit, container, index)
        elif template is not None:
            name, config = _clone_config(container, template, index)
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
        with _translate(key, f"create replica {index} ({name})"):
            try:
                try:
                    created = api.create_container_from_config(config, name=name)
                except docker_errors.APIError as exc:
                    if exc.status_code != 409 or not self._wait_gone(name):
                        raise
                    # The name belonged to a container on its way out (removed by an
                    # operator a moment ago): now that it is gone, the name is free.
                    created = api.create_container_from_config(config, name=name)
            except docker_errors.ImageNotFound as exc:
                raise PermanentError(
                    f"{key}: image {config.get('Image')} is not on the engine and driftmend "
                    "never pulls: build, load or import it (docker build / load / import)"
                ) from exc
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise DriverError(
                        f"{key}: the name {name} is taken by another container; remove or "
                        f"rename it (docker rm {name})"
                    ) from exc
                raise
            unit.state.created.add(index)
            cid = created["Id"]
            self._start_container(key, cid, name)
        rep = self._inspect(cid, index)
        if rep is None:
            raise DriverError(f"{key}: replica {index} ({name}) vanished right after its creation")
        log.info("%s: created replica %d (%s)", key, index, name)
        return rep

    def _start_container(self, key: str, cid: str, name: str) -> None:
        api = self._api()
        try:
            api.start(cid)
        except docker_errors.APIError as exc:
            # The container exists but its process could not start (command not found, a
            # bad mount): the engine says why; observe reports it as an exit (code 127, ...).
            raise DriverError(
                f"{key}: {name} could not start: {exc.explanation or exc}; "
                "check spec.docker.command, image and volumes"
            ) from exc

    def _restart_one(
        self,
        unit: _Unit,
        container: Container,
        index: int,
        current: DockerReplica | None,
        template: DockerReplica | None,
    ) -> tuple[str, DockerReplica]:
        """Restart, recreate or create one replica; returns how, and the container now.

        ``template`` is a sibling whose config a Compose replica is cloned from.
        """
        key = container.key
        if current is None:
            return "created", self._create(unit, container, index, template)
        if self._outdated(container, current):
            self._remove_one(container, current)
            return "recreated", self._create(unit, container, index, None)
        cpu, memory = self._limits(unit, container)
        if (cpu is not None and cpu != current.cpu_limit) or (
            memory is not None and memory != current.memory_limit
        ):
            self._update_limits(container, current, cpu, memory)
        api = self._api()
        window = self._plan(current.id)
        try:
            with _translate(key, f"restart {current.name}"):
                try:
                    api.restart(current.id, timeout=_stop_timeout(container))
                except docker_errors.NotFound:
                    # Removed since the snapshot: create it again rather than fail the fix.
                    return "created", self._create(unit, container, index, template)
        finally:
            window[1] = time.time()
        return "restarted", current

    def _stop_one(self, container: Container, rep: DockerReplica) -> None:
        window = self._plan(rep.id)
        try:
            with (
                _translate(container.key, f"stop {rep.name}"),
                contextlib.suppress(docker_errors.NotFound),
            ):
                self._api().stop(rep.id, timeout=_stop_timeout(container))
        finally:
            window[1] = time.time()

    def _remove_one(self, container: Container, rep: DockerReplica) -> None:
        """Stop gracefully (stopSignal, stopTimeout), then remove; returns once it is gone."""
        if rep.running:
            self._stop_one(container, rep)
        window = self._plan(rep.id)
        try:
            with (
                _translate(container.key, f"remove {rep.name}"),
                contextlib.suppress(docker_errors.NotFound),
            ):
                try:
                    self._api().remove_container(rep.id, force=True)
                except docker_errors.APIError as exc:
                    # 409: someone else is removing it already; wait for that instead.
                    if exc.status_code != 409 or not self._wait_gone(rep.id):
                        raise
        finally:
            window[1] = time.time()

    def _wait_gone(self, ident: str, within: float = _GONE_WAIT) -> bool:
        """True once no container answers to ``ident`` (a name or an id), within ``within``."""
        api = self._api()
        end = time.monotonic() + within
        while time.monotonic() < end:
            try:
                api.inspect_container(ident)
            except docker_errors.NotFound:
                return True
            time.sleep(0.05)
        return False

    def _update_limits(
        self, container: Container, rep: DockerReplica, cpu: float | None, memory: int | None
    ) -> None:
        """``docker update``; CPU in the unit the container was created with (quota or nano)."""
        api = self._api()
        host = rep.attrs.get("HostConfig") or {}
        with _translate(container.key, f"update the limits of {rep.name}"):
            if memory is not None:
                # Memory+swap equal to memory: no swap, so the limit is the limit (and the
                # engine refuses a memory limit above the current memory+swap limit).
                api.update_container(rep.id, mem_limit=memory, memswap_limit=memory)
            if cpu is not None:
                if host.get("NanoCpus"):
                    # Compose sets `cpus:` as NanoCpus, which CpuQuota may not replace and
                    # docker-py's update_container cannot send: post the field itself.
                    url = api._url("/containers/{0}/update", rep.id)
                    api._raise_for_status(api._post_json(url, data={"NanoCpus": int(cpu * 1e9)}))
                else:
                    api.update_container(rep.id, cpu_period=100_000, cpu_quota=int(cpu * 100_000))

    def _create_config(self, unit: _Unit, container: Container, index: int) -> dict[str, Any]:
        """The engine's create body for replica ``index`` of an ``image`` Container."""
        api = self._api()
        docker = _docker_spec(container)
        spec = container.spec
        env = dict(docker.env)
        if spec.port_env and spec.port is not None:
            env[spec.port_env] = str(spec.port + index)
        cpu, memory = self._limits(unit, container)
        host_config = api.create_host_config(
            network_mode=docker.network_mode,
            binds=list(docker.volumes) or None,
            tmpfs=dict(docker.tmpfs) or None,
            mem_limit=memory,
            memswap_limit=memory,  # no swap: a memory limit is a limit (see _update_limits)
            cpu_period=100_000 if cpu is not None else None,
            cpu_quota=int(cpu * 100_000) if cpu is not None else None,
            restart_policy={"Name": "no"},  # driftmend decides restarts, and records them
            init=docker.init or None,
        )
        labels = {
            **docker.labels,
            LABEL_KEY: container.key,
            LABEL_REPLICA: str(index),
            LABEL_CONFIG: _config_hash(container),
        }
        config: dict[str, Any] = {
            "Image": docker.image,
            "Env": [f"{k}={v}" for k, v in sorted(env.items())],
            "Labels": labels,
            "HostConfig": host_config,
            "StopSignal": docker.stop_signal,
            "StopTimeout": _stop_timeout(container),
        }
        if docker.command is not None:
            config["Cmd"] = list(docker.command)
        if docker.entrypoint is not None:
            config["Entrypoint"] = list(docker.entrypoint)
        if docker.user is not None:
            config["User"] = docker.user
        if docker.working_dir is not None:
            config["WorkingDir"] = docker.working_dir
        if docker.healthcheck is not None:
            hc = docker.healthcheck
            test = list(hc.test)
            if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                test = ["CMD", *test]
            config["Healthcheck"] = {
                "Test": test,
                "Interval": int(hc.interval * 1e9),
                "Timeout": int(hc.timeout * 1e9),
                "Retries": hc.retries,
                "StartPeriod": int(hc.start_period * 1e9),
            }
        return config

    # -- the event stream (its own thread) -------------------------------------------------

    def _start_events(self) -> None:
        if self._events_thread is None or not self._events_thread.is_alive():
            self._events_thread = threading.Thread(
                target=self._events_main, name="docker events", daemon=True
            )
            self._events_thread.start()

    def _events_main(self) -> None:
        """Read the event stream; reconnect with backoff after it ends, until ``close``."""
        delay = _RECONNECT_MIN
        while not self._closing.is_set():
            client: Any = None
            stream: Any = None
            try:
                client = self._connect(None)
                stream = client.events(decode=True, filters=EVENT_FILTERS)
                with self._events_lock:
                    if self._closing.is_set():
                        stream.close()
                        return
                    self._events_stream = stream
                    self.event_stream_connects += 1
                    reconnected = self.event_stream_connects > 1
                if reconnected:
                    log.info("docker event stream reconnected; queueing every Docker resource")
                    self._post(self._on_reconnect)
                delay = _RECONNECT_MIN
                for event in stream:
                    self._post(self._on_event, event)
                if not self._closing.is_set():
                    log.warning("docker event stream ended (engine restarting?); reconnecting")
            except Exception as exc:  # a thread's boundary: log it, back off, try again
                if not self._closing.is_set():
                    log.debug("docker event stream: %s; retrying in %.1fs", exc, delay)
            finally:
                with self._events_lock:
                    self._events_stream = None
                if stream is not None:
                    with contextlib.suppress(Exception):  # closed already (by close())
                        stream.close()
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            if self._closing.wait(delay):
                return
            delay = min(delay * 2, _RECONNECT_MAX)

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
        key = self._key_of(attrs)
        if key is None:
            return
        at = int(event.get("timeNano") or 0) / 1e9 or time.time()
        if action in ("die", "destroy", "restart") and self._was_planned(cid, at):
            return
        reason = "health" if action.startswith("health_status") else action
        if action == "die":
            reason = "exit"
        log.info("%s: docker %s (%s)", key, action, attrs.get("name", cid[:12]))
        self._sink(key, reason)

    def _key_of(self, attrs: dict[str, Any]) -> str | None:
        key = attrs.get(LABEL_KEY)
        if isinstance(key, str) and key in self._units:
            return key
        project, service = attrs.get(COMPOSE_PROJECT), attrs.get(COMPOSE_SERVICE)
        name = attrs.get("name")
        for unit in self._units.values():
            docker = unit.spec.spec.docker if unit.spec is not None else None
            if docker is None:
                continue
            compose = docker.compose
            if (
                compose is not None
                and service == compose.service
                and compose.project in (None, project)
            ):
                return unit.key
            if docker.container_name is not None and name == docker.container_name:
                return unit.key
        return None

    def _plan(self, cid: str) -> list[float]:
        """Open a window in which this container's ``die`` is driftmend's own doing."""
        now = time.time()
        # Windows closed a minute ago can match no event still on its way: forget them.
        self._planned = {
            c: kept
            for c, ws in self._planned.items()
            if (kept := [w for w in ws if w[1] > now - 60])
        }
        window = [now - _PLANNED_SLACK, float("inf")]
        self._planned[cid] = [*self._planned.get(cid, []), window]
        return window

    def _was_planned(self, cid: str, at: float) -> bool:
        return any(a <= at <= b + _PLANNED_SLACK for a, b in self._planned.get(cid, []))

    # -- log followers and probes (on the loop's thread) -----------------------------------

    def _sync_followers(self, unit: _Unit, snap: _Snapshot) -> None:
        """A follower for every running replica; one last read of a replica that stopped."""
        if self._stream_client is None or self._closing.is_set():
            return
        for i, rep in snap.replicas.items():
            current = unit.followers.get(i)
            if current is not None:
                unit.log_last_ns[i] = max(unit.log_last_ns.get(i, 0), current.last_ns)
                if current.alive and current.container_id == rep.id:
                    continue
                if current.alive:
                    current.close()
            if not rep.running:
                run = (rep.id, rep.finished_at)
                if unit.drained.get(i) == run:
                    continue  # everything up to this exit was read already
                unit.drained[i] = run
            follower = _LogFollower(
                self._stream_client,
                rep.id,
                unit.dir / f"replica-{i}.log",
                unit.log_last_ns.get(i, 0),
            )
            unit.followers[i] = follower
            follower.start()

    def _sync_probes(self, unit: _Unit, container: Container, snap: _Snapshot) -> None:
        """One probe task per running replica while the spec declares a probe; none otherwise."""
        probe = container.spec.health
        for i in list(unit.probes):
            p = unit.probes[i]
            rep = snap.replicas.get(i)
            current = rep is not None and rep.running and p.run == (rep.id, rep.started_at)
            if probe is None or not current or p.spec != probe or (p.task and p.task.done()):
                if p.task is not None:
                    p.task.cancel()
                del unit.probes[i]
        if probe is None:
            return
        for i, rep in snap.replicas.items():
            if rep.running and i not in unit.probes:
                base = container.spec.port + i if container.spec.port is not None else None
                p = _Probe(run=(rep.id, rep.started_at), spec=probe, port=probe.http.port or base)
                p.task = asyncio.get_running_loop().create_task(
                    self._probe_loop(unit, i, p), name=f"probe {unit.key} replica {i}"
                )
                unit.probes[i] = p

    @staticmethod
    def _drop_probe(unit: _Unit, index: int) -> None:
        """Stop probing a replica driftmend stops: its failures are not news."""
        p = unit.probes.pop(index, None)
        if p is not None and p.task is not None:
            p.task.cancel()

    async def _probe_loop(self, unit: _Unit, index: int, p: _Probe) -> None:
        url = f"http://127.0.0.1:{p.port}{p.spec.http.path}" if p.port else None
        if p.spec.initial_delay > 0:
            await asyncio.sleep(p.spec.initial_delay)
        # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
        async with httpx.AsyncClient(timeout=p.spec.timeout, trust_env=False) as client:
            while True:
                ok = url is not None and await _probe_once(client, url)
                self._record_probe(unit, index, p, ok)
                await asyncio.sleep(p.spec.interval)

    def _record_probe(self, unit: _Unit, index: int, p: _Probe, ok: bool) -> None:
        if ok:
            p.failures = 0
            p.probed_ok = True
            if not p.healthy:
                p.healthy = True
                log.info("%s: replica %d is healthy again", unit.key, index)
                self._sink(unit.key, "health")
            return
        p.failures += 1
        if p.healthy and p.failures >= p.spec.failure_threshold:
            p.healthy = False
            log.info("%s: replica %d failed %d probes in a row", unit.key, index, p.failures)
            self._sink(unit.key, "health")

    # -- signals ---------------------------------------------------------------------------

    def _health(
        self,
        unit: _Unit,
        container: Container,
        alive: dict[int, DockerReplica],
        running: bool,
    ) -> tuple[bool | None, int]:
        """(healthy, worst consecutive failures): our probe if declared, else Docker's check.

        None until every running replica has passed a first check (a probe, or Docker's
        ``starting``): "not known yet" is neither a drift nor a successful verification.
        """
        probe = container.spec.health
        if probe is not None:
            probes = [unit.probes.get(i) for i in alive]
            worst = max((p.failures for p in probes if p is not None), default=0)
            healthy: bool | None = running and worst < probe.failure_threshold
            if healthy and not all(p is not None and p.probed_ok for p in probes):
                healthy = None
            return healthy, worst
        checked = [r for r in alive.values() if r.health is not None]
        if not checked:
            return (running if _docker_spec(container).healthcheck else True), 0
        worst = max(r.failing_streak for r in checked)
        if not running or any(r.health == "unhealthy" for r in checked):
            return False, worst
        if any(r.health != "healthy" for r in checked):
            return (None if running else False), worst
        return True, worst

    def _cpu_percent(self, unit: _Unit, rep: DockerReplica, sample: _Sample | None) -> float:
        """Percent of one core between two readings at least ``_CPU_MIN_INTERVAL`` apart."""
        if sample is None:
            return unit.cpu[rep.id].percent if rep.id in unit.cpu else 0.0
        last = unit.cpu.get(rep.id)
        if last is None or sample.cpu_total_ns < last.total_ns:
            unit.cpu[rep.id] = _Cpu(sample.at, sample.cpu_total_ns)
            return 0.0
        elapsed = sample.at - last.at
        if elapsed < _CPU_MIN_INTERVAL:
            return last.percent
        percent = (sample.cpu_total_ns - last.total_ns) / 1e9 / elapsed * 100.0
        unit.cpu[rep.id] = _Cpu(sample.at, sample.cpu_total_ns, percent)
        return percent

    def _limits(self, unit: _Unit, container: Container) -> tuple[float | None, int | None]:
        """The limits replicas should have: a ``set_limits`` override, else the spec's."""
        spec = container.spec.limits
        s = unit.state
        if s.limits_base == [spec.cpu, spec.memory]:
            return s.cpu, s.memory
        return spec.cpu, spec.memory

    def _cpu_limit(self, unit: _Unit, container: Container, rep: DockerReplica) -> float | None:
        return rep.cpu_limit or self._limits(unit, container)[0]

    def _memory_limit(self, unit: _Unit, container: Container, rep: DockerReplica) -> int | None:
        return rep.memory_limit or self._limits(unit, container)[1]

    def _exit_reason(self, unit: _Unit, rep: DockerReplica) -> str:
        """Words for how a container ended, for facts, stats and the LLM prompt."""
        if rep.oom_killed:
            limit = f" (memory limit {_human_bytes(rep.memory_limit)})" if rep.memory_limit else ""
            return f"killed by the out-of-memory killer{limit}"
        if rep.error:
            return f"could not start: {rep.error}"
        who = "stopped by driftmend" if unit.state.stopped else "exited"
        code = rep.exit_code
        if code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            if code == 128 + signal.SIGKILL and not unit.state.stopped:
                return f"killed by {name} (code {code}), not by driftmend: `docker kill` or an operator"
            return f"{who} by {name} (code {code})"
        return f"{who} with code {code}"

    def _outdated(self, container: Container, rep: DockerReplica) -> bool:
        """An ``image`` replica created from an older spec (the next restart recreates it)."""
        if _docker_spec(container).image is None or rep.config_hash is None:
            return False
        return rep.config_hash != _config_hash(container)

    # -- units and state -------------------------------------------------------------------

    def _unit(self, container: Container) -> _Unit:
        unit = self._units.get(container.key)
        if unit is None:
            directory = self._dir(container)
            raw = _read_json(directory / "state.json")
            state = _State.from_json(container.key, raw) if raw else _State(container.key)
            unit = _Unit(container.key, directory, state)
            self._units[container.key] = unit
        unit.spec = container
        return unit

    def _adopt(self, unit: _Unit, snap: _Snapshot) -> None:
        """A container that exists was created: it counts as created from now on."""
        new = set(snap.replicas) - unit.state.created
        if new:
            unit.state.created |= new
            self._save(unit)

    def _dir(self, container: Container) -> Path:
        return self._root / f"{container.metadata.namespace}-{container.name}"

    @staticmethod
    def _expected_name(container: Container, index: int) -> str:
        docker = _docker_spec(container)
        if docker.container_name is not None:
            return docker.container_name
        if docker.compose is not None:
            project = docker.compose.project or "<project>"
            return f"{project}-{docker.compose.service}-{index + 1}"
        return f"driftmend-{container.metadata.namespace}-{container.name}-{index}"

    def _desired(self, unit: _Unit, container: Container) -> int:
        s = unit.state
        if s.scale is not None and s.scale_base == container.spec.replicas:
            return min(s.scale, container.spec.max_replicas)
        return container.spec.replicas

    def _save(self, unit: _Unit) -> None:
        """Write ``state.json`` atomically (temp file + rename)."""
        path = unit.dir / "state.json"
        try:
            unit.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(unit.state.to_json(), indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise DriverError(
                f"{unit.key}: cannot write {path}: {exc.strerror or exc}; "
                "check that the state directory is writable"
            ) from exc


# --- helpers -----------------------------------------------------------------------------


def _docker_spec(container: Container) -> DockerSpec:
    """``spec.docker``, which validation guarantees for ``runtime: docker``."""
    if container.spec.docker is None:
        # Only reachable when a process Container is handed to this runtime by mistake.
        raise PermanentError(
            f"{container.key}: the docker runtime needs spec.docker "
            f"(runtime is {container.spec.runtime})"
        )
    return container.spec.docker


def _stop_timeout(container: Container) -> int:
    return max(0, round(_docker_spec(container).stop_timeout))


def _config_hash(container: Container) -> str:
    """What an ``image`` replica was created from, minus the limits (``set_limits`` moves them)."""
    docker = _docker_spec(container)
    spec = container.spec
    basis = {
        "docker": docker.model_dump(mode="json", by_alias=True),
        "port": spec.port,
        "portEnv": spec.port_env,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def _replica_index(docker: DockerSpec, attrs: dict[str, Any]) -> int | None:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    raw = labels.get(COMPOSE_NUMBER) if docker.compose is not None else labels.get(LABEL_REPLICA)
    try:
        index = int(str(raw)) - (1 if docker.compose is not None else 0)
    except (TypeError, ValueError):
        return None
    return index if index >= 0 else None


def _clone_config(
    container: Container, template: DockerReplica, index: int
) -> tuple[str, dict[str, Any]]:
    """A Compose service's container config for another replica (``docker compose --scale``)."""
    attrs = template.attrs
    config = dict(attrs.get("Config") or {})
    labels = dict(config.get("Labels") or {})
    labels[COMPOSE_NUMBER] = str(index + 1)
    config["Labels"] = labels
    if config.get("Hostname") == template.id[:12]:
        config.pop("Hostname")  # the engine's default (the short id): let the new one get its own
    spec = container.spec
    if spec.port_env and spec.port is not None:
        env = [e for e in config.get("Env") or [] if not e.startswith(f"{spec.port_env}=")]
        config["Env"] = [*env, f"{spec.port_env}={spec.port + index}"]
    config["HostConfig"] = attrs.get("HostConfig") or {}
    mode = str(config["HostConfig"].get("NetworkMode") or "")
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    if mode not in ("host", "none") and networks:
        # The service's name as an alias on each network, as Compose gives its replicas.
        service = labels.get(COMPOSE_SERVICE, "")
        config["NetworkingConfig"] = {
            "EndpointsConfig": {net: {"Aliases": [service]} for net in networks}
        }
    name = re.sub(r"([_-])\d+$", rf"\g<1>{index + 1}", template.name)
    if name == template.name:
        name = f"{template.name}-{index + 1}"
    return name, config


@contextlib.contextmanager
def _translate(key: str, what: str) -> Iterator[None]:
    """docker-py and transport errors become ``DriverError`` (try again) at this seam."""
    try:
        yield
    except (DriverError, PermanentError):
        raise
    except docker_errors.APIError as exc:
        explanation = exc.explanation or str(exc)
        if exc.status_code == 400:  # the request itself is wrong: retrying will not help
            _raise_permanent(key, what, explanation, exc)
        raise DriverError(f"{key}: cannot {what}: {explanation}") from exc
    except (docker_errors.DockerException, requests.RequestException, OSError) as exc:
        raise DriverError(
            f"{key}: cannot {what}: the Docker engine did not answer ({exc}); is dockerd running?"
        ) from exc


def _raise_permanent(key: str, what: str, explanation: str, exc: Exception) -> NoReturn:
    raise PermanentError(f"{key}: cannot {what}: {explanation}") from exc


async def _probe_once(client: httpx.AsyncClient, url: str) -> bool:
    """One GET: 2xx and 3xx pass; an error status, a refused connection or a timeout fails."""
    try:
        response = await client.get(url)
    except (httpx.HTTPError, httpx.InvalidURL, OSError):
        return False
    return response.status_code < 400


def _human_bytes(n: int) -> str:
    """``64Mi``, ``1.5Gi``: the quantity form the specs use."""
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g}{unit}"
    return f"{n}B"


def _check_unix_socket(base_url: str) -> None:
    """Raise ``OSError`` unless the engine's Unix socket accepts a connection.

    docker-py leaves its socket unclosed when a connection is refused (a ResourceWarning at
    garbage collection), so a missing or restarting engine is detected here first, with a
    socket that is always closed. Other transports (TCP, SSH) are left to docker-py.
    """
    for prefix in ("unix://", "http+unix://"):
        if base_url.startswith(prefix):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2.0)
                sock.connect(base_url.removeprefix(prefix))
            return


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _join_all(threads: Sequence[threading.Thread], within: float) -> None:
    end = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
