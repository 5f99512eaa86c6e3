"""Fakes of the controller's seams for its unit tests: drivers, planner, time.

The controller is built as in production (``Controller`` with the real store on a temporary
file, the real catalogue, guard, metrics and MCP-less invoker); only what would reach a
process, a server or a model is replaced, through the Protocols those seams define
(``drivers.base``, ``planners.base.Planner``). The fake clock moves only when the code under
test sleeps, so a verification that times out costs no wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry

from driftmend.controller import Controller
from driftmend.drivers.base import EventSink
from driftmend.errors import TemporaryError
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.model import Observation, Plan, PlanSource, PlanStep
from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.settings import Settings
from driftmend.spec import (
    Container,
    HealingPolicy,
    Loaded,
    LoadResult,
    PostgresDatabase,
    RedisCache,
    Resource,
)
from driftmend.store import Store
from driftmend.tools.catalogue import default_catalogue


class FakeClock:
    """Unix time that advances only when ``sleep`` is awaited (or ``advance`` is called)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeRuntime:
    """A container runtime whose containers are flags: ``running[name]``.

    ``restart`` brings a container back unless it is in ``stuck`` (a fix that does not
    hold); ``fail_observe`` makes the next observation raise a temporary error.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.running: dict[str, bool] = {}
        self.stuck: set[str] = set()
        self.restarts: list[str] = []
        self.fail_observe: str | None = None
        self.sink: EventSink | None = None

    def set_event_sink(self, sink: EventSink) -> None:
        self.sink = sink

    def set_start_failure_sink(self, sink: Callable[[str, str], None]) -> None:
        self.start_failure_sink = sink

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ensure(self, container: Container) -> list[str]:
        self.running.setdefault(container.name, True)
        return []

    async def observe(self, container: Container) -> Observation:
        if self.fail_observe is not None:
            raise TemporaryError(self.fail_observe, delay=2.0)
        up = self.running.get(container.name, True)
        return Observation(container.key, self.clock(), {"container.running": up})

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        self.restarts.append(container.name)
        if container.name not in self.stuck:
            self.running[container.name] = True
        return {"restarted": container.name}

    async def stop(self, container: Container) -> dict[str, Any]:
        self.running[container.name] = False
        return {}

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        self.running[container.name] = True
        return {}

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        return {"replicas": replicas}

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        return {}

    async def stats(self, container: Container) -> dict[str, Any]:
        return {"cpu": 0.0}

    def log_files(self, container: Container) -> Sequence[str]:
        return ()


class FakeDatastore:
    """A PostgreSQL or Redis driver that reports ``up`` and nothing else."""

    def __init__(self, signal: str, clock: Callable[[], float]) -> None:
        self.signal = signal
        self.clock = clock
        self.up = True

    async def observe(self, resource: PostgresDatabase | RedisCache) -> Observation:
        return Observation(resource.key, self.clock(), {self.signal: self.up})

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:  # tools the tests never call
        raise AttributeError(name)


@dataclass
class FakePlanner:
    """A planner that answers with ``steps`` (tool names on the resource) and keeps every
    request it was given."""

    steps: Sequence[str] = ()
    name: str = "gemini"
    requests: list[PlanRequest] = field(default_factory=list)

    @property
    def source(self) -> PlanSource:
        """The plan source the planner's name stands for."""
        return cast(PlanSource, self.name)

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        self.requests.append(request)
        key = request.resource.key
        plan = (
            Plan(key, tuple(PlanStep(t, key) for t in self.steps), self.source, "the model's plan")
            if self.steps
            else None
        )
        return PlannerAnswer(
            plan, self.name, "fake-model", "prompt", "response", 10, 5, 0.01,
            None if plan else "no tool calls",
        )  # fmt: skip

    async def close(self) -> None:
        return None


@dataclass
class Rig:
    """A controller on fakes, and the fakes to drive it."""

    controller: Controller
    clock: FakeClock
    runtime: FakeRuntime
    store: Store

    def apply(self, resources: Sequence[Resource], policies: Sequence[HealingPolicy]) -> None:
        docs = [Loaded(d, "test.yaml", i) for i, d in enumerate([*resources, *policies])]
        self.controller.apply(LoadResult(docs, []))


def rig(
    tmp_path: Path,
    *,
    planner: FakePlanner | None = None,
    **settings: Any,
) -> Rig:
    """A controller whose drivers, planner and time are fakes; its store a real SQLite file."""
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    s = Settings(state_dir=tmp_path, **settings)
    store = Store(s.store_path)
    controller = Controller(
        settings=s,
        runtime=runtime,
        postgres=FakeDatastore("postgres.up", clock),
        redis=FakeDatastore("redis.up", clock),
        logs=LogAccumulator(),
        store=store,
        metrics=Metrics(CollectorRegistry()),
        catalogue=default_catalogue(),
        planners={planner.name: planner} if planner else None,
        clock=clock,
        sleep=clock.sleep,
    )
    return Rig(controller, clock, runtime, store)
