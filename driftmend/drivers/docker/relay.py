"""The runtime's side of the engine's event stream: when it runs, and where its events go.

Stage: *events*. The stream (``events.py``) reads in its own thread; an ``EventRelay``
creates it when the runtime starts, starts its thread once the engine first answers (so a
controller that never touches Docker never connects), hands each event and reconnect to
the event loop's thread (the sink and the queue are not thread-safe), and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from driftmend.drivers.docker.events import EventStream


class EventRelay:
    """Owns the ``EventStream`` between the runtime's ``start`` and ``close``.

    ``connect`` opens a client for the stream; ``on_event`` and ``on_reconnect`` run on the
    loop's thread. ``start`` and ``close`` are called on the loop, ``engine_connected`` from
    any thread (the pool's, when a call first reaches the engine): a lock orders them.
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: EventStream | None = None
        self._guard = threading.Lock()
        self._connects_before = 0
        self.started = False

    @property
    def connects(self) -> int:
        """How often the stream connected, across restarts of the runtime."""
        stream = self._stream
        return self._connects_before + (stream.connects if stream is not None else 0)

    @property
    def live(self) -> bool:
        """True while the event stream is connected (events are not being missed)."""
        stream = self._stream
        return self.started and stream is not None and stream.live

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the stream, to be started by ``engine_connected``; events go to ``loop``."""
        self._loop = loop
        self.started = True
        with self._guard:
            self._stream = EventStream(
                self._connect,
                lambda event: self._post(self._on_event, event),
                lambda: self._post(self._on_reconnect),
            )

    def engine_connected(self) -> None:
        """The engine answered: start the stream's thread (at most one, from any thread)."""
        with self._guard:
            stream = self._stream if self.started else None
        if stream is not None:
            stream.ensure_running()

    def close(self) -> threading.Thread | None:
        """Stop the stream; returns its thread, for the caller to join off the loop."""
        self.started = False
        with self._guard:
            stream, self._stream = self._stream, None
        if stream is None:
            return None
        thread = stream.close()
        self._connects_before += stream.connects
        return thread

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the event loop's thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(fn, *args)


def join_all(threads: Sequence[threading.Thread], within: float) -> None:
    """Join ``threads`` within ``within`` seconds in all (blocking: run it off the loop)."""
    end = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
