"""Log lines in the formats driftmend reads, parsed into ``LogLine`` values: pure functions.

Stage: *observe* in docs/ARCHITECTURE.md. The sample app's one-line format, PostgreSQL's
stderr, Redis and uvicorn are recognised; anything else is kept as a plain line. These
functions do no I/O, so every format is tested without files, and log text is untrusted:
nothing here raises on garbage input. The accumulator that follows files is ``driftmend.logs``.
"""

from __future__ import annotations

import calendar
import math
import re
import time

from driftmend.model import LogLine

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
"""The five level names a ``LogLine`` carries, with their rank for ``min_level`` filters."""

_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR", "CRIT": "CRITICAL"}

# The sample app: ``2026-11-25T04:29:24.123Z LEVEL shop message``.
_APP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z\s+"
    r"(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\S+)\s?(.*)$"
)
# PostgreSQL with ``log_line_prefix = '%m [%p] '``:
# ``2026-11-25 04:29:24.123 UTC [123] ERROR:  message``.
_PG = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ([A-Za-z]+|[+-]\d\d(?::?\d\d)?)"
    r" \[(\d+)\] ([A-Z]+[0-9]?):\s+(.*)$"
)
_PG_LEVELS = {
    "DEBUG1": "DEBUG", "DEBUG2": "DEBUG", "DEBUG3": "DEBUG", "DEBUG4": "DEBUG", "DEBUG5": "DEBUG",
    "LOG": "INFO", "INFO": "INFO", "NOTICE": "INFO", "WARNING": "WARNING", "ERROR": "ERROR",
    "FATAL": "CRITICAL", "PANIC": "CRITICAL",
}  # fmt: skip
# Lines PostgreSQL writes to explain the line before them: they take its level.
_PG_DETAIL = {"DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"}
# Redis: ``123:M 25 Nov 2026 04:29:24.123 # message`` (role M, S, C or X).
_REDIS = re.compile(
    r"^(\d+):([MSCX]) (\d\d?) ([A-Z][a-z]{2}) (\d{4}) "
    r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? ([.*#-]) (.*)$"
)
_REDIS_LEVELS = {".": "DEBUG", "-": "DEBUG", "*": "INFO", "#": "WARNING"}
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                        "Sep", "Oct", "Nov", "Dec"), start=1)}  # fmt: skip
# uvicorn's default console format: ``ERROR:    Exception in ASGI application``.
_UVICORN = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(.*)$")
# The last line of a Python traceback (``ValueError: boom``) and its connecting sentences.
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b(:.*)?$")
_TRACEBACK_GLUE = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_ERROR_WORDS = ("ERROR", "Exception", "Traceback")


def normalize_level(name: str) -> str:
    """One of DEBUG INFO WARNING ERROR CRITICAL for ``name`` (any case, common aliases).

    Raises ``ValueError`` naming the accepted levels: callers pass user input here.
    """
    upper = name.strip().upper()
    upper = _LEVEL_ALIASES.get(upper, upper)
    if upper not in LEVELS:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(LEVELS)}")
    return upper


def _fraction(digits: str | None) -> float:
    return float(f"0.{digits}") if digits else 0.0


def _utc(y: str, mo: int, d: str, h: str, mi: str, s: str, frac: str | None) -> float:
    stamp = calendar.timegm((int(y), mo, int(d), int(h), int(mi), int(s), 0, 0, 0))
    return stamp + _fraction(frac)


def _pg_time(m: re.Match[str]) -> float:
    y, mo, d, h, mi, s, frac, zone = m.group(1, 2, 3, 4, 5, 6, 7, 8)
    utc = _utc(y, int(mo), d, h, mi, s, frac)
    if zone in ("UTC", "GMT", "Z"):
        return utc
    if zone[0] in "+-":  # a numeric offset such as +02 or -05:30
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        return utc - offset if zone[0] == "+" else utc + offset
    # A zone abbreviation (CET, PST): ambiguous in general; the server runs on this host, so
    # this host's local time is the best reading.
    local = time.mktime((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, -1))
    return local + _fraction(frac)


