"""The engine's event stream, read in its own thread, and which resource an event concerns.

Stage: *events* in docs/ARCHITECTURE.md's data flow: ``die``, ``oom``, ``health_status``, ``restart`` and
``destroy`` put the resource on the queue at once. docker-py's ``events()`` is a blocking
generator, so one thread reads it and hands each event to the event loop's thread. After the
engine restarts the stream ends: the thread reconnects with backoff and reports the
reconnect, so that every Docker resource is queued (the resync covers what the gap hid).

``PlannedStops`` remembers when driftmend itself stopped a container, so that its own
``die`` is not reported as news (``news_of``); ``key_of`` and ``reason_of`` are pure.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from driftmend.drivers.docker.replicas import (
    COMPOSE_ONEOFF,
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    LABEL_KEY,
)
from driftmend.spec import Container

log = logging.getLogger(__name__)

# What the event stream carries: exits, OOM kills, health changes, restarts by Docker's own
# policy, and removals (a removed container is a replica that is not running).
# The events reported to the loop as news (a pass to run) ...
REPORTED = ("die", "oom", "health_status", "restart", "destroy")
# ... and those that only say a Container's snapshot is stale (snapshots.py).
EVENT_FILTERS = {
    "type": ["container"],
    "event": [*REPORTED, "create", "start", "stop", "kill", "pause", "unpause", "update", "rename"],
}
RECONNECT_MIN = 0.1  # seconds before the first reconnect of the event stream ...
RECONNECT_MAX = 2.0  # ... doubling up to this: a local engine restarts in a few seconds
PLANNED_SLACK = 0.2  # seconds around a driftmend stop in which a `die` event is ours
_PLANNED_KEEP = 60.0  # a window closed this long ago can match no event still on its way


class PlannedStops:
    """Windows of time in which a container's ``die`` is driftmend's own doing.

    Opened by the pool threads that stop containers, read by the loop's thread: locked.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, list[list[float]]] = {}  # container id -> [start, end]

    def open(self, cid: str) -> list[float]:
        """A window from now until ``close`` is called on it."""
        now = self._clock()
        window = [now - PLANNED_SLACK, float("inf")]
        with self._lock:
            self._windows = {
                c: kept
                for c, ws in self._windows.items()
                if (kept := [w for w in ws if w[1] > now - _PLANNED_KEEP])
            }
            self._windows.setdefault(cid, []).append(window)
        return window

    def close(self, window: list[float]) -> None:
        """The stop is over: events after it (plus the slack) are news again."""
        with self._lock:
            window[1] = self._clock()

    def covers(self, cid: str, at: float) -> bool:
        """True when an event of ``cid`` at ``at`` falls in one of its windows."""
        with self._lock:
            return any(a <= at <= b + PLANNED_SLACK for a, b in self._windows.get(cid, []))


@dataclass(frozen=True)
class News:
    """An engine event that concerns a declared resource and was not driftmend's doing."""

    key: str  # the resource's key
    action: str  # the engine's word: die, oom, health_status: unhealthy, restart, destroy
    container: str  # the container's name (its short id when the event has none)


def news_of(event: dict[str, Any], key: str, planned: PlannedStops) -> News | None:
    """What an engine event says about the resource ``key`` it concerns (``key_of``); None
    when it is the ``die``/``destroy``/``restart`` of a stop driftmend made itself."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    action = str(event.get("Action") or event.get("status") or "")
    cid = str(actor.get("ID") or event.get("id") or "")
    at = int(event.get("timeNano") or 0) / 1e9 or time.time()
    if action in ("die", "destroy", "restart") and planned.covers(cid, at):
        return None
    return News(key, action, str(attrs.get("name", cid[:12])))


def reported(action: str) -> bool:
    """Whether an event with ``action`` is news for the loop (not only a stale snapshot)."""
    return action.split(":", 1)[0].strip() in REPORTED


def reason_of(action: str) -> str:
    """The loop's word for an engine event: ``exit``, ``health``, ``oom``, ``restart``, ..."""
    if action == "die":
        return "exit"
    if action.startswith("health_status"):
        return "health"
    return action


def key_of(attrs: dict[str, Any], containers: Iterable[Container]) -> str | None:
    """The key of the watched Container an event's actor attributes belong to, if any.

    Our own label first; then a Compose service (a one-off ``compose run`` container is not a
    replica; a spec without a project matches the service in any project: the event only
    queues a pass, which refuses to choose); then a watched container's name.
    """
    by_key = {c.key: c for c in containers}
    key = attrs.get(LABEL_KEY)
    if isinstance(key, str) and key in by_key:
        return key
    if attrs.get(COMPOSE_ONEOFF) == "True":
        return None
    project, service, name = (
        attrs.get(COMPOSE_PROJECT),
        attrs.get(COMPOSE_SERVICE),
        attrs.get("name"),
    )
    for c in by_key.values():
        docker = c.spec.docker
        if docker is None:
            continue
        compose = docker.compose
        if (
            compose is not None
            and service == compose.service
            and compose.project in (None, project)
        ):
            return c.key
        if docker.container_name is not None and name == docker.container_name:
            return c.key
    return None


class EventStream:
    """One thread reading the engine's events until ``close``; reconnects after it ends.

    ``connect`` returns a docker-py ``APIClient`` (made with a finite timeout, so a dead engine
    cannot hold the thread in its ``/version`` call; ``events()`` itself streams without
    one). ``on_event`` and ``on_reconnect`` are called from this thread.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        on_event: Callable[[dict[str, Any]], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards the thread, the stream and the counter
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self.connects = 0
        """How often the stream connected: more than once means it reconnected."""

    @property
    def live(self) -> bool:
        """True while connected: no event is being missed."""
        return self._stream is not None

    def ensure_running(self) -> None:
        """Start the thread unless one runs (safe from any thread: one thread at most)."""
        with self._lock:
            if self._closing.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._main, name="docker events", daemon=True
                )
                self._thread.start()

    def close(self) -> threading.Thread | None:
        """Stop reading; returns the thread to join (closing the stream wakes it)."""
        self._closing.set()
        with self._lock:
            stream, self._stream = self._stream, None
            thread, self._thread = self._thread, None
        if stream is not None:
            with contextlib.suppress(Exception):  # closed by the engine already
                stream.close()
        return thread

    def _main(self) -> None:
        delay = RECONNECT_MIN
        while not self._closing.is_set():
            client: Any = None
            stream: Any = None
            try:
                client = self._connect()
                stream = client.events(decode=True, filters=EVENT_FILTERS)
                with self._lock:
                    if self._closing.is_set():
                        return
                    self._stream = stream
                    self.connects += 1
                    reconnected = self.connects > 1
                if reconnected:
                    log.info("docker event stream reconnected; queueing every Docker resource")
                    self._on_reconnect()
                delay = RECONNECT_MIN
                for event in stream:
                    self._on_event(event)
                if not self._closing.is_set():
                    log.warning("docker event stream ended (engine restarting?); reconnecting")
            except Exception as exc:  # a thread's boundary: log it, back off, try again
                if not self._closing.is_set():
                    log.debug("docker event stream: %s; retrying in %.1fs", exc, delay)
            finally:
                with self._lock:
                    self._stream = None
                for closable in (stream, client):
                    if closable is not None:
                        with contextlib.suppress(Exception):  # closed already (by close())
                            closable.close()
            if self._closing.wait(delay):
                return
            delay = min(delay * 2, RECONNECT_MAX)
