"""The log accumulator: recent log lines per resource, parsed into ``LogLine`` values.

Stage: *observe* in docs/ARCHITECTURE.md. Drivers name the files their resources write to (the
process runtime's ``replica-<i>.log``); the accumulator follows them like ``tail -F``, parses
each line into (time, level, message), and keeps a bounded window per resource. The loop
reads ``logs.errors_per_minute`` from it, the LLM prompt reads ``recent``, the dashboard
reads ``search``. Credentials in a line are redacted as it comes in (``driftmend.redaction``).

Parsing lives in pure functions in ``driftmend.log_lines`` (re-exported here: ``LEVELS``,
``normalize_level``, ``parse_line``, ``is_continuation``) so every format is tested without
files. Log text is untrusted: nothing here raises on garbage input.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from driftmend.log_lines import LEVELS, is_continuation, normalize_level, parse_line
from driftmend.model import LogLine
from driftmend.redaction import PRIVATE_KEY_BEGIN, PRIVATE_KEY_END, REDACTED, redact

# The parsers kept importable from here, where they lived before ``driftmend.log_lines``.
__all__ = [
    "LEVELS",
    "MAX_LINE_BYTES",
    "READ_CHUNK",
    "TAIL_BYTES",
    "LogAccumulator",
    "is_continuation",
    "normalize_level",
    "parse_line",
]

log = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024
"""How much of an existing file is read when it is attached: recent history, not all of it."""

MAX_LINE_BYTES = 64 * 1024
"""A line longer than this is cut and emitted, so output without newlines cannot grow forever."""

READ_CHUNK = 1024 * 1024
"""At most this much is read from one file per poll; the rest waits for the next poll."""


@dataclass
class _Follower:
    """One attached file: where we are in it and the bytes of a line not yet finished."""

    keys: list[str]  # every resource that sees this file (a Container and the database it hosts)
    path: str
    source: str
    history: deque[tuple[LogLine, bool]]  # lines read (and whether they count as events) ...
    # ... so a resource attached later to the same file still sees its recent history
    handle: BinaryIO | None = None
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file last read ...
    offset: int = 0  # ... and how far: a closed follower resumes there, not at the top
    partial: bytes = b""
    previous: LogLine | None = None
    start_at_tail: bool = True  # the first open reads recent history only

    def close(self) -> None:
        """Close the file; ``ident`` and ``offset`` stay, so a reopen resumes where it was."""
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.offset = self.handle.tell()
                self.handle.close()
        self.handle = None


@dataclass
class _Window:
    """The bounded recent lines of one resource, and the times of its error events."""

    lines: deque[LogLine]
    errors: deque[float] = field(default_factory=deque)
    previous: LogLine | None = None  # the last line given by ``add_text``
    in_private_key: bool = False  # between a private key's BEGIN and END lines


class LogAccumulator:
    """Follows log files, parses their lines, keeps a bounded window per resource.

    Implements the ``LogSource`` Protocol. Lines come from attached files (``attach`` +
    ``poll``/``run``) and from other sources (``add``). Errors per minute count *events*: the
    frames of a traceback or the DETAIL line of a PostgreSQL error share the level of the line
    that started them but are not counted again.
    """

    def __init__(
        self, max_lines_per_resource: int = 2000, clock: Callable[[], float] = time.time
    ) -> None:
        self._max = max_lines_per_resource
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._followers: dict[str, _Follower] = {}

    # -- sources ---------------------------------------------------------------------------

    def attach(self, key: str, path: str | os.PathLike[str], source: str = "") -> None:
        """Follow the file at ``path`` for resource ``key``; idempotent per (key, path).

        An existing file is read from its last 64 KiB, so recent history is visible; a file
        that does not exist yet is read from its start once it appears. ``source`` names the
        stream in each ``LogLine`` (``replica-0``, ``postgres``). One file may feed several
        resources (a Container and the database it hosts): each line goes to every one.
        """
        path = os.fspath(path)
        found = self._followers.get(path)
        if found is not None:
            if key not in found.keys:
                found.keys.append(key)
                for line, counts in found.history:
                    self._append(key, line, counts=counts)
            return
        follower = _Follower([key], path, source, deque(maxlen=self._max))
        self._followers[path] = follower
        self._window(key)
        # Open now, so "the last 64 KiB" means the file as it is at attach time.
        if not self._open(follower):
            follower.start_at_tail = False  # a file that appears later is new: read it all

    def detach(self, path: str | os.PathLike[str], key: str | None = None) -> None:
        """Stop following ``path`` for ``key`` (for every resource when None).

        Lines already read stay in the windows.
        """
        path = os.fspath(path)
        found = self._followers.get(path)
        if found is None:
            return
        if key is not None and key in found.keys:
            found.keys.remove(key)
        if key is None or not found.keys:
            del self._followers[path]
            found.close()

    def attached(self) -> list[str]:
        """The paths being followed."""
        return list(self._followers)

    def add(self, key: str, line: LogLine) -> None:
        """Record a line that did not come from a followed file (a driver's own events)."""
        self._append(key, line, counts=True)

    def add_text(self, key: str, text: str, source: str = "") -> None:
        """Parse one raw line of text for ``key`` and record it."""
        window = self._window(key)
        parsed = self._parse_text(text, source, window.previous)
        if parsed is not None:
            line, counts = parsed
            self._append(key, line, counts=counts)
            window.previous = line

    async def poll(self) -> None:
        """Read what was appended to every attached file since the last poll.

        Files are local and each read is bounded (1 MiB per file per poll), so the reads run
        on the loop: a thread hop per poll would cost more than the reads themselves.
        """
        for i, follower in enumerate(list(self._followers.values())):
            self._poll_file(follower)
            if i % 100 == 99:  # 1,000 files are tens of ms: let passes and HTTP in between
                await asyncio.sleep(0)

    async def run(self, interval: float = 0.5) -> None:
        """Poll every ``interval`` seconds until cancelled; the files are closed then."""
        try:
            while True:
                try:
                    await self.poll()
                except Exception:  # a bug here must not stop log collection for good
                    log.exception("log poll failed")
                await asyncio.sleep(interval)
        finally:
            # Files stay open between polls (to finish rotated ones); a cancelled run must
            # not leave them to the garbage collector.
            self.close()

    def close(self) -> None:
        """Close every followed file; a later ``poll`` reopens them where it stopped."""
        for follower in self._followers.values():
            follower.close()

    # -- queries ---------------------------------------------------------------------------

    def recent(self, key: str, limit: int = 100, min_level: str | None = None) -> list[LogLine]:
        """The newest ``limit`` lines of ``key`` at ``min_level`` or worse, oldest first."""
        window = self._windows.get(key)
        if window is None or limit <= 0:
            return []
        rank = LEVELS[normalize_level(min_level)] if min_level else 0
        out: list[LogLine] = []
        for line in reversed(window.lines):
            if LEVELS.get(line.level, 0) >= rank:
                out.append(line)
                if len(out) >= limit:
                    break
        out.reverse()
        return out

    def errors_per_minute(self, key: str, now: float) -> float:
        """ERROR or worse events of ``key`` whose time falls in the minute before ``now``."""
        window = self._windows.get(key)
        if window is None:
            return 0.0
        return float(sum(1 for t in window.errors if now - 60.0 < t <= now))

    def search(
        self,
        text: str | None = None,
        key: str | None = None,
        min_level: str | None = None,
        since: float | None = None,
        limit: int = 200,
    ) -> list[tuple[str, LogLine]]:
        """Lines matching every given filter, as (key, line), the newest ``limit``, oldest first.

        ``text`` matches case-insensitively anywhere in the message; ``since`` is a Unix time.
        """
        rank = LEVELS[normalize_level(min_level)] if min_level else 0
        needle = text.casefold() if text else None
        keys: Iterable[str] = [key] if key is not None else list(self._windows)
        found: list[tuple[str, LogLine]] = []
        for k in keys:
            window = self._windows.get(k)
            if window is None:
                continue
            for line in window.lines:
                if LEVELS.get(line.level, 0) < rank:
                    continue
                if since is not None and line.at < since:
                    continue
                if needle is not None and needle not in line.message.casefold():
                    continue
                found.append((k, line))
        found.sort(key=lambda pair: pair[1].at)
        return found[-limit:] if limit > 0 else []

    def keys(self) -> list[str]:
        """Resources that have a window (attached or given lines)."""
        return list(self._windows)

    # -- internals -------------------------------------------------------------------------

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = _Window(deque(maxlen=self._max), deque(maxlen=self._max))
            self._windows[key] = window
        return window

    def _append(self, key: str, line: LogLine, *, counts: bool) -> None:
        # Redacted on the way in: every reader (store, dashboard, MCP, prompts) sees the same.
        # A private key's body lines carry no marker of their own: they are hidden from its
        # BEGIN line to its END line.
        window = self._window(key)
        if window.in_private_key:
            window.in_private_key = PRIVATE_KEY_END.search(line.message) is None
            message = REDACTED
        else:
            message = redact(line.message)
            window.in_private_key = bool(
                PRIVATE_KEY_BEGIN.search(line.message) and not PRIVATE_KEY_END.search(line.message)
            )
        if message != line.message:
            line = dataclasses.replace(line, message=message)
        window.lines.append(line)
        if counts and LEVELS.get(line.level, 0) >= LEVELS["ERROR"]:
            window.errors.append(line.at)

    def _parse_text(
        self, text: str, source: str, previous: LogLine | None
    ) -> tuple[LogLine, bool] | None:
        """The parsed line and whether it starts an event (None for a blank line)."""
        if not text.strip():
            return None
        line = parse_line(text, self._clock(), source, previous)
        return line, not is_continuation(text, previous)

    def _ingest_bytes(self, f: _Follower, data: bytes, *, final: bool) -> None:
        """Split ``data`` (after any pending partial line) into lines and record them."""
        buf = f.partial + data
        *complete, rest = buf.split(b"\n")
        if final and rest:
            complete.append(rest)
            rest = b""
        while len(rest) > MAX_LINE_BYTES:
            complete.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        f.partial = rest
        for raw in complete:
            parsed = self._parse_text(raw.decode("utf-8", errors="replace"), f.source, f.previous)
            if parsed is None:
                continue
            line, counts = parsed
            f.previous = line
            f.history.append(parsed)
            for key in f.keys:
                self._append(key, line, counts=counts)

    def _open(self, f: _Follower) -> bool:
        """Open ``f.path`` if it exists; position at its tail on the first open only."""
        try:
            handle = open(f.path, "rb")  # noqa: SIM115 - held open across polls, like tail -F
        except OSError:
            return False
        try:
            st = os.fstat(handle.fileno())
            ident = (st.st_dev, st.st_ino)
            if ident == f.ident:
                # The same file as before a close: resume (from the top if it was truncated).
                handle.seek(f.offset if f.offset <= st.st_size else 0)
            elif f.start_at_tail and st.st_size > TAIL_BYTES:
                handle.seek(st.st_size - TAIL_BYTES)
                handle.readline()  # the first line is cut in the middle: skip it
        except OSError:
            handle.close()
            return False
        f.handle, f.ident = handle, ident
        f.start_at_tail = False
        return True

    def _poll_file(self, f: _Follower) -> None:
        try:
            if f.handle is None and not self._open(f):
                return
            assert f.handle is not None
            st = os.fstat(f.handle.fileno())
            if st.st_size < f.handle.tell():
                # Truncated in place (``> file``, copytruncate): start again from the top.
                self._ingest_bytes(f, b"", final=True)
                f.handle.seek(0)
            self._ingest_bytes(f, f.handle.read(READ_CHUNK), final=False)
            self._check_rotation(f)
        except OSError as exc:
            log.warning("cannot read log file %s of %s: %s", f.path, ", ".join(f.keys), exc)
            f.close()

    def _check_rotation(self, f: _Follower) -> None:
        """When the path now names another file (rotated), finish the old one, open the new."""
        assert f.handle is not None
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            return  # moved away and not recreated yet: keep reading the old file
        if (st.st_dev, st.st_ino) == f.ident:
            return
        while chunk := f.handle.read(READ_CHUNK):
            self._ingest_bytes(f, chunk, final=False)
        self._ingest_bytes(f, b"", final=True)
        f.close()
        f.start_at_tail = False
        if self._open(f):
            self._ingest_bytes(f, f.handle.read(READ_CHUNK), final=False)
