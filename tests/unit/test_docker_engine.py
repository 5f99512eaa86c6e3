"""The Docker runtime's seams without an engine: docker-py's errors translated into ours, the
event stream's mapping and reconnects, the planned-stop windows, and the state file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from docker import errors as docker_errors

from driftmend.drivers.docker.engine import api_error, connect, translate
from driftmend.drivers.docker.events import EventStream, PlannedStops, key_of, reason_of
from driftmend.drivers.docker.state import DockerState, load_state, save_state
from driftmend.errors import DriverError, PermanentError
from driftmend.spec import Container
from tests.integration.harness import eventually


def api_failure(status: int, explanation: str = "it went wrong") -> docker_errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker_errors.APIError("failed", response=response, explanation=explanation)


# --- error translation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),  # a bad request; exec: executable file not found
        (403, PermanentError),
        (422, PermanentError),
        (404, DriverError),  # removed meanwhile: the next pass sees it missing
        (409, DriverError),  # an operation under way: try again
        (429, DriverError),
        (500, DriverError),
        (503, DriverError),
    ],
)
def test_engine_answers_become_permanent_or_temporary(status: int, kind: type) -> None:
    error = api_error("Container/web", "start web-1", api_failure(status, "exec: not found"))
    assert type(error) is kind
    assert str(error) == "Container/web: cannot start web-1: exec: not found"


def test_translate_keeps_the_cause_and_passes_our_errors() -> None:
    with pytest.raises(PermanentError) as info, translate("Container/web", "start web-1"):
        raise api_failure(400)
    assert isinstance(info.value.__cause__, docker_errors.APIError)
    with (
        pytest.raises(DriverError, match=r"did not answer.*is dockerd running"),
        translate("k", "list"),
    ):
        raise requests.ConnectionError("refused")
    with pytest.raises(DriverError, match="did not answer"), translate("k", "list"):
        raise OSError("socket closed")
    ours = PermanentError("already ours")
    with pytest.raises(PermanentError) as kept, translate("k", "list"):
        raise ours
    assert kept.value is ours


def test_no_engine_is_a_driver_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match=r"no Docker engine answers at unix://.*start dockerd"):
        connect(f"unix://{tmp_path}/none.sock", timeout=1.0)


# --- events ------------------------------------------------------------------------------


def container(name: str, docker: dict[str, Any]) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": name},
            "spec": {"runtime": "docker", "docker": docker},
        }
    )


def test_an_event_maps_to_the_container_it_concerns() -> None:
    specs = [
        container("mine", {"image": "img"}),
        container("pinned", {"compose": {"service": "web", "project": "shop"}}),
        container("any", {"compose": {"service": "db"}}),
        container("watched", {"containerName": "legacy"}),
    ]
    compose = {"com.docker.compose.service": "web", "com.docker.compose.project": "shop"}
    assert key_of({"driftmend.key": "Container/mine"}, specs) == "Container/mine"
    assert key_of({"driftmend.key": "Container/gone"}, specs) is None
    assert key_of(compose, specs) == "Container/pinned"
    assert key_of({**compose, "com.docker.compose.project": "other"}, specs) is None
    assert key_of({**compose, "com.docker.compose.oneoff": "True"}, specs) is None
    assert key_of(
        {"com.docker.compose.service": "db", "com.docker.compose.project": "x"}, specs
    ) == ("Container/any")
    assert key_of({"name": "legacy"}, specs) == "Container/watched"
    assert key_of({"name": "stranger"}, specs) is None


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("die", "exit"),
        ("oom", "oom"),
        ("health_status: unhealthy", "health"),
        ("restart", "restart"),
        ("destroy", "destroy"),
    ],
)
def test_event_reasons(action: str, reason: str) -> None:
    assert reason_of(action) == reason


def test_planned_stops_cover_their_window_and_a_little_after() -> None:
    now = [100.0]
    planned = PlannedStops(clock=lambda: now[0])
    window = planned.open("c1")
    assert planned.covers("c1", 100.0) and planned.covers("c1", 5000.0)  # open: any time
    now[0] = 101.0
    planned.close(window)
    assert planned.covers("c1", 101.1)  # the engine's `die` may be stamped a moment later
    assert not planned.covers("c1", 102.0) and not planned.covers("c1", 99.0)
    assert not planned.covers("c2", 100.5)
    now[0] = 200.0
    planned.open("c2")  # opening forgets windows closed a minute ago
    assert not planned.covers("c1", 101.1)


class _Stream:
    """What docker-py's event generator is to the thread: events, then the end."""

    def __init__(self, events: list[dict[str, Any]], hold: threading.Event | None = None):
        self._events = events
        self._hold = hold

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self._events
        if self._hold is not None:
            self._hold.wait(10)  # an open stream, until close()

    def close(self) -> None:
        if self._hold is not None:
            self._hold.set()


class _Client:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def events(self, decode: bool, filters: dict[str, Any]) -> _Stream:
        return self.stream

    def close(self) -> None:
        pass


async def test_the_event_thread_reconnects_once_at_a_time() -> None:
    hold = threading.Event()
    streams = [_Stream([{"Action": "die"}]), _Stream([{"Action": "oom"}], hold)]
    connects: list[int] = []

    def connect() -> _Client:
        connects.append(1)
        if len(connects) == 2:
            raise requests.ConnectionError("the engine is restarting")
        return _Client(streams.pop(0))

    seen: list[str] = []
    reconnects: list[int] = []
    events = EventStream(connect, lambda e: seen.append(e["Action"]), lambda: reconnects.append(1))
    for _ in range(5):
        events.ensure_running()  # from several places: still one thread
    assert [t.name for t in threading.enumerate()].count("docker events") == 1
    await eventually(lambda: seen == ["die", "oom"], what="both streams read")
    assert events.connects == 2 and reconnects == [1] and len(connects) == 3
    thread = events.close()
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()
    events.ensure_running()  # closed for good
    assert "docker events" not in [t.name for t in threading.enumerate()]


# --- state -------------------------------------------------------------------------------


def test_state_round_trips_through_its_file(tmp_path: Path) -> None:
    state = DockerState(
        "Container/web",
        created={0, 2},
        stopped=True,
        scale=3,
        scale_base=1,
        restarts={0: 2},
        cpu=1.5,
        memory=96 << 20,
        limits_base=[0.5, 64 << 20],
        log_ns={0: 1795582446598413247},
    )
    save_state(tmp_path, state)
    assert load_state(tmp_path, "Container/web") == state
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, renamed


def test_a_damaged_state_file_falls_back_field_by_field(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"created": "all", "scale": True, "restarts": {"0": "x", "1": 2}, "cpu": "1"})
    )
    state = load_state(tmp_path, "Container/web")
    assert state == DockerState("Container/web", restarts={1: 2})
    (tmp_path / "state.json").write_text("{not json")
    assert load_state(tmp_path, "Container/web") == DockerState("Container/web")


def test_an_unwritable_state_directory_is_a_driver_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DriverError, match=r"cannot write .*state\.json"):
        save_state(blocker / "sub", DockerState("Container/web"))
