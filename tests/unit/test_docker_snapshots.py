"""The Docker runtime's snapshot cache: kept until an event, an action or its age says not."""

from __future__ import annotations

from driftmend.drivers.docker.replicas import Snapshot
from driftmend.drivers.docker.snapshots import SnapshotCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snap() -> Snapshot:
    return Snapshot(replicas={}, extras=())


def test_a_snapshot_is_kept_until_it_is_stale_or_old() -> None:
    clock = Clock()
    cache = SnapshotCache(max_age=10.0, clock=clock)
    assert cache.get("Container/a") is None
    first = snap()
    cache.put("Container/a", first, cache.begin("Container/a"))
    clock.now += 9.9
    assert cache.get("Container/a") is first
    assert cache.get("Container/b") is None
    clock.now += 0.1  # old: a lost event costs at most this long
    assert cache.get("Container/a") is None
    cache.put("Container/a", first, cache.begin("Container/a"))
    cache.stale("Container/a")  # an event, or an action of ours
    assert cache.get("Container/a") is None


def test_a_snapshot_taken_while_an_event_came_is_not_kept() -> None:
    cache = SnapshotCache(clock=Clock())
    token = cache.begin("Container/a")
    cache.stale("Container/a")  # the container died while the engine answered
    cache.put("Container/a", snap(), token)
    assert cache.get("Container/a") is None
    cache.put("Container/a", snap(), cache.begin("Container/a"))
    assert cache.get("Container/a") is not None


def test_a_reconnect_makes_every_snapshot_stale() -> None:
    cache = SnapshotCache(clock=Clock())
    for key in ("Container/a", "Container/b"):
        cache.put(key, snap(), cache.begin(key))
    token = cache.begin("Container/c")
    cache.clear()
    assert cache.get("Container/a") is None and cache.get("Container/b") is None
    cache.put("Container/c", snap(), token)  # begun before the reconnect
    assert cache.get("Container/c") is None
