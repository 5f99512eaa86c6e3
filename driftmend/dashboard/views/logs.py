"""A log line as JSON for the page and the live stream.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from driftmend.dashboard.views.ids import resource_id
from driftmend.model import LogLine

__all__ = ["log_dict"]


def log_dict(key: str, line: LogLine) -> dict[str, Any]:
    """A log line as JSON. The message is untrusted text: it is only ever shown as text."""
    return {
        "key": key,
        "resource_id": resource_id(key),
        "at": line.at,
        "level": line.level,
        "source": line.source,
        "message": line.message,
    }
