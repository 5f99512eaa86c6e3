"""Containers' output copied to ``replica-<i>.log``, so the log accumulator reads Docker
containers exactly as it reads processes.

Stage: *observe*. One follower thread per running container streams its logs with Docker's
timestamps (``timestamps=True``) and appends them to the replica's file:

- **Where it starts.** After the newest line already copied (``since``, then a nanosecond
  comparison), so a line is written once however often followers come and go; with nothing
  copied yet, the last ``FIRST_TAIL`` lines only, never a long-lived container's whole history.
- **Which time a line gets.** A line that carries a time of its own (the shop's, PostgreSQL's,
  Redis's formats) is written as it is. Any other line gets Docker's timestamp, written in
  the accumulator's one-line format (``<time> <LEVEL> - <message>``), so its time is when the
  container wrote it, not when the file was read. Continuation lines (traceback frames) stay
  as they are, so they still join the event before them (``render``, pure).
- **How big the file gets.** Past ``MAX_LOG_BYTES`` it is rotated to ``replica-<i>.log.1``
  (one older generation is kept); the accumulator finishes the old file and opens the new.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from docker import errors as docker_errors  # type: ignore[import-untyped]  # no type information

from driftmend.drivers.docker.replicas import DockerReplica, parse_time_ns
from driftmend.log_lines import render
from driftmend.model import LogLine

log = logging.getLogger(__name__)

FIRST_TAIL = 200  # lines of history copied when nothing of a replica was copied before
MAX_LOG_BYTES = 8 * 1024 * 1024  # replica-<i>.log is rotated past this size


class LogFile:
    """An append-only file rotated to ``<name>.1`` once it grows past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held for the follower's life

    def write_lines(self, lines: list[str]) -> None:
        """Append complete lines, then rotate if the file has grown too big."""
        if not lines:
            return
        self._out.write("".join(f"{line}\n" for line in lines).encode("utf-8", "replace"))
        self._out.flush()
        if self._out.tell() >= self.max_bytes:
            self._rotate()

    def close(self) -> None:
        """Close the file."""
        self._out.close()

    def _rotate(self) -> None:
        self._out.close()
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._out = open(self.path, "ab")  # noqa: SIM115 - see __init__


class LogFollower:
    """Appends one run of one container's output to its replica's log file, from a thread.

    ``logs(follow=True)`` ends when the container stops; the runtime starts a new follower
    for the next run, from ``last_ns`` (the newest line written).
    """

    def __init__(
        self,
        api: Any,
        container_id: str,
        path: Path,
        since_ns: int,
        *,
        first_tail: int = FIRST_TAIL,
        max_bytes: int = MAX_LOG_BYTES,
    ) -> None:
        self.container_id = container_id
        self.path = path
        self.last_ns = since_ns
        self._api = api
        self._first_tail = first_tail
        self._max_bytes = max_bytes
        self._stream: Any = None
        self._closed = False
        self._lock = threading.Lock()
        self._previous: LogLine | None = None
        self.thread = threading.Thread(
            target=self._main, name=f"docker logs {container_id[:12]}", daemon=True
        )

    @property
    def alive(self) -> bool:
        """True while the thread copies output."""
        return self.thread.is_alive()

    def start(self) -> None:
        """Start copying."""
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
        out: LogFile | None = None
        try:
            where: dict[str, Any] = (
                {"since": self.last_ns / 1e9} if self.last_ns else {"tail": self._first_tail}
            )
            stream = self._api.logs(
                self.container_id, stream=True, follow=True, timestamps=True, **where
            )
            with self._lock:
                if self._closed:
                    return
                self._stream = stream
            out = LogFile(self.path, self._max_bytes)
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
            if out is not None:
                out.close()

    def _write(self, out: LogFile, data: bytes) -> bytes:
        """Write every complete line of ``data``; return the unfinished rest."""
        *complete, rest = data.split(b"\n")
        lines: list[str] = []
        for raw in complete:
            stamp, _, text = raw.partition(b" ")
            ns = parse_time_ns(stamp.decode("ascii", "replace"))
            if ns is not None:
                if ns <= self.last_ns:
                    continue  # already written by the follower of an earlier run
                self.last_ns = ns
            else:
                text = raw  # no timestamp (not expected with timestamps=True): keep it all
            line, self._previous = render(ns, text.decode("utf-8", "replace"), self._previous)
            lines.append(line)
        out.write_lines(lines)
        return rest


class ReplicaLogs:
    """The log followers of one Container's replicas, and how far each replica was copied.

    ``positions`` (replica -> Docker's time of the newest line copied, in ns) is the state's
    own dict: what ``progress`` records there is saved with the state.
    """

    def __init__(self, directory: Path, positions: dict[int, int]) -> None:
        self.directory = directory
        self.positions = positions
        self.followers: dict[int, LogFollower] = {}
        self.moved = False  # a position moved since the owner last saved them (it resets this)
        self._drained: dict[int, tuple[str, str]] = {}  # (id, FinishedAt) read to the end

    def sync(self, api: Any, replicas: Mapping[int, DockerReplica]) -> None:
        """A follower for every running replica; one last read of a replica that stopped."""
        self.progress()  # a new follower starts after its predecessor's lines
        for i, rep in replicas.items():
            current = self.followers.get(i)
            if current is not None and current.alive:
                if current.container_id == rep.id:
                    continue
                current.close()
            if not rep.running:
                run = (rep.id, rep.finished_at)
                if self._drained.get(i) == run:
                    continue  # everything up to this exit was read already
                self._drained[i] = run
            follower = LogFollower(
                api, rep.id, self.directory / f"replica-{i}.log", self.positions.get(i, 0)
            )
            self.followers[i] = follower
            follower.start()

    def progress(self) -> None:
        """Record how far each follower got in ``positions`` (and ``moved``)."""
        for i, follower in self.followers.items():
            if follower.last_ns > self.positions.get(i, 0):
                self.positions[i] = follower.last_ns
                self.moved = True

    def close(self) -> list[threading.Thread]:
        """Stop every follower; returns the threads to join."""
        for follower in self.followers.values():
            follower.close()
        return [f.thread for f in self.followers.values() if f.thread.ident is not None]
