"""LeaderElector's loops against an in-memory LeaseApi (the API server's own tests are in
tests/integration/test_leader_election.py): metrics, failure to renew, release, settings."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from driftmend.leader import LeaderElector, LeaseConflict, LeaseError, default_identity
from driftmend.lease import LeaseRecord
from driftmend.metrics import Metrics
from driftmend.settings import Settings


class MemoryLeases:
    """One Lease in memory with the API server's optimistic concurrency; ``down`` fails calls."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.versions = itertools.count(1)
        self.down = False
        self.calls = 0
        self.failures = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            self.failures += 1
            raise LeaseError("connection refused")

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        self._check()
        return self.record

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.record is not None:
            raise LeaseConflict("already exists")
        self.record = replace(record, resource_version=str(next(self.versions)))
        return self.record

    async def replace(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._check()
        assert self.record is not None
        if record.resource_version != self.record.resource_version:
            raise LeaseConflict("conflict")
        self.record = replace(record, resource_version=str(next(self.versions)))
        return self.record


FAST = {"lease_duration": 0.4, "renew_deadline": 0.3, "retry_period": 0.05}


async def until(check: Callable[[], object], what: str, deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"after {deadline_s}s: {what}")
        await asyncio.sleep(0.01)


def recorder(events: list[str], name: str) -> Callable[[], Awaitable[None]]:
    async def record() -> None:
        events.append(name)

    return record


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_leader_that_cannot_renew_stops_after_renew_deadline() -> None:
    api = MemoryLeases()
    registry = CollectorRegistry()
    elector = LeaderElector(
        api, name="l", namespace="ns", identity="a", metrics=Metrics(registry), **FAST
    )
    events: list[str] = []
    run = asyncio.create_task(elector.run(forever, recorder(events, "stopped")))
    await until(lambda: elector.is_leader, "a leads")
    g = registry.get_sample_value
    assert g("driftmend_leader", {"identity": "a"}) == 1
    assert g("driftmend_leader_transitions_total") == 1

    api.down = True
    failed_at = time.monotonic()
    await asyncio.wait_for(run, 5)
    took = time.monotonic() - failed_at
    assert events == ["stopped"]
    assert not elector.is_leader and not elector.released  # lost, not shut down
    assert g("driftmend_leader", {"identity": "a"}) == 0
    # Not before the deadline (a blip is ridden out), not long after it.
    assert 0.3 - 0.06 <= took <= 0.3 + 0.2, took


async def test_a_leader_rides_out_a_blip_shorter_than_renew_deadline() -> None:
    api = MemoryLeases()
    elector = LeaderElector(api, name="l", namespace="ns", identity="a", **FAST)
    events: list[str] = []
    run = asyncio.create_task(elector.run(forever, recorder(events, "stopped")))
    await until(lambda: elector.is_leader, "a leads")
    api.down = True
    # A blip of two failed tries (about 0.1 s), well inside the 0.3 s deadline.
    await until(lambda: api.failures >= 2, "two tries fail")
    api.down = False
    assert not elector.released
    renewed = api.record.renew_time if api.record else None
    await until(lambda: api.record is not None and api.record.renew_time != renewed, "a renews")
    assert elector.is_leader and events == []
    await elector.release()
    await asyncio.wait_for(run, 5)
    assert events == ["stopped"]


async def test_release_clears_the_holder_and_a_standby_takes_over_at_once() -> None:
    api = MemoryLeases()
    registry = CollectorRegistry()
    a = LeaderElector(api, name="l", namespace="ns", identity="a", **FAST)
    b = LeaderElector(
        api,
        name="l",
        namespace="ns",
        identity="b",
        metrics=Metrics(registry),
        **{**FAST, "lease_duration": 30.0, "renew_deadline": 20.0},
    )
    run_a = asyncio.create_task(a.run(forever, recorder([], "stopped")))
    await until(lambda: a.is_leader, "a leads")
    run_b = asyncio.create_task(b.run(forever, recorder([], "stopped")))
    seen = api.calls
    await until(lambda: api.calls >= seen + 6, "a and b try a few times")
    assert not b.is_leader
    await a.release()
    await asyncio.wait_for(run_a, 5)
    assert api.record is not None and api.record.holder in (None, "b")
    await until(lambda: b.is_leader, "b leads", deadline_s=1.0)
    assert api.record.holder == "b" and api.record.transitions == 1
    assert registry.get_sample_value("driftmend_leader_transitions_total") == 1
    assert a.released and not b.released
    await b.release()
    await asyncio.wait_for(run_b, 5)


async def test_a_failing_leading_task_releases_the_lease_and_raises() -> None:
    api = MemoryLeases()
    elector = LeaderElector(api, name="l", namespace="ns", identity="a", **FAST)

    async def broken() -> None:
        raise RuntimeError("the controller could not start")

    events: list[str] = []
    with pytest.raises(RuntimeError, match="could not start"):
        await asyncio.wait_for(elector.run(broken, recorder(events, "stopped")), 5)
    assert events == ["stopped"]
    assert api.record is not None and api.record.holder is None


def test_bad_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElector(
            MemoryLeases(),
            name="l",
            namespace="n",
            identity="a",
            lease_duration=3,
            renew_deadline=3,
        )


def test_settings_defaults_fail_over_within_seconds_and_bad_ones_are_refused() -> None:
    s = Settings()
    assert (s.leader_lease_duration, s.leader_renew_deadline, s.leader_retry_period) == (4, 3, 1)
    with pytest.raises(ValidationError, match="shorter than leader_lease_duration"):
        Settings(leader_lease_duration=2, leader_renew_deadline=3)
    with pytest.raises(ValidationError, match="shorter than leader_renew_deadline"):
        Settings(leader_retry_period=3)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTMEND_LEADER_LEASE_DURATION", "15")
    monkeypatch.setenv("DRIFTMEND_LEADER_RENEW_DEADLINE", "10")
    monkeypatch.setenv("DRIFTMEND_LEADER_RETRY_PERIOD", "2")
    s = Settings()
    assert (s.leader_lease_duration, s.leader_renew_deadline, s.leader_retry_period) == (15, 10, 2)


def test_the_lease_and_identity_come_from_the_downward_api(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().leader_identity is None
    assert (Settings().leader_lease_name, Settings().leader_namespace) == (
        "driftmend-leader",
        "default",
    )
    monkeypatch.setenv("POD_NAME", "driftmend-7d9f-abcde")
    monkeypatch.setenv("POD_NAMESPACE", "driftmend")
    s = Settings()
    assert (s.leader_identity, s.leader_namespace) == ("driftmend-7d9f-abcde", "driftmend")


def test_default_identities_differ_per_process_on_one_host() -> None:
    a, b = default_identity(), default_identity()
    assert a != b and a.split("_")[0] == b.split("_")[0] == socket.gethostname()


async def test_a_release_during_the_winning_try_never_starts_leading() -> None:
    api = MemoryLeases()
    gate = asyncio.Event()
    real_create = api.create

    async def slow_create(namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        await gate.wait()
        return await real_create(namespace, name, record)

    api.create = slow_create  # type: ignore[method-assign]
    elector = LeaderElector(api, name="l", namespace="ns", identity="a", **FAST)
    events: list[str] = []
    run = asyncio.create_task(elector.run(recorder(events, "started"), recorder(events, "stopped")))
    await until(lambda: api.calls >= 1, "a reads the lease")
    release = asyncio.create_task(elector.release())
    await until(lambda: elector._stop.is_set(), "the release began")
    gate.set()
    await asyncio.wait_for(asyncio.gather(run, release), 5)
    assert events == []
    assert not elector.is_leader
    assert api.record is not None and api.record.holder is None