def is_continuation(text: str, previous: LogLine | None) -> bool:
    """True when ``text`` continues the event of ``previous`` rather than starting a new one.

    Indented lines (traceback frames, PostgreSQL's tab-indented statements), the connecting
    sentences of chained tracebacks and PostgreSQL's DETAIL/HINT/STATEMENT lines always do;
    a ``Traceback ...`` header and the final ``SomeError: message`` line do when the line
    before them is an error (uvicorn's ``Exception in ASGI application`` then its traceback).
    Nothing continues when there is no previous line.
    """
    if previous is None or not text:
        return False
    if text[0] in " \t" or text.startswith(_TRACEBACK_GLUE):
        return True
    m = _PG.match(text)
    if m:
        return m.group(10) in _PG_DETAIL
    in_error = LEVELS.get(previous.level, 0) >= LEVELS["ERROR"]
    return in_error and (text.startswith("Traceback") or bool(_EXC_LINE.match(text)))


def parse_line(
    text: str, read_at: float, source: str = "", previous: LogLine | None = None
) -> LogLine:
    """Parse one line of any supported format into a ``LogLine``; never raises.

    Formats, tried in order: the sample app's one-line format, PostgreSQL's stderr with
    ``log_line_prefix='%m [%p] '``, Redis, uvicorn's ``LEVEL:`` prefix, and anything else.
    A line without a time of its own gets ``read_at``; a continuation line (see
    ``is_continuation``) takes the level of ``previous``; any other unknown line is ERROR when
    it mentions ERROR, Exception or Traceback, else INFO.
    """
    text = text.rstrip("\r\n")
    try:
        return _parse(text, read_at, source, previous)
    except (ValueError, OverflowError, IndexError):
        # A line that looked like a known format but held an impossible date (month 13, a
        # year out of range): keep its text rather than lose the line.
        return _plain(text, read_at, source, previous)


def _parse(text: str, read_at: float, source: str, previous: LogLine | None) -> LogLine:
    m = _APP.match(text)
    if m:
        y, mo, d, h, mi, s, frac = m.group(1, 2, 3, 4, 5, 6, 7)
        return LogLine(_utc(y, int(mo), d, h, mi, s, frac), m.group(8), m.group(10), source)
    m = _PG.match(text)
    if m:
        word, message = m.group(10), m.group(11)
        if word in _PG_DETAIL:
            level = previous.level if previous else "INFO"
            return LogLine(_pg_time(m), level, f"{word}:  {message}", source)
        if word in _PG_LEVELS:
            return LogLine(_pg_time(m), _PG_LEVELS[word], message, source)
    m = _REDIS.match(text)
    if m and m.group(4) in _MONTHS:
        d, mon, y, h, mi, s, frac, mark, message = m.group(3, 4, 5, 6, 7, 8, 9, 10, 11)
        # Redis writes the host's local time without a zone.
        at = time.mktime((int(y), _MONTHS[mon], int(d), int(h), int(mi), int(s), 0, 0, -1))
        return LogLine(at + _fraction(frac), _REDIS_LEVELS[mark], message, source)
    return _plain(text, read_at, source, previous)


def _plain(text: str, read_at: float, source: str, previous: LogLine | None) -> LogLine:
    if previous is not None and is_continuation(text, previous):
        return LogLine(read_at, previous.level, text, source)
    m = _UVICORN.match(text)
    if m:
        return LogLine(read_at, m.group(1), m.group(2), source)
    exc = _EXC_LINE.match(text)
    error = any(w in text for w in _ERROR_WORDS) or (exc is not None and exc.group(1) != "Warning")
    level = "ERROR" if error else "INFO"
    return LogLine(read_at, level, text, source)


def _stamp(ns: int) -> str:
    """Unix nanoseconds as Docker and Kubernetes write them: ``2026-11-25T04:54:06.598413247Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def render(ns: int | None, text: str, previous: LogLine | None) -> tuple[str, LogLine | None]:
    """The line to write for one line of a container's output stamped ``ns`` by its engine
    (Docker, the kubelet), and its parse: a line with a time of its own is kept as it is,
    any other gets the engine's time in the one-line format (``<time> <LEVEL> - <message>``).

    The parse is what the accumulator will see: pass it back as ``previous`` for the next line.
    """
    if not text.strip():
        return text, previous  # blank: the accumulator skips it
    own = parse_line(text, math.nan, previous=previous)
    if ns is None or not math.isnan(own.at) or is_continuation(text, previous):
        return text, own
    line = LogLine(ns / 1e9, own.level, own.message)
    return f"{_stamp(ns)} {line.level} - {line.message}", line
