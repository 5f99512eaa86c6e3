"""One-line logs on stdout, in the format driftmend's log accumulator parses.

Every event is exactly one line::

    2026-11-25T04:29:24.123Z LEVEL shop message

with the time in UTC (milliseconds, ``Z``) and LEVEL one of DEBUG INFO WARNING ERROR
CRITICAL. uvicorn's access and error logs, and the libraries' own loggers, go through the
same handler, so nothing reaches stdout in another shape.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

APP_NAME = "shop"

# The only level names the accumulator knows; anything else (uvicorn's TRACE, custom
# levels) is folded into the nearest one at or below it.
_LEVELS: tuple[tuple[int, str], ...] = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
)


def level_name(levelno: int) -> str:
    """The accumulator's name for a numeric level: one of the five standard names."""
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return name
    return "DEBUG"


class OneLineFormatter(logging.Formatter):
    """Formats a record as ``<UTC time> <LEVEL> shop <message>`` on a single line."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's creation time as UTC ISO-8601 with milliseconds and ``Z``."""
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """The whole line; tracebacks are appended with their newlines escaped."""
        message = record.getMessage()
        if record.exc_info:
            message = f"{message} {self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message} {record.exc_text}"
        # A newline inside a message would start a line the accumulator cannot parse
        # (psycopg's errors and tracebacks have several), so it is written as a literal \n.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        return f"{self.formatTime(record)} {level_name(record.levelno)} {APP_NAME} {message}"


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger in the process to ``stream`` (stdout) in the one-line format.

    uvicorn must then be started with ``log_config=None`` so it keeps this setup; its
    ``uvicorn.error`` and ``uvicorn.access`` loggers propagate to the root handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # psycopg_pool logs every connection request at INFO: at the app's own INFO level that
    # would be two lines per query. Its warnings (failed connects, broken connections) stay.
    logging.getLogger("psycopg").setLevel(max(logging.WARNING, root.level))
